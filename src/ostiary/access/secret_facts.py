"""Technical users' secrets as the grants snapshot carries them (issue 11), read with the
rest of the snapshot (``access.snapshot.load``) so the runtime verifies without a query."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.identity.models import UserKind


def password_credential_id(user_id: str, password_hash: str | None) -> str:
    """A stable name for a user's password credential: ``pwd-<user>-<10 hex of its hash>``."""
    digest = hashlib.sha256((password_hash or "").encode()).hexdigest()[:10]
    return f"pwd-{user_id}-{digest}"


@dataclass(frozen=True)
class SecretFacts:
    """One generated secret of a technical user (``credentials.models.TechnicalUserSecret``)."""

    secret_id: str
    #: As stored: ``KEYED_PREFIX`` + HMAC, or argon2 (a converted person's own password).
    stored: str
    #: It stops working at this time (``None``: no expiry).
    expires_at: datetime | None


def load_secrets(session: Session) -> dict[uuid.UUID, list[SecretFacts]]:
    """Active secrets of technical users by user, oldest first (revoked ones are gone)."""
    from ostiary.credentials.models import SecretStatus, TechnicalUserSecret

    found: dict[uuid.UUID, list[SecretFacts]] = {}
    for row in session.execute(
        select(
            TechnicalUserSecret.user_id,
            TechnicalUserSecret.secret_id,
            TechnicalUserSecret.secret_hash,
            TechnicalUserSecret.expires_at,
        )
        .where(TechnicalUserSecret.status == SecretStatus.active)
        .order_by(TechnicalUserSecret.created_at, TechnicalUserSecret.secret_id)
    ):
        found.setdefault(row.user_id, []).append(
            SecretFacts(row.secret_id, row.secret_hash, row.expires_at)
        )
    return found


def secrets_of(
    row_id: uuid.UUID,
    user_id: str,
    kind: UserKind,
    password_hash: str | None,
    secrets: dict[uuid.UUID, list[SecretFacts]],
) -> tuple[SecretFacts, ...]:
    """A technical user's secrets: its rows; without any, a hash the previous release wrote
    into ``users.password_hash`` during a rolling upgrade (migration 0008), by its old name."""
    if kind is not UserKind.technical:
        return ()
    if row_id in secrets:
        return tuple(secrets[row_id])
    if password_hash:
        return (SecretFacts(password_credential_id(user_id, password_hash), password_hash, None),)
    return ()
