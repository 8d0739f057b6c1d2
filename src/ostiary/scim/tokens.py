"""SCIM bearer tokens: made by platform administrators, shown once, kept as keyed hashes,
revocable, with their last use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.context import AppContext
from ostiary.crypto import KeyedHasher, generate_secret
from ostiary.errors import NotFound
from ostiary.scim.models import ScimToken

#: A token's last use is written at most this often, so a busy provisioning run does not
#: write its token row on every request.
LAST_USE_PRECISION = timedelta(minutes=1)
#: Recognisable in logs and secret scanners; the secret after it carries the 256 bits.
PREFIX = "ostscim_"


@dataclass(frozen=True)
class IssuedToken:
    """A new token; ``token`` is shown this once."""

    token_id: str
    token: str


def hasher(ctx: AppContext) -> KeyedHasher:
    """The keyed hash SCIM tokens are stored under (its own purpose, so a SCIM token never
    verifies as any other secret)."""
    return KeyedHasher(ctx.secret_key, "scim-token")


def create(session: Session, ctx: AppContext, *, actor: str, description: str) -> IssuedToken:
    """A new SCIM token, audited; the caller commits."""
    token = PREFIX + generate_secret(32)
    row = ScimToken(
        token_id="scim-" + generate_secret(9),
        token_hash=hasher(ctx).hash(token),
        description=description,
        created_by=actor,
        created_at=ctx.clock.now(),
    )
    session.add(row)
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.scim_token_created,
        target=row.token_id,
        after={"description": description},
    )
    return IssuedToken(token_id=row.token_id, token=token)


def listing(session: Session) -> list[ScimToken]:
    """Every token, newest first (revoked ones too, with ``revoked_at``)."""
    return list(session.scalars(select(ScimToken).order_by(ScimToken.created_at.desc())))


def revoke(session: Session, ctx: AppContext, *, actor: str, token_id: str) -> ScimToken:
    """Revoke a token at once; revoking twice is harmless."""
    row = session.get(ScimToken, token_id)
    if row is None:
        raise NotFound(f"no SCIM token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = ctx.clock.now()
        record(
            session,
            clock=ctx.clock,
            actor=actor,
            action=AuditAction.scim_token_revoked,
            target=token_id,
        )
    return row


def authenticate(session: Session, ctx: AppContext, *, token: str) -> ScimToken | None:
    """The live token ``token`` is; ``None`` for an unknown or revoked one.

    Looked up by its keyed hash: the hash of a 256-bit secret reveals nothing, and an
    index lookup takes the same time whichever part of a wrong token is wrong."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = session.scalar(select(ScimToken).where(ScimToken.token_hash == hasher(ctx).hash(token)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def is_use_due(row: ScimToken, *, now: datetime) -> bool:
    """Whether this use should be written (at most once per ``LAST_USE_PRECISION``)."""
    return row.last_used_at is None or now - row.last_used_at >= LAST_USE_PRECISION


def note_use(session: Session, *, token_id: str, address: str, now: datetime) -> None:
    """Record a token's last use (only ever moved forward)."""
    session.execute(
        update(ScimToken)
        .where(ScimToken.token_id == token_id)
        .where((ScimToken.last_used_at.is_(None)) | (ScimToken.last_used_at < now))
        .values(last_used_at=now, last_address=address[:64])
    )
