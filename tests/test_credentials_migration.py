"""Migration 0008 moves technical users' secrets into rows without changing their names,
and a hash the previous release writes during a rolling upgrade still authenticates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, delete, select, text, update

from ostiary.access.snapshot import load, password_credential_id
from ostiary.context import AppContext
from ostiary.credentials.models import ClientKey, TechnicalUserSecret
from ostiary.db import transaction
from ostiary.identity.models import User
from ostiary.identity.service import KEYED_PREFIX
from ostiary.migrate import upgrade
from ostiary.oauth.models import ClientSecret
from tests import factories as f

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_upgrade_copies_each_technical_users_hash_under_its_old_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0007")
    engine = create_engine(url)
    bot, person, sub, client = (uuid.uuid4() for _ in range(4))
    with engine.begin() as c:
        for row_id, user_id, kind, digest in (
            (bot, "T000001", "technical", "hmac-sha256$abc"),
            (person, "P000001", "person", "$argon2id$x"),
        ):
            c.execute(
                text(
                    "INSERT INTO users (id, user_id, kind, status, given_name, family_name,"
                    " display_name, description, password_hash, password_changed_at,"
                    " is_platform_admin, created_at, updated_at, last_used_at)"
                    " VALUES (:id, :uid, :kind, 'active', '', '', '', '', :h, :t, 0, :t, :t, :t)"
                ),
                {"id": row_id.hex, "uid": user_id, "kind": kind, "h": digest, "t": WHEN},
            )
        c.execute(
            text(
                "INSERT INTO subaccounts (id, subdomain, display_name, description, plan,"
                " basic_auth_allowed, message_retention_days, created_at, updated_at)"
                " VALUES (:id, 'acme', 'A', '', 'trial', 1, 30, :t, :t)"
            ),
            {"id": sub.hex, "t": WHEN},
        )
        c.execute(
            text(
                "INSERT INTO oauth_clients (id, client_id, subaccount_id, user_id, description,"
                " status, jwks, created_at, updated_at, last_used_at)"
                " VALUES (:id, 'oc-1', :sub, :user, '', 'active', :jwks, :t, :t, :t)"
            ),
            {
                "id": client.hex,
                "sub": sub.hex,
                "user": bot.hex,
                "jwks": '{"keys": [{"kty": "EC", "kid": "k1"}, {"kty": "EC"}]}',
                "t": WHEN,
            },
        )
        c.execute(
            text(
                "INSERT INTO oauth_client_secrets (id, client_id, secret_hash, created_at)"
                " VALUES (:id, :client, 'h', :t)"
            ),
            {"id": uuid.uuid4().hex, "client": client.hex, "t": WHEN},
        )
    upgrade(url)
    with engine.connect() as c:
        rows = c.execute(select(TechnicalUserSecret)).all()
        keys = sorted(c.execute(select(ClientKey.kid)).scalars())
        secret_use = c.execute(select(ClientSecret.last_used_at)).scalar_one()
        kept = c.execute(select(User.password_hash).where(User.user_id == "T000001")).scalar()
    engine.dispose()
    [row] = rows  # the person's password stays where it was
    assert row.secret_id == password_credential_id("T000001", "hmac-sha256$abc")
    assert row.secret_hash == "hmac-sha256$abc" and row.expires_at is None
    assert row.last_used_at is not None and row.status == "active"
    assert kept == "hmac-sha256$abc"  # the previous release still reads it during the upgrade
    assert keys == ["#1", "k1"]
    assert secret_use is not None


def test_a_hash_written_by_the_previous_release_works_until_a_rotation_adopts_it(
    ctx: AppContext, client: TestClient
) -> None:
    owner = f.person(ctx)
    bot, _ = f.technical_user(ctx, owner=owner)
    legacy = KEYED_PREFIX + ctx.secret_hasher.hash("from-the-old-release")
    with transaction(ctx.sessions) as s:  # as the previous release writes a new password
        s.execute(delete(TechnicalUserSecret).where(TechnicalUserSecret.user_id == bot.id))
        s.execute(update(User).where(User.id == bot.id).values(password_hash=legacy))
    with transaction(ctx.read_sessions) as s:
        facts = load(s).users[bot.user_id]
    named = password_credential_id(bot.user_id, legacy)
    assert [x.secret_id for x in facts.secrets] == [named]
    old = f.basic(bot.user_id, "from-the-old-release")
    assert client.get("/api/v1/me", headers=old).status_code == 200
    rotated = client.post(
        f"/api/v1/technical-users/{bot.user_id}/secrets",
        headers=f.basic(owner.user_id),
        json={"old_valid_until": (ctx.clock.now() + timedelta(days=1)).isoformat()},
    )
    assert rotated.status_code == 201, rotated.text
    new = f.basic(bot.user_id, rotated.json()["password"])
    assert client.get("/api/v1/me", headers=old).status_code == 200  # in its overlap
    assert client.get("/api/v1/me", headers=new).status_code == 200
    with transaction(ctx.read_sessions) as s:
        assert s.scalar(select(User.password_hash).where(User.id == bot.id)) is None
        names = set(
            s.scalars(
                select(TechnicalUserSecret.secret_id).where(TechnicalUserSecret.user_id == bot.id)
            )
        )
    assert names == {named, rotated.json()["secret_id"]}
