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

from ostiary.context import AppContext
from ostiary.credentials.models import SecretStatus, TechnicalUserSecret
from ostiary.credentials.naming import legacy_secret_id, new_secret_id
from ostiary.crypto import generate_secret
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
