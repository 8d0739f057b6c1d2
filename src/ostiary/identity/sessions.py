"""Console sessions: random cookie secrets stored as keyed hashes, each with a CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record as audit
from ostiary.context import AppContext
from ostiary.crypto import KeyedHasher, generate_secret
from ostiary.identity.models import ConsoleSession, User


@dataclass(frozen=True)
class SignedIn:
    """A live console session and its user."""

    user: User
    csrf_token: str
    must_change_password: bool
    token_hash: str


def _hasher(ctx: AppContext) -> KeyedHasher:
    return KeyedHasher(ctx.secret_key, "console-session")


def start(session: Session, ctx: AppContext, *, user: User, must_change_password: bool) -> str:
    """Open a session for ``user``; returns the secret for the cookie."""
    secret = generate_secret()
    now = ctx.clock.now()
    session.add(
        ConsoleSession(
            token_hash=_hasher(ctx).hash(secret),
            user_id=user.id,
            csrf_token=generate_secret(24),
            created_at=now,
            expires_at=now + timedelta(hours=ctx.settings.session_ttl_hours),
            must_change_password=must_change_password,
        )
    )
    audit(
        session,
        clock=ctx.clock,
        actor=user.user_id,
        action=AuditAction.signed_in,
        target=user.user_id,
        after={"must_change_password": must_change_password},
    )
    return secret


def resolve(session: Session, ctx: AppContext, *, secret: str) -> SignedIn | None:
    """The live session behind a cookie secret, or ``None``."""
    if not secret or len(secret) > 200:
        return None
    record = session.get(ConsoleSession, _hasher(ctx).hash(secret))
    if record is None or record.expires_at <= ctx.clock.now():
        return None
    user = session.get(User, record.user_id)
    if user is None:  # whether the user may still be in is the gate's (console_session)
        return None
    return SignedIn(
        user=user,
        csrf_token=record.csrf_token,
        must_change_password=record.must_change_password,
        token_hash=record.token_hash,
    )


def password_changed(session: Session, *, token_hash: str) -> None:
    """Lift the forced password change from a session."""
    record = session.get(ConsoleSession, token_hash)
    if record is not None:
        record.must_change_password = False


def end(session: Session, ctx: AppContext, *, secret: str) -> None:
    """Sign out: delete the session (audited when there was one)."""
    record = session.get(ConsoleSession, _hasher(ctx).hash(secret)) if secret else None
    if record is None:
        return
    user = session.get(User, record.user_id)
    session.delete(record)
    if user is not None:
        audit(
            session,
            clock=ctx.clock,
            actor=user.user_id,
            action=AuditAction.signed_out,
            target=user.user_id,
        )


def end_all_for(session: Session, *, user: User, keep: str | None = None) -> None:
    """Delete every session of ``user`` (after a password change), except ``keep``."""
    statement = delete(ConsoleSession).where(ConsoleSession.user_id == user.id)
    if keep is not None:
        statement = statement.where(ConsoleSession.token_hash != keep)
    session.execute(statement)
