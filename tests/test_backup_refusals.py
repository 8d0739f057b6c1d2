"""What ``ostiary restore`` refuses, with a clear message and exit 1, loading nothing: a
non-empty target, a damaged or foreign file, another secret key, another schema revision,
and a load that fails half-way (issue 13, item 1)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ostiary.backup import restore as restoring
from ostiary.backup.errors import BackupError
from ostiary.backup.restore import restore
from ostiary.context import AppContext
from ostiary.migrate import upgrade
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


def test_the_cli_restores_and_reports_the_audit_chain(
    backup_file: Path, backend: str, tmp_path: Path
) -> None:
    with fresh_target(backend, tmp_path) as url:
        code, out = run_cli(["restore", str(backup_file)], url, tmp_path / "d")
        assert code == 0, out
        assert "restored" in out and "audit chain intact" in out


def test_a_non_empty_database_is_refused(
    backup_file: Path, ctx: AppContext, tmp_path: Path
) -> None:
    url = ctx.settings.resolved_database_url
    before = row_counts(url)
    code, out = run_cli(["restore", str(backup_file)], url, tmp_path / "d")
    assert code == 1
    assert "restore refused: the target database is not empty" in out
    assert row_counts(url) == before


def _change_part(members: dict[str, bytes]) -> None:
    members["tables/users.jsonl"] = members["tables/users.jsonl"].replace(b'"active"', b'"xctive"')


def _cut(members: dict[str, bytes]) -> None:
    del members["tables/users.jsonl"]


CORRUPTIONS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "sha mismatch": (
        lambda good, bad: rewrite(good, bad, _change_part),
        "tables/users.jsonl does not match its SHA-256",
    ),
    "missing part": (lambda good, bad: rewrite(good, bad, _cut), "cut short: tables/users.jsonl"),
    "truncated": (
        lambda good, bad: bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2]),
        "damaged or cut short",
    ),
    "not a tar": (lambda good, bad: bad.write_bytes(b"PK\x03\x04 a zip, say"), "not a gzip tar"),
    "foreign tar": (
        lambda good, bad: rewrite(
            good, bad, lambda m: m.update({"manifest.json": b'{"format": "other"}'})
        ),
        "not an Ostiary backup (unknown format)",
    ),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_damaged_file_is_a_clear_refusal_not_a_traceback(
    backup_file: Path, backend: str, tmp_path: Path, corruption: str
) -> None:
    damage, reason = CORRUPTIONS[corruption]
    bad = tmp_path / "bad.backup"
    damage(backup_file, bad)
    with fresh_target(backend, tmp_path) as url:
        code, out = run_cli(["restore", str(bad)], url, tmp_path / "d")
        assert code == 1, out
        assert "restore refused:" in out and reason in out, out
        assert "Traceback" not in out
        assert _empty(url)


def test_another_secret_key_is_refused(backup_file: Path, backend: str, tmp_path: Path) -> None:
    with fresh_target(backend, tmp_path) as url:
        code, out = run_cli(["restore", str(backup_file)], url, tmp_path / "d", key="x" * 32)
        assert code == 1
        assert "the configured secret key is not the one this backup was made with" in out
        code, out = run_cli(["restore", str(backup_file)], url, tmp_path / "d", key=None)
        assert code == 1
        assert "the backup does not hold the secret key" in out
        assert not (tmp_path / "d" / "secret_key").exists()  # none generated either
        assert _empty(url)


def _revision(revision: str) -> Callable[[dict[str, bytes]], None]:
    def change(members: dict[str, bytes]) -> None:
        document = manifest(members)
        document["alembic_revision"] = revision
        members["manifest.json"] = json.dumps(document).encode()

    return change


@pytest.mark.parametrize(
    ("revision", "reason"),
    [("9999", "made by a newer release"), ("0012", "restore it with the release that made it")],
)
def test_another_schema_revision_is_refused(
    backup_file: Path, backend: str, tmp_path: Path, revision: str, reason: str
) -> None:
    other = tmp_path / "other.backup"
    rewrite(backup_file, other, _revision(revision))
    with fresh_target(backend, tmp_path) as url, pytest.raises(BackupError, match=reason):
        restore(url=url, source=other, secret_key=KEY, data_dir=tmp_path / "d")


def test_a_load_failing_half_way_leaves_nothing(
    backup_file: Path, backend: str, tmp_path: Path
) -> None:
    """The last table's part repeats a row (hashes made to fit): everything before it was
    inserted already, and the whole transaction is rolled back."""

    def duplicate(members: dict[str, bytes]) -> None:
        document = manifest(members)
        part = next(p for p in document["parts"] if p["table"] == "messages")
        data = members[part["name"]]
        first = data.splitlines(keepends=True)[0]
        members[part["name"]] = data + first
        part["sha256"] = hashlib.sha256(data + first).hexdigest()
        part["rows"] += 1
        members["manifest.json"] = json.dumps(document).encode()

    broken = tmp_path / "dup.backup"
    rewrite(backup_file, broken, duplicate)
    with fresh_target(backend, tmp_path) as url:
        with pytest.raises(BackupError, match="loading the backup failed, nothing was restored"):
            restore(url=url, source=broken, secret_key=KEY, data_dir=tmp_path / "d")
        assert _empty(url)


def test_a_migrating_server_waits_for_the_restore(
    backup_file: Path, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server starting during the restore migrates only after it, under the same lock."""
    loading, release = threading.Event(), threading.Event()
    load = restoring._load

    def slow_load(connection, reader):  # type: ignore[no-untyped-def]
        loading.set()
        assert release.wait(30)
        return load(connection, reader)

    monkeypatch.setattr(restoring, "_load", slow_load)
    with fresh_target(backend, tmp_path) as url:
        worker = threading.Thread(
            target=restore,
            kwargs={"url": url, "source": backup_file, "secret_key": KEY, "data_dir": tmp_path},
        )
        worker.start()
        assert loading.wait(30)
        migrated = threading.Event()
        migrator = threading.Thread(target=lambda: (upgrade(url), migrated.set()))
        migrator.start()
        assert not migrated.wait(0.5)  # blocked on the lock the restore holds
        release.set()
        worker.join(30)
        migrator.join(30)
        assert migrated.is_set()
        assert row_counts(url)["messages"] == 3


def test_an_unreachable_database_or_a_missing_one_is_a_message(
    backup_file: Path, tmp_path: Path
) -> None:
    down = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    code, out = run_cli(["restore", str(backup_file)], down, tmp_path / "d")
    assert code == 1 and "restore failed:" in out and "Traceback" not in out
    code, out = run_cli(["backup", str(tmp_path / "x")], down, tmp_path / "d")
    assert code == 1 and "backup failed:" in out
    missing = f"sqlite:///{tmp_path / 'none' / 'ostiary.db'}"
    code, out = run_cli(["backup", str(tmp_path / "y")], missing, tmp_path / "d")
    assert code == 1 and "there is no database at" in out
    assert not (tmp_path / "none").exists()
