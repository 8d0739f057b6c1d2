"""Console sessions: random cookie secrets stored as keyed hashes, each with a CSRF token."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record as audit
from ostiary.context import AppContext
from ostiary.crypto import KeyedHasher, constant_time_equals, generate_secret
from ostiary.errors import NotFound
from ostiary.identity.models import ConsoleSession, User

#: How stale "last seen" may get before a request writes it again: one write a minute
#: per session at most, never one per request.
TOUCH_EVERY = timedelta(minutes=1)
_ADDRESS_MAX, _AGENT_MAX = 64, 300


@dataclass(frozen=True)
class SignedIn:
    """A live console session and its user."""

    user: User
    csrf_token: str
    must_change_password: bool
    token_hash: str
    last_seen_at: datetime | None = None


@dataclass(frozen=True)
class SessionInfo:
    """One of a user's sessions as the sessions list shows it."""

    session_id: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime | None
    address: str | None
    user_agent: str | None
    current: bool


def _hasher(ctx: AppContext) -> KeyedHasher:
    return KeyedHasher(ctx.secret_key, "console-session")


def session_id_of(token_hash: str) -> str:
    """The public ID of a session: a digest of its stored hash, so showing it reveals
    nothing that finds the session, and no column or migration of IDs is needed."""
    return "S" + hashlib.sha256(f"console-session-id:{token_hash}".encode()).hexdigest()[:20]


def hash_of(ctx: AppContext, *, secret: str) -> str:
    """The stored hash of a cookie secret (to name the caller's own session)."""
    return _hasher(ctx).hash(secret)


def start(
    session: Session,
    ctx: AppContext,
    *,
    user: User,
    must_change_password: bool,
    address: str | None = None,
    user_agent: str | None = None,
) -> str:
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
            last_seen_at=now,
            address=(address or "")[:_ADDRESS_MAX] or None,
            user_agent=(user_agent or "")[:_AGENT_MAX] or None,
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


def needs_touch(ctx: AppContext, signed_in: SignedIn) -> bool:
    """Whether this request should record itself as the session's last use."""
    seen = signed_in.last_seen_at
    return seen is None or ctx.clock.now() - seen >= TOUCH_EVERY


def touch(
    session: Session, ctx: AppContext, *, token_hash: str, address: str, user_agent: str
) -> None:
    """Record the session's last use, and the address and user agent it came with."""
    record = session.get(ConsoleSession, token_hash)
    if record is not None:
        record.last_seen_at = ctx.clock.now()
        record.address = address[:_ADDRESS_MAX] or None
        record.user_agent = user_agent[:_AGENT_MAX] or None


def listing(
    session: Session, ctx: AppContext, *, user: User, current: str | None = None
) -> list[SessionInfo]:
    """The user's live sessions, newest first; ``current`` is the caller's own hash."""
    rows = session.scalars(
        select(ConsoleSession)
        .where(ConsoleSession.user_id == user.id, ConsoleSession.expires_at > ctx.clock.now())
        .order_by(ConsoleSession.created_at.desc(), ConsoleSession.token_hash)
    )
    return [
        SessionInfo(
            session_id=session_id_of(r.token_hash),
            created_at=r.created_at,
            expires_at=r.expires_at,
            last_seen_at=r.last_seen_at,
            address=r.address,
            user_agent=r.user_agent,
            current=current is not None and constant_time_equals(r.token_hash, current),
        )
        for r in rows
    ]


def revoke(session: Session, ctx: AppContext, *, user: User, session_id: str) -> None:
    """End one of the user's own sessions by its public ID (audited as a sign-out);
    another user's is ``NotFound``."""
    hashes = list(
        session.scalars(select(ConsoleSession.token_hash).where(ConsoleSession.user_id == user.id))
    )
    for token_hash in hashes:
        if constant_time_equals(session_id_of(token_hash), session_id):
            session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash))
            audit(
                session,
                clock=ctx.clock,
                actor=user.user_id,
                action=AuditAction.signed_out,
                target=user.user_id,
                after={"session_id": session_id},
            )
            return
    raise NotFound(f"no session {session_id}")


def sign_out_everywhere(
    session: Session, ctx: AppContext, *, user: User, keep: str | None = None
) -> int:
    """End every live session of ``user`` but ``keep`` (audited); returns how many ended."""
    live = [s for s in listing(session, ctx, user=user, current=keep) if not s.current]
    end_all_for(session, user=user, keep=keep)
    audit(
        session,
        clock=ctx.clock,
        actor=user.user_id,
        action=AuditAction.sessions_ended,
        target=user.user_id,
        after={"ended": len(live)},
    )
    return len(live)


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
        last_seen_at=record.last_seen_at,
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
    """Delete every session of ``user`` (password change, sign out everywhere, erasure),
    except the one whose hash is ``keep``."""
    statement = delete(ConsoleSession).where(ConsoleSession.user_id == user.id)
    if keep is not None:
        statement = statement.where(ConsoleSession.token_hash != keep)
    session.execute(statement)
