"""The backup file: a gzip tar of ``manifest.json`` and one JSON-lines part per table.

The manifest comes first and names every part with its SHA-256 and row count; a reader
checks every part against it before anything is loaded (:func:`verify`), and reads only
the members the manifest names (nothing is extracted to disk, so member names cannot
escape anywhere).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ostiary.backup.errors import BackupError
from ostiary.files import open_private

FORMAT = "ostiary-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SECRET_KEY_MEMBER = "secret_key"
#: What a damaged or foreign file raises inside tarfile and gzip.
_BROKEN = (tarfile.TarError, EOFError, OSError, zlib.error, gzip.BadGzipFile, UnicodeError)


@dataclass
class Part:
    """One member of the archive as the manifest describes it."""

    name: str
    sha256: str
    rows: int | None = None
    table: str | None = None
    columns: list[str] = field(default_factory=list)


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    tar.addfile(info, data)


class Writer:
    """Writes parts into a directory, then the tar with the manifest first."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self.parts: list[Part] = []

    def table_part(self, table: str, columns: list[str], lines: Iterator[str]) -> Part:
        """Write ``lines`` (JSON lines) as the part of ``table``, hashing as it goes."""
        name = f"tables/{table}.jsonl"
        digest, rows = hashlib.sha256(), 0
        with (self._workdir / f"{table}.jsonl").open("wb") as out:
            for line in lines:
                data = line.encode()
                digest.update(data)
                out.write(data)
                rows += 1
        part = Part(name=name, sha256=digest.hexdigest(), rows=rows, table=table, columns=columns)
        self.parts.append(part)
        return part

    def secret_key_part(self, key: bytes) -> Part:
        """The installation's secret key, only when asked for."""
        (self._workdir / SECRET_KEY_MEMBER).write_bytes(key)
        part = Part(name=SECRET_KEY_MEMBER, sha256=hashlib.sha256(key).hexdigest())
        self.parts.append(part)
        return part

    def finish(self, target: Path, manifest: dict[str, Any]) -> None:
        """The tar at ``target``: written 0600 beside it, then renamed into place."""
        manifest = {
            **manifest,
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "parts": [part.__dict__ for part in self.parts],
        }
        document = json.dumps(manifest, indent=2, sort_keys=True).encode()
        partial = target.with_name(f".{target.name}.partial")
        fd = open_private(partial)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                _add(tar, MANIFEST, io.BytesIO(document), len(document))
                for part in self.parts:
                    path = self._workdir / Path(part.name).name
                    with path.open("rb") as data:
                        _add(tar, part.name, data, path.stat().st_size)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


class Reader:
    """Reads a backup file: its manifest, checks, then each table's records in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise BackupError(f"{path} does not exist or is not a file")
        self.manifest = self._read_manifest()
        try:
            self.parts = [Part(**entry) for entry in self.manifest["parts"]]
            self.revision = str(self.manifest["alembic_revision"])
            self.key_included = bool(self.manifest["secret_key_included"])
        except (KeyError, TypeError) as exc:
            raise BackupError(f"{path}: the manifest lacks {exc}") from None

    def _open(self) -> tarfile.TarFile:
        try:
            return tarfile.open(self.path, mode="r:gz")
        except _BROKEN as exc:
            raise BackupError(
                f"{self.path} is not an Ostiary backup (not a gzip tar: {exc})"
            ) from None

    def _read_manifest(self) -> dict[str, Any]:
        with self._open() as tar:
            try:
                first = tar.next()
                handle = tar.extractfile(first) if first is not None else None
                if first is None or first.name != MANIFEST or handle is None:
                    raise BackupError(f"{self.path} is not an Ostiary backup (no manifest)")
                manifest = json.loads(handle.read())
            except _BROKEN as exc:
                raise BackupError(f"{self.path} is damaged: {exc}") from None
            except ValueError as exc:
                raise BackupError(f"{self.path}: the manifest is not JSON ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BackupError(f"{self.path} is not an Ostiary backup (unknown format)")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise BackupError(
                f"{self.path} has backup format {manifest.get('format_version')}; this "
                f"Ostiary reads format {FORMAT_VERSION}"
            )
        return manifest

    def members(self) -> Iterator[tuple[Part, IO[bytes]]]:
        """Each part the manifest names, in archive order, as a stream."""
        expected = {part.name: part for part in self.parts}
        seen: set[str] = set()
        with self._open() as tar:
            try:
                for member in tar:
                    if member.name == MANIFEST:
                        continue
                    part = expected.get(member.name)
                    handle = tar.extractfile(member) if member.isfile() else None
                    if part is None or handle is None or member.name in seen:
                        raise BackupError(f"{self.path} holds an unexpected member {member.name}")
                    seen.add(member.name)
                    yield part, handle
            except _BROKEN as exc:
                raise BackupError(f"{self.path} is damaged or cut short: {exc}") from None
        if missing := sorted(set(expected) - seen):
            raise BackupError(f"{self.path} is cut short: {', '.join(missing)} missing")

    def verify(self) -> None:
        """Check every part's SHA-256 and row count against the manifest (reads it all)."""
        for part, handle in self.members():
            digest, rows = hashlib.sha256(), 0
            try:
                for line in handle:
                    digest.update(line)
                    rows += 1
            except _BROKEN as exc:
                raise BackupError(f"{self.path} is damaged or cut short: {exc}") from None
            if digest.hexdigest() != part.sha256:
                raise BackupError(
                    f"{self.path}: {part.name} does not match its SHA-256 in the manifest "
                    "(the file was changed or damaged); nothing was restored"
                )
            if part.rows is not None and rows != part.rows:
                raise BackupError(f"{self.path}: {part.name} has {rows} rows, not {part.rows}")

    def secret_key(self) -> bytes | None:
        """The secret key in the backup, if it holds one."""
        for part, handle in self.members():
            if part.name == SECRET_KEY_MEMBER:
                return handle.read().strip()
        return None

    def records(self) -> Iterator[tuple[Part, Iterator[dict[str, Any]]]]:
        """Each table part with an iterator over its decoded JSON records."""
        for part, handle in self.members():
            if part.table is not None:
                yield part, _records(part, handle)


def _records(part: Part, handle: IO[bytes]) -> Iterator[dict[str, Any]]:
    # Hashed again while loading: the file may have changed since ``verify`` read it.
    digest = hashlib.sha256()
    for number, line in enumerate(handle, 1):
        digest.update(line)
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise BackupError(f"{part.name} line {number} is not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise BackupError(f"{part.name} line {number} is not a JSON object")
        yield record
    if digest.hexdigest() != part.sha256:
        raise BackupError(f"{part.name} changed while it was restored; nothing was restored")
