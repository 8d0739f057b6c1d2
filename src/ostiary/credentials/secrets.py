"""Storing technical-user secrets as rows: the one place a secret is made or adopted.

``identity.technical`` (creating, converting) and ``credentials.rotation`` both come here,
so every secret is generated the same way (256 bits, keyed hash) and the old
``users.password_hash`` column is emptied the first time a user's secrets are written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.clock import as_utc
from ostiary.context import AppContext
from ostiary.credentials.models import SecretStatus, TechnicalUserSecret
from ostiary.credentials.naming import legacy_secret_id, new_secret_id
from ostiary.crypto import constant_time_equals, generate_secret
from ostiary.identity.models import User
from ostiary.identity.service import KEYED_PREFIX


@dataclass(frozen=True)
class NewSecret:
    """A stored secret and its plain text, to be shown exactly once."""

    row: TechnicalUserSecret
    secret: str


def secrets_of(session: Session, *, user: User) -> list[TechnicalUserSecret]:
    """The user's secret rows, oldest first (after adopting a legacy password)."""
    adopt_legacy(session, user=user)
    return list(
        session.scalars(
            select(TechnicalUserSecret)
            .where(TechnicalUserSecret.user_id == user.id)
            .order_by(TechnicalUserSecret.created_at, TechnicalUserSecret.secret_id)
        )
    )


def adopt_legacy(session: Session, *, user: User, expires_at: datetime | None = None) -> None:
    """Move a hash still held in ``users.password_hash`` into a secret row (keeping its
    name), and empty the column: from here on the rows are the only truth."""
    if not user.password_hash:
        return
    session.add(
        TechnicalUserSecret(
            secret_id=legacy_secret_id(user.user_id, user.password_hash),
            user_id=user.id,
            secret_hash=user.password_hash,
            status=SecretStatus.active,
            created_at=user.password_changed_at or user.created_at,
            expires_at=expires_at,
            last_used_at=user.last_used_at,
        )
    )
    user.password_hash = None
    session.flush()


def add_secret(
    session: Session, ctx: AppContext, *, user: User, expires_at: datetime | None = None
) -> NewSecret:
    """Generate a secret (256 bits) for ``user`` and store its keyed hash."""
    secret = generate_secret(32)
    now = ctx.clock.now()
    row = TechnicalUserSecret(
        secret_id=new_secret_id(user.user_id),
        user_id=user.id,
        secret_hash=KEYED_PREFIX + ctx.secret_hasher.hash(secret),
        status=SecretStatus.active,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    user.password_changed_at = now
    user.updated_at = now
    session.flush()
    return NewSecret(row, secret)


def verify_current(
    session: Session, ctx: AppContext, *, user: User, password: str, now: datetime
) -> bool:
    """Whether ``password`` is one of the user's working secrets (to change it: the gate
    authenticates callers, ``ostiary.gate.authenticators``)."""
    digest = ctx.secret_hasher.hash(password)
    found = False
    for row in secrets_of(session, user=user):
        if row.status is not SecretStatus.active:
            continue
        if row.expires_at is not None and as_utc(row.expires_at) <= now:
            continue
        if row.secret_hash.startswith(KEYED_PREFIX):
            found |= constant_time_equals(digest, row.secret_hash.removeprefix(KEYED_PREFIX))
        elif ctx.passwords.verify(row.secret_hash, password):
            found = True
    return found


def replace_with_chosen(session: Session, ctx: AppContext, *, user: User, new_hash: str) -> None:
    """A technical user chose its own password (``POST /api/v1/me/password``): it replaces
    every secret at once, like a reset, and is throttled like a person's from now on."""
    now = ctx.clock.now()
    for row in secrets_of(session, user=user):
        if row.expires_at is None or as_utc(row.expires_at) > now:
            row.expires_at = now
    session.add(
        TechnicalUserSecret(
            secret_id=new_secret_id(user.user_id),
            user_id=user.id,
            secret_hash=new_hash,
            status=SecretStatus.active,
            created_at=now,
            expires_at=None,
        )
    )
    user.password_changed_at = now
    user.updated_at = now
    session.flush()
