"""Attacks on backup and restore: forged archives (hashes recomputed, so only the content
lies), files created with a permissive umask, and targets that are only a little non-empty.
Every refusal is a message and exit 1, never a traceback, and loads nothing."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from ostiary.backup import archive
from ostiary.backup.archive import Reader
from ostiary.backup.errors import BackupError
from ostiary.backup.export import make_backup
from ostiary.backup.restore import restore
from ostiary.context import AppContext
from ostiary.db import make_engine
from ostiary.files import loose_file_warnings
from ostiary.migrate import upgrade as upgrade_db
from tests.backup_world import (
    KEY,
    fresh_target,
    manifest,
    rewrite,
    row_counts,
    run_cli,
    small_backup,
)


@pytest.fixture
def backup_file(client: TestClient, ctx: AppContext, tmp_path: Path) -> Path:
    return small_backup(client, ctx, tmp_path)


def _empty(url: str) -> bool:
    try:
        return not any(row_counts(url).values())
    except Exception:  # no tables at all: empty too
        return True


def _rows(members: dict[str, bytes], table: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in members[f"tables/{table}.jsonl"].splitlines()]


def _put(members: dict[str, bytes], table: str, rows: list[dict[str, Any]]) -> None:
    members[f"tables/{table}.jsonl"] = b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def _rehash(members: dict[str, bytes]) -> None:
    """What a forger does: make the manifest agree with the changed parts."""
    document = manifest(members)
    for part in document["parts"] if isinstance(document["parts"], list) else []:
        data = members.get(part["name"]) if isinstance(part.get("name"), str) else None
        if data is not None:
            part["sha256"] = hashlib.sha256(data).hexdigest()
            if part.get("rows") is not None:
                part["rows"] = len(data.splitlines())
    members["manifest.json"] = json.dumps(document).encode()


def _set(table: str, column: str, value: Any) -> Callable[[dict[str, bytes]], None]:
    def change(members: dict[str, bytes]) -> None:
        rows = _rows(members, table)
        rows[0][column] = value
        _put(members, table, rows)

    return change


def _duplicate(members: dict[str, bytes]) -> None:
    rows = _rows(members, "users")
    _put(members, "users", [*rows, rows[-1]])


def _dangling(members: dict[str, bytes]) -> None:
    rows = _rows(members, "messages")
    rows[0]["subaccount_id"] = "00000000-0000-4000-8000-000000000000"
    _put(members, "messages", rows)


def _foreign_table(members: dict[str, bytes]) -> None:
    members["tables/evil.jsonl"] = b'{"a": 1}\n'
    document = manifest(members)
    document["parts"].append({"name": "tables/evil.jsonl", "sha256": "", "table": "evil"})
    members["manifest.json"] = json.dumps(document).encode()


def _traversal(members: dict[str, bytes]) -> None:
    members["../../attackb-escaped"] = b"x"
    document = manifest(members)
    document["parts"].append({"name": "../../attackb-escaped", "sha256": ""})
    members["manifest.json"] = json.dumps(document).encode()


def _part_name_not_text(members: dict[str, bytes]) -> None:
    document = manifest(members)
    document["parts"].append({"name": 7, "sha256": "x"})
    members["manifest.json"] = json.dumps(document).encode()


def _manifest_value(key: str, value: Any) -> Callable[[dict[str, bytes]], None]:
    def change(members: dict[str, bytes]) -> None:
        document = manifest(members)
        document[key] = value
        members["manifest.json"] = json.dumps(document).encode()

    return change


FORGERIES: dict[str, Callable[[dict[str, bytes]], None]] = {
    "uuid as a number": _set("users", "user_id", 12345),
    "uuid as a list": _set("users", "user_id", [1]),
    "text as a number": _set("users", "display_name", 5),
    "text as an object": _set("users", "display_name", {"a": 1}),
    "integer as text": _set("messages", "size_bytes", "many"),
    "integer as a float": _set("messages", "size_bytes", 1.5),
    "integer past 64 bits": _set("messages", "size_bytes", 2**70),
    "boolean as text": _set("users", "active", "yes"),
    "timestamp as a number": _set("users", "created_at", 17),
    "naive timestamp": _set("users", "created_at", "2026-01-01T00:00:00"),
    "binary as a number": _set("messages", "payload", 3),
    "binary not base64": _set("messages", "payload", "%%%"),
    "enum not a member": _set("users", "kind", "wizard"),
    "enum as a list": _set("users", "kind", ["person"]),
    "duplicate primary key": _duplicate,
    "dangling foreign key": _dangling,
    "table not in the schema": _foreign_table,
    "path traversal member": _traversal,
    "part name not text": _part_name_not_text,
    "parts not a list": _manifest_value("parts", 5),
    "revision not text": _manifest_value("alembic_revision", ["x"]),
    "revision empty": _manifest_value("alembic_revision", ""),
    "revision a range": _manifest_value("alembic_revision", "@"),
    "revision in console markup": _manifest_value("alembic_revision", "[/red] [/]"),
    "format version in console markup": _manifest_value("format_version", "[/]"),
    "key check not text": _manifest_value("key_check", 5),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_archive_is_refused_cleanly(
    backup_file: Path, backend: str, tmp_path: Path, forgery: str
) -> None:
    bad = tmp_path / "forged.backup"
    change = FORGERIES[forgery]
    rewrite(backup_file, bad, lambda members: (change(members), _rehash(members)))
    with fresh_target(backend, tmp_path) as url:
        code, out = run_cli(["restore", str(bad)], url, tmp_path / "d")
        assert code == 1, out
        assert "restore refused:" in out, out
        assert "Traceback" not in out
        assert _empty(url)
    assert not (tmp_path.parent / "attackb-escaped").exists()


def _insert_lease(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO scheduler_leases (name, holder, expires_at) "
                    "VALUES ('jobs', 'a running server', '2030-01-01 00:00:00')"
                )
            )
    finally:
        engine.dispose()


def test_a_server_writing_between_the_check_and_the_load_is_refused(
    backup_file: Path, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server already running on the target takes its scheduler lease after the restore
    found the database empty and migrated it: the load must not merge into that."""
    upgrade = command.upgrade

    def upgrade_then_a_server_writes(config: Any, revision: str) -> None:
        upgrade(config, revision)
        config.attributes["connection"].commit()
        _insert_lease(url)

    monkeypatch.setattr(command, "upgrade", upgrade_then_a_server_writes)
    with fresh_target(backend, tmp_path) as url:
        with pytest.raises(BackupError, match="the target database is not empty"):
            restore(url=url, source=backup_file, secret_key=KEY, data_dir=tmp_path / "d")
        counts = row_counts(url)
        assert counts["scheduler_leases"] == 1
        assert sum(counts.values()) == 1


