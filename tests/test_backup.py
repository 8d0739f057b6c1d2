"""Backup and restore round trips: SQLite and PostgreSQL, each into both (issue 13, item 1).

After a restore, people sign in with their passwords, the technical user calls the flow
with its secret, a token signed before the backup still validates, every message and its
exact payload is there, IDs go on where they stopped, and the audit chain verifies.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from ostiary.app import create_app
from ostiary.audit.verify import verify_chain
from ostiary.backup import export
from ostiary.backup.errors import BackupError
from ostiary.backup.export import make_backup
from ostiary.backup.restore import restore
from ostiary.cli.main import app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from ostiary.db import transaction
from ostiary.runtime.models import Message
from ostiary.settings import Settings
from tests import factories as f
from tests.backup_world import API, World, fresh_target, row_counts
from tests.conftest import BACKENDS


def _backup(ctx: AppContext, tmp_path: Path, *, include_key: bool = False) -> Path:
    target = tmp_path / "ostiary.backup"
    summary = make_backup(
        url=ctx.settings.resolved_database_url,
        target=target,
        secret_key=ctx.secret_key,
        include_secret_key=include_key,
    )
    assert summary.rows > 0
    return target


@pytest.mark.parametrize("target_backend", BACKENDS)
def test_round_trip_keeps_every_credential_token_and_message(
    client: TestClient,
    ctx: AppContext,
    clock: FrozenClock,
    tmp_path: Path,
    backend: str,
    target_backend: str,
) -> None:
    world = World(client, ctx)
    file = _backup(ctx, tmp_path)
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    before = row_counts(ctx.settings.resolved_database_url)
    with fresh_target(target_backend, tmp_path) as url:
        summary = restore(
            url=url,
            source=file,
            secret_key=ctx.settings.secret_key,
            data_dir=tmp_path / "restored-data",
        )
        assert summary.tables == before
        assert row_counts(url) == before
        settings = ctx.settings.model_copy(update={"database_url": url})
        restored = build_context(settings, clock=clock)
        try:
            with TestClient(create_app(settings, ctx=restored)) as http:
                assert http.get("/api/v1/me", headers=f.basic(world.person)).status_code == 200
                call = http.post(
                    "/t/acme/http/orders/v1",
                    content=b"<after/>",
                    headers=f.basic(world.sender, world.secret),
                )
                assert call.status_code == 200, call.text
                bearer = {"Authorization": f"Bearer {world.token}"}
                assert (
                    http.post("/t/acme/http/orders/v1", content=b"x", headers=bearer).status_code
                    == 200
                )
                fresh = http.post(
                    "/oauth/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": world.client_id,
                        "client_secret": world.client_secret,
                    },
                )
                assert fresh.status_code == 200, fresh.text
                # New rows after the restore get new IDs (PostgreSQL's sequences moved on).
                made = http.post(
                    f"{API}/beta/flows", headers=world.root, json={"path": "after/restore"}
                )
                assert made.status_code == 201, made.text
                one = next(iter(world.sent))
                payload = http.get(f"{API}/acme/messages/{one}/payload", headers=world.root)
                assert payload.content == world.sent[one]
            with transaction(restored.read_sessions) as session:
                stored = dict(
                    session.execute(
                        select(Message.id, Message.payload).where(Message.id.in_(world.sent))
                    ).all()
                )
                assert stored == world.sent
                check = verify_chain(session)
                assert check.ok, check.reason
                assert check.events > 10
        finally:
            restored.engine.dispose()


def test_the_secret_key_travels_only_when_asked(
    client: TestClient, ctx: AppContext, clock: FrozenClock, tmp_path: Path, backend: str
) -> None:
    world = World(client, ctx, messages=2)
    file = _backup(ctx, tmp_path, include_key=True)
    data_dir = tmp_path / "new-data"
    with fresh_target(backend, tmp_path) as url:
        summary = restore(url=url, source=file, secret_key=None, data_dir=data_dir)
        assert summary.key_file == data_dir / "secret_key"
        assert stat.S_IMODE(summary.key_file.stat().st_mode) == 0o600
        assert summary.key_file.read_bytes().strip() == ctx.secret_key
        settings = Settings(data_dir=data_dir, database_url=url, public_url="http://testserver")
        restored = build_context(settings, clock=clock)
        try:
            with TestClient(create_app(settings, ctx=restored)) as http:
                bearer = {"Authorization": f"Bearer {world.token}"}
                assert (
                    http.post("/t/acme/http/orders/v1", content=b"x", headers=bearer).status_code
                    == 200
                )
        finally:
            restored.engine.dispose()


def test_the_snapshot_holds_nothing_committed_after_it_began(
    ctx: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """A person created while the backup reads (after its transaction began, before it read
    the users table) is not in the file; the backup sees one moment of the database."""
    f.admin(ctx)
    lines = export._lines
    written: list[str] = []

    def meanwhile(connection, table):  # type: ignore[no-untyped-def]
        if table.name == "users" and not written:
            written.append(f.person(ctx).user_id)  # committed by another connection
        return lines(connection, table)

    monkeypatch.setattr(export, "_lines", meanwhile)
    file = tmp_path / "b"
    summary = make_backup(
        url=ctx.settings.resolved_database_url,
        target=file,
        secret_key=ctx.secret_key,
        include_secret_key=False,
    )
    assert written and summary.tables["users"] == 1
    assert row_counts(ctx.settings.resolved_database_url)["users"] == 2


def test_backup_refuses_an_existing_file_and_a_wrong_key(
    ctx: AppContext, client: TestClient, tmp_path: Path, backend: str
) -> None:
    World(client, ctx, messages=1)
    existing = tmp_path / "taken"
    existing.write_text("mine")
    with pytest.raises(BackupError, match="exists already"):
        make_backup(
            url=ctx.settings.resolved_database_url,
            target=existing,
            secret_key=ctx.secret_key,
            include_secret_key=False,
        )
    assert existing.read_text() == "mine"
    with pytest.raises(BackupError, match="does not open with the secret key"):
        make_backup(
            url=ctx.settings.resolved_database_url,
            target=tmp_path / "new",
            secret_key=b"another-key-0123456789abcdef",
            include_secret_key=False,
        )
    assert sorted(p.name for p in tmp_path.iterdir() if "new" in p.name) == []


def test_the_cli_warns_loudly_either_way(ctx: AppContext, tmp_path: Path, backend: str) -> None:
    f.admin(ctx)
    env = {
        "OSTIARY_DATABASE_URL": ctx.settings.resolved_database_url,
        "OSTIARY_SECRET_KEY": ctx.settings.secret_key or "",
        "OSTIARY_DATA_DIR": str(tmp_path / "data"),
    }
    runner = CliRunner()
    plain = runner.invoke(app, ["backup", str(tmp_path / "plain")], env=env)
    assert plain.exit_code == 0, plain.output
    text = " ".join(plain.stderr.split())
    assert (
        "WARNING: The secret key is NOT in this file. You need the same secret key to restore: keyed hashes and encrypted signing keys are unusable without it."
        in text
    )
    keyed = runner.invoke(app, ["backup", str(tmp_path / "keyed"), "--include-secret-key"], env=env)
    assert keyed.exit_code == 0, keyed.output
    assert "WARNING: This file now holds the key: protect it." in " ".join(keyed.stderr.split())
    again = runner.invoke(app, ["backup", str(tmp_path / "keyed")], env=env)
    assert again.exit_code == 1
    assert "backup refused:" in again.stderr and "exists already" in again.stderr


def test_a_null_json_column_stays_sql_null(
    client: TestClient, ctx: AppContext, tmp_path: Path, backend: str
) -> None:
    """An OAuth client without a JWKS has SQL NULL there, also after the restore."""
    from sqlalchemy import create_engine

    from ostiary.oauth.models import OAuthClient

    world = World(client, ctx, messages=0)
    file = _backup(ctx, tmp_path)
    with fresh_target(backend, tmp_path) as url:
        restore(url=url, source=file, secret_key=ctx.settings.secret_key, data_dir=tmp_path / "d")
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                nulls = conn.execute(
                    select(OAuthClient.client_id).where(OAuthClient.jwks.is_(None))
                ).scalars()
                assert world.client_id in list(nulls)
        finally:
            engine.dispose()


def test_users_are_loaded_after_the_user_who_owns_them() -> None:
    """Rows come ordered by primary key (a random UUID), so a technical user can come before
    its owner; PostgreSQL checks the foreign key at once."""
    from ostiary.backup.restore import _parents_first
    from ostiary.models import Base

    users = Base.metadata.tables["users"]
    rows = [
        {"id": "b", "owner_id": "c"},
        {"id": "a", "owner_id": None},
        {"id": "c", "owner_id": "a"},
        {"id": "d", "owner_id": "d"},
    ]
    order = [r["id"] for r in _parents_first(users, rows)]
    assert sorted(order) == ["a", "b", "c", "d"]
    for row in rows:
        if row["owner_id"] is not None:
            assert order.index(row["owner_id"]) <= order.index(row["id"]), order
