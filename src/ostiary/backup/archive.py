"""The backup file: a gzip tar of ``manifest.json`` and one JSON-lines part per table.

The manifest comes first and names every part with its SHA-256 and row count; a reader
checks every part against it before anything is loaded (:func:`verify`), and reads only
the members the manifest names (nothing is extracted to disk, so member names cannot
escape anywhere). A forged file cannot make a reader hold much in memory: no single read
of the decompressed stream (a tar header, the manifest, the key) may exceed
:data:`MAX_READ`, and no row's line :data:`MAX_LINE`.
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
#: The most one read of the decompressed stream may ask for: a tar header that declares
#: gigabytes (a pax or GNU long-name header is read whole), the manifest, the key.
MAX_READ = 16 * 1024 * 1024
#: The longest row (a line of JSON): message payloads are bounded by
#: ``OSTIARY_MAX_REQUEST_BYTES`` (1 MiB by default) and grow by a third in base64.
MAX_LINE = 256 * 1024 * 1024
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


class _Capped(io.RawIOBase):
    """The decompressed tar stream, refusing any single read larger than :data:`MAX_READ`."""

    def __init__(self, raw: gzip.GzipFile) -> None:
        super().__init__()
        self._raw = raw

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > MAX_READ:
            raise BackupError(
                "the backup holds a header or member too large for a backup "
                f"(over {MAX_READ // (1024 * 1024)} MiB in one piece); it is forged or damaged"
            )
        return self._raw.read(size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()
        super().close()


def _lines(handle: IO[bytes], name: str) -> Iterator[bytes]:
    """The lines of a part, refusing one longer than :data:`MAX_LINE`."""
    while line := handle.readline(MAX_LINE + 1):
        if len(line) > MAX_LINE:
            raise BackupError(f"{name} holds a line over {MAX_LINE // 1024} KiB")
        yield line


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
        self._check_parts()

    def _check_parts(self) -> None:
        """Only the parts a backup writes: ``tables/<table>.jsonl`` and the secret key."""
        names: set[str] = set()
        for part in self.parts:
            table_part = isinstance(part.table, str) and part.name == f"tables/{part.table}.jsonl"
            key_part = part.name == SECRET_KEY_MEMBER and part.table is None
            rows_ok = part.rows is None or type(part.rows) is int
            if not (table_part or key_part) or not rows_ok or part.name in names:
                raise BackupError(
                    f"{self.path}: the manifest names a part no backup has "
                    f"({str(part.name)[:80]!r}); nothing was restored"
                )
            names.add(part.name)

    def _open(self) -> tarfile.TarFile:
        stream = _Capped(gzip.GzipFile(self.path, mode="rb"))
        try:
            return tarfile.open(fileobj=stream, mode="r:")
        except _BROKEN as exc:
            stream.close()
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
                for line in _lines(handle, part.name):
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
    for number, line in enumerate(_lines(handle, part.name), 1):
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