@pytest.mark.parametrize("table", ["scheduler_leases", "alembic_version only"])
def test_a_target_with_one_row_anywhere_is_refused(
    backup_file: Path, backend: str, tmp_path: Path, table: str
) -> None:
    with fresh_target(backend, tmp_path) as url:
        upgrade_db(url)
        if table == "scheduler_leases":
            _insert_lease(url)
        code, out = run_cli(["restore", str(backup_file)], url, tmp_path / "d")
        if table == "scheduler_leases":
            assert code == 1 and "the target database is not empty" in out, out
            assert sum(row_counts(url).values()) == 1
        else:  # migrated but empty, as `ostiary db upgrade` leaves it: restorable
            assert code == 0, out


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most careless umask: nothing of ours may rely on a strict one."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_backup_is_0600_with_an_open_umask_and_leaves_no_work_files(
    ctx: AppContext, tmp_path: Path, open_umask: None
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = out / "b.backup"
    make_backup(
        url=ctx.settings.resolved_database_url,
        target=target,
        secret_key=ctx.secret_key,
        include_secret_key=True,
    )
    assert _mode(target) == 0o600
    assert [p.name for p in out.iterdir()] == ["b.backup"]


def test_a_symlink_planted_at_the_partial_file_is_not_followed(
    ctx: AppContext, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    target = tmp_path / "b.backup"
    (tmp_path / ".b.backup.partial").symlink_to(victim)
    code, out = run_cli(["backup", str(target)], ctx.settings.resolved_database_url, tmp_path / "d")
    assert code == 1 and "backup failed" in out, out
    assert victim.read_text() == "keep me"
    assert not target.exists()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    code, out = run_cli(
        ["backup", str(tmp_path / "dangling")], ctx.settings.resolved_database_url, tmp_path / "d"
    )
    assert not (tmp_path / "nowhere").exists()  # a dangling link is replaced, not followed


@pytest.mark.parametrize("prefix", ["sqlite+pysqlite:///", "sqlite:///"])
def test_a_sqlite_database_is_0600_whatever_the_url_spelling(
    tmp_path: Path, open_umask: None, prefix: str
) -> None:
    database = tmp_path / "new" / "o.db"
    engine = make_engine(f"{prefix}{database}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (x INTEGER)"))
        assert _mode(database) == 0o600
        assert _mode(Path(f"{database}-wal")) == 0o600
    engine.dispose()
    assert _mode(database.parent) == 0o700
    database.chmod(0o640)
    warnings = loose_file_warnings(tmp_path / "data", f"{prefix}{database}")
    assert any(f"chmod 600 {database}" in w for w in warnings), warnings


