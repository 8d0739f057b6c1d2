"""The SQLite write gate: writers of different processes queue on one ``flock``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ostiary.db import WriteGate


def _waiting_for(path: Path, pid: int, *, unless: threading.Event | None = None) -> None:
    """Return once process ``pid`` is blocked in ``flock`` on ``path`` (the kernel lists a
    waiting request as ``->`` in /proc/locks), or once ``unless`` is set: a writer that got
    in instead of waiting is then reported by the caller's assertion. A bounded poll on an
    observable state, not a guess at how long the other side needs."""
    inode = path.stat().st_ino
    deadline = time.monotonic() + 10
    while unless is None or not unless.is_set():
        for line in Path("/proc/locks").read_text().splitlines():
            # "12: -> FLOCK  ADVISORY  WRITE <pid> <major>:<minor>:<inode> 0 EOF"
            fields = line.split()
            if (
                fields[1:3] == ["->", "FLOCK"]
                and fields[5] == str(pid)
                and fields[6].rsplit(":", 1)[1] == str(inode)
            ):
                return
        assert time.monotonic() < deadline, f"{pid} never waited for {path.name}"
        time.sleep(0.005)


def _enter_in_thread(gate: WriteGate) -> tuple[threading.Thread, threading.Event]:
    """Start a thread that enters ``gate``; the event is set once it is in."""
    entered = threading.Event()

    def enter() -> None:
        with gate:
            entered.set()

    thread = threading.Thread(target=enter)
    thread.start()
    return thread, entered


def test_a_second_gate_on_the_same_file_waits_until_the_first_is_released(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'ostiary.db'}"
    first, second = WriteGate(url), WriteGate(url)  # separate descriptors, like two processes
    with first:
        thread, entered = _enter_in_thread(second)
        _waiting_for(tmp_path / "ostiary.db.write-lock", os.getpid(), unless=entered)
        assert not entered.is_set(), "the second writer got in while the first held the gate"
    assert entered.wait(5), "the second writer never got in after the first left"
    thread.join(5)
    assert (tmp_path / "ostiary.db.write-lock").exists()
    assert (tmp_path / "ostiary.db.write-queue").exists()


def test_gates_on_different_files_do_not_wait_for_each_other(tmp_path: Path) -> None:
    with WriteGate(f"sqlite:///{tmp_path / 'a.db'}"):
        thread, entered = _enter_in_thread(WriteGate(f"sqlite:///{tmp_path / 'b.db'}"))
        assert entered.wait(5)
    thread.join(5)


def test_a_writer_that_just_left_waits_behind_one_already_waiting(tmp_path: Path) -> None:
    """Busy writers take turns: the one that releases the gate and at once wants it again
    queues behind the writer (another process) that was already waiting, instead of taking
    the gate back before that process even ran. The other process is stopped while it
    waits, so the outcome does not depend on who the scheduler runs first."""
    url = f"sqlite:///{tmp_path / 'ostiary.db'}"
    first = WriteGate(url)
    script = (
        "import sys\n"
        "from ostiary.db import WriteGate\n"
        "with WriteGate(sys.argv[1]):\n"
        "    print('in', flush=True)\n"
    )
    first.__enter__()
    other = subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE, text=True)
    try:
        # The other process holds the queue and waits for the write lock.
        _waiting_for(tmp_path / "ostiary.db.write-lock", other.pid)
        other.send_signal(signal.SIGSTOP)
        _wait_until_stopped(other.pid)
        first.__exit__(None, None, None)
        again, back_in = _enter_in_thread(first)
        # Proof that it queued: this process now waits for the queue the other one holds.
        _waiting_for(tmp_path / "ostiary.db.write-queue", os.getpid(), unless=back_in)
        assert not back_in.is_set(), "took the gate back while another writer was waiting"
        other.send_signal(signal.SIGCONT)
        assert back_in.wait(10)
        again.join(5)
        out, _ = other.communicate(timeout=10)
        assert out.strip() == "in"
    finally:
        other.kill()
        other.wait()


def _wait_until_stopped(pid: int) -> None:
    """Return once ``pid`` is in state T (stopped), polling its /proc entry."""
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, "the other process did not stop"
        time.sleep(0.01)
