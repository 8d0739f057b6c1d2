"""Owner-only files: the data directory (0700), the SQLite files and the key file (0600).

The data directory holds password hashes, keyed hashes and sealed private keys, so nothing
in it should be readable by other accounts on the machine. SQLite creates its ``-wal`` and
``-shm`` files with the permissions of the database file, so creating that one 0600 before
SQLite opens it is enough for all three. ``ostiary serve`` calls :func:`loose_files` on
start and warns about each file someone made readable or writable by group or others.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import ArgumentError

#: Permission bits of group and others; none of them may be set on a private file.
_SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing directory is left as is
    (its owner chose its mode; :func:`loose_files` reports it)."""
    if not path.is_dir():
        missing = [p for p in (path, *path.parents) if not p.exists()]
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for created in missing:
            # mkdir's mode is filtered by the umask and parents get the default mode.
            os.chmod(created, 0o700)
    return path


def create_private_file(path: Path) -> bool:
    """Create an empty ``path`` as 0600 unless it exists; whether it was created."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    os.chmod(path, 0o600)  # the umask may have taken bits away, never added: be exact
    return True


def open_private(path: Path) -> int:
    """A new file descriptor for writing ``path``, created 0600 (refuses an existing one)."""
    private_dir(path.parent)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def sqlite_database_path(url: str) -> Path | None:
    """The file behind a SQLite URL, however spelled (``sqlite:///``, ``sqlite+pysqlite:///``);
    ``None`` for memory, SQLite's ``file:`` URIs or other databases."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or parsed.query.get("uri"):
        return None
    return Path(database)


@dataclass(frozen=True)
class LooseFile:
    """A file or directory others may read or write: what it is and how to fix it."""

    path: Path
    mode: int

    def warning(self) -> str:
        """The line ``ostiary serve`` prints about it."""
        fix = "700" if self.path.is_dir() else "600"
        return (
            f"warning: {self.path} is accessible by group or others (mode "
            f"{stat.filemode(self.mode)}, {self.mode & 0o777:o}); it may hold password hashes, "
            f"keyed hashes or sealed keys. Fix it: chmod {fix} {self.path}"
        )


def loose_files(data_dir: Path, *extra: Path) -> list[LooseFile]:
    """The data directory itself, every file in it and ``extra`` files (the SQLite files
    when the database lives elsewhere) that group or others can read or write."""
    found: list[LooseFile] = []
    candidates: list[Path] = []
    if data_dir.is_dir():
        candidates.append(data_dir)
        candidates.extend(sorted(data_dir.rglob("*")))
    for path in extra:
        for member in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            if member not in candidates:
                candidates.append(member)
    for path in candidates:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            continue
        if info.st_mode & _SHARED_BITS:
            found.append(LooseFile(path, info.st_mode))
    return found


def loose_file_warnings(data_dir: Path, database_url: str) -> list[str]:
    """What ``ostiary serve`` prints at start: one line per loose file of the installation."""
    database = sqlite_database_path(database_url)
    return [loose.warning() for loose in loose_files(data_dir, *([database] if database else []))]