def _gzip_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue(), compresslevel=1))


def _bomb(kind: str, good: Path, path: Path) -> None:
    big = b" " * (archive.MAX_READ + 1)
    if kind == "manifest":  # valid JSON after megabytes of blanks
        _gzip_tar(path, [(tarfile.TarInfo("manifest.json"), big + b'{"format": 1}')])
        return
    with tarfile.open(good, "r:gz") as tar:
        first = tar.next()
        handle = tar.extractfile(first) if first is not None else None
        assert handle is not None
        document = handle.read()
    info = tarfile.TarInfo("manifest.json")
    info.pax_headers = {"comment": big.decode()}  # read whole by tarfile itself
    _gzip_tar(path, [(info, document)])


@pytest.mark.parametrize("kind", ["manifest", "pax header"])
def test_a_decompression_bomb_is_refused_before_it_is_read_whole(
    backup_file: Path, tmp_path: Path, kind: str
) -> None:
    bomb = tmp_path / "bomb.backup"
    _bomb(kind, backup_file, bomb)
    assert bomb.stat().st_size < archive.MAX_READ // 100  # small on disk, big inflated
    with pytest.raises(BackupError, match="too large for a backup"):
        Reader(bomb)


def test_a_row_longer_than_any_backup_writes_is_refused(
    backup_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "MAX_LINE", 64 * 1024)
    long_line = tmp_path / "long.backup"

    def pad(members: dict[str, bytes]) -> None:
        rows = _rows(members, "users")
        rows[0]["display_name"] = "x" * 70 * 1024
        _put(members, "users", rows)
        _rehash(members)

    rewrite(backup_file, long_line, pad)
    with pytest.raises(BackupError, match="holds a line over"):
        Reader(long_line).verify()


def test_a_file_name_with_console_markup_is_printed_not_parsed(
    ctx: AppContext, tmp_path: Path
) -> None:
    url = ctx.settings.resolved_database_url
    target = tmp_path / "[b]backup[i]"
    code, out = run_cli(["backup", str(target)], url, tmp_path / "[/]data")
    assert code == 0 and f"backup written to {target}" in out, out
    code, out = run_cli(["backup", str(target)], url, tmp_path / "d")
    assert code == 1 and f"{target} exists already" in out, out
    code, out = run_cli(["restore", str(tmp_path / "[/]missing")], url, tmp_path / "d")
    assert code == 1 and f"{tmp_path / '[/]missing'} does not exist" in out, out
