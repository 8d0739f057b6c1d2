"""The data directory is 0700, the SQLite files and the key file 0600, and ``ostiary serve``
names every file others can read, with the fix (issue 13, item 6)."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from ostiary.db import make_engine
from ostiary.files import loose_file_warnings, loose_files, private_dir
from ostiary.migrate import upgrade
from ostiary.settings import Settings
from tests.conftest import free_port
from tests.e2e.conftest import ostiary_command


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask, as on many machines: our code must not rely on a strict one."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_installation_is_owner_only(tmp_path: Path, open_umask: None) -> None:
    data = tmp_path / "deep" / "ostiary-data"
    settings = Settings(data_dir=data)
    settings.resolved_secret_key()
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    with engine.begin() as conn:  # a write makes SQLite create the -wal and -shm files
        conn.execute(text("CREATE TABLE probe (x INTEGER)"))
        conn.execute(text("INSERT INTO probe VALUES (1)"))
        database = data / "ostiary.db"
        assert _mode(database) == 0o600
        assert _mode(Path(f"{database}-wal")) == 0o600
        assert _mode(Path(f"{database}-shm")) == 0o600
    engine.dispose()
    assert _mode(data) == 0o700
    assert _mode(data.parent) == 0o700  # created by us too
    assert _mode(data / "secret_key") == 0o600
    assert loose_files(data) == []


def test_an_existing_directory_keeps_its_mode(tmp_path: Path, open_umask: None) -> None:
    tmp_path.chmod(0o755)
    assert private_dir(tmp_path) == tmp_path
    assert _mode(tmp_path) == 0o755


def test_loose_files_are_named_with_the_fix(tmp_path: Path) -> None:
    data = private_dir(tmp_path / "data")
    key = data / "secret_key"
    key.write_text("x" * 40)
    key.chmod(0o644)
    database = tmp_path / "elsewhere.db"
    database.write_bytes(b"")
    database.chmod(0o660)
    Path(f"{database}-wal").write_bytes(b"")
    Path(f"{database}-wal").chmod(0o600)
    warnings = loose_file_warnings(data, f"sqlite:///{database}")
    assert len(warnings) == 2, warnings
    assert str(key) in warnings[0] and f"chmod 600 {key}" in warnings[0]
    assert str(database) in warnings[1] and f"chmod 600 {database}" in warnings[1]
    data.chmod(0o750)
    assert f"chmod 700 {data}" in loose_file_warnings(data, "postgresql://x/y")[0]


def test_serve_warns_on_stderr_about_a_readable_key_file(tmp_path: Path) -> None:
    """The real CLI: a world-readable key file is named, with the fix, when serve starts."""
    data = private_dir(tmp_path / "data")
    (data / "secret_key").write_text("k" * 40)
    (data / "secret_key").chmod(0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSTIARY_")}
    env.update(OSTIARY_DATA_DIR=str(data), OSTIARY_SCHEDULER_INTERVAL_SECONDS="0")
    port = free_port()
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [*ostiary_command(), "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=20)
    output = " ".join(stderr.read_text().split())
    assert f"{data / 'secret_key'} is accessible by group or others" in output, output
    assert f"chmod 600 {data / 'secret_key'}" in output
    assert _mode(data / "ostiary.db") == 0o600  # what serve created itself is private
