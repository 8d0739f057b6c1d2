"""The SQLite write gate: writers of different processes queue on one ``flock``."""

from __future__ import annotations

import threading
from pathlib import Path

from ostiary.db import WriteGate


def test_a_second_gate_on_the_same_file_waits_until_the_first_is_released(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'ostiary.db'}"
    first, second = WriteGate(url), WriteGate(url)  # separate descriptors, like two processes
    entered = threading.Event()

    def enter_second() -> None:
        with second:
            entered.set()

    with first:
        thread = threading.Thread(target=enter_second)
        thread.start()
        assert not entered.wait(0.3), "the second writer got in while the first held the gate"
    assert entered.wait(5), "the second writer never got in after the first left"
    thread.join(5)
    assert (tmp_path / "ostiary.db.write-lock").exists()


def test_gates_on_different_files_do_not_wait_for_each_other(tmp_path: Path) -> None:
    one, other = (
        WriteGate(f"sqlite:///{tmp_path / 'a.db'}"),
        WriteGate(f"sqlite:///{tmp_path / 'b.db'}"),
    )
    entered = threading.Event()

    def enter_other() -> None:
        with other:
            entered.set()

    with one:
        thread = threading.Thread(target=enter_other)
        thread.start()
        assert entered.wait(5)
    thread.join(5)
