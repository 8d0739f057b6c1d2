"""Migration 0010 re-chains existing audit events under the key, after checking the old
unkeyed chain, and says in a keyed event what it found (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, select, text

from ostiary.audit.models import AuditEvent
from ostiary.audit.verify import verify_chain
from ostiary.context import build_context
from ostiary.db import transaction
from ostiary.migrate import alembic_config, upgrade
from ostiary.settings import Settings

SECRET = "migration-test-secret-0123456789"


def _before_0010(url: str) -> str:
    """The revision 0010 follows (the integrator may re-chain the migrations)."""
    down = ScriptDirectory.from_config(alembic_config(url)).get_revision("0010").down_revision
    assert isinstance(down, str)
    return down


@pytest.fixture
def empty_url(fresh_database_url: str) -> str:
    """A database of the chosen backend with no tables yet."""
    return fresh_database_url


def _legacy_events(url: str, count: int, *, edit: int | None = None) -> None:
    """Rows as releases before 0010 wrote them: an unkeyed SHA-256 chain."""
    engine = create_engine(url)
    prev = "0" * 64
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    with engine.begin() as conn:
        for n in range(count):
            at = start + timedelta(minutes=n)
            detail = {"after": {"n": n}}
            row = [prev, at.isoformat(), "P000001", "subaccount:created", f"sd-{n}", "t", detail]
            canonical = json.dumps(row, sort_keys=True, separators=(",", ":"), default=str)
            digest = hashlib.sha256(canonical.encode()).hexdigest()
            conn.execute(
                text(
                    "INSERT INTO audit_events (occurred_at, actor, action, subdomain, target,"
                    " detail, prev_hash, hash) VALUES (:at, 'P000001', 'subaccount:created',"
                    " :sd, 't', :detail, :prev, :hash)"
                ),
                {
                    "at": at if url.startswith("postgresql") else at.replace(tzinfo=None),
                    "sd": f"sd-{n}",
                    "detail": json.dumps(detail),
                    "prev": prev,
                    "hash": digest,
                },
            )
            prev = digest
        if edit is not None:
            conn.execute(
                text("UPDATE audit_events SET target = 'edited' WHERE id = :id"), {"id": edit}
            )
    engine.dispose()


def _rekey_detail(url: str, tmp_path: Path) -> tuple[bool, dict[str, object]]:
    settings = Settings(data_dir=tmp_path / "data", database_url=url, secret_key=SECRET)
    ctx = build_context(settings)
    try:
        with transaction(ctx.read_sessions) as session:
            ok = verify_chain(session).ok
            rekey = session.scalar(
                select(AuditEvent).where(AuditEvent.action == "audit:chain:rekeyed")
            )
            assert rekey is not None
            return ok, dict(rekey.detail["after"])
    finally:
        ctx.engine.dispose()


def test_intact_legacy_events_are_rechained_and_verify(empty_url: str, tmp_path: Path) -> None:
    upgrade(empty_url, _before_0010(empty_url))
    _legacy_events(empty_url, 4)
    upgrade(empty_url, "0010", secret_key=SECRET.encode())
    ok, detail = _rekey_detail(empty_url, tmp_path)
    assert ok
    assert detail["legacy_events"] == 4 and detail["legacy_intact"] is True


def test_a_legacy_chain_broken_before_the_upgrade_is_recorded(
    empty_url: str, tmp_path: Path
) -> None:
    upgrade(empty_url, _before_0010(empty_url))
    _legacy_events(empty_url, 4, edit=2)
    upgrade(empty_url, "0010", secret_key=SECRET.encode())
    ok, detail = _rekey_detail(empty_url, tmp_path)
    assert ok  # re-chained; the break before the upgrade is what the rekey event records
    assert detail["legacy_intact"] is False and detail["legacy_first_broken_id"] == 2


def test_rechaining_existing_events_without_the_secret_key_refuses(empty_url: str) -> None:
    upgrade(empty_url, _before_0010(empty_url))
    _legacy_events(empty_url, 1)
    with pytest.raises(RuntimeError, match="secret key"):
        upgrade(empty_url, "0010")
