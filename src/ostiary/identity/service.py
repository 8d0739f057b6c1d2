"""Registration, activation, sign-in, password changes and resets.

Services take keyword-only arguments and never commit: the caller owns the transaction.
Functions that send mail return the outbox IDs to deliver once the caller committed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from ostiary.context import AppContext
from ostiary.crypto import constant_time_equals, generate_secret
from ostiary.errors import (
    Conflict,
    InvalidInput,
    InvalidToken,
    NotFound,
)
from ostiary.gate.throttle import Account, Kind
from ostiary.identity import mails, sessions
from ostiary.identity.emails import may_self_register
from ostiary.identity.models import (
    IdCounter,
    OneTimeToken,
    PasswordHistory,
    TokenPurpose,
    User,
    UserKind,
    UserStatus,
)
from ostiary.identity.policy import (
    check_new_password,
    current_policy,
    get_policy,
    password_expires_at,
)
from ostiary.mail import service as mail

KEYED_PREFIX = "hmac-sha256$"
_PREFIX = {UserKind.person: "P", UserKind.technical: "T"}


def normalize_email(email: str) -> str:
    """The form in which e-mails are compared: trimmed and lower-cased."""
    return email.strip().lower()


def allocate_user_id(session: Session, *, kind: UserKind) -> str:
    """The next human-readable user ID (``P000001`` for persons, ``T000001`` for technical).

    The prefix is fixed at creation: a person converted to a technical user keeps its ID.
    """
    name = f"user_id:{kind.value}"
    value = session.execute(
        update(IdCounter)
        .where(IdCounter.name == name)
        .values(value=IdCounter.value + 1)
        .returning(IdCounter.value)
    ).scalar()
    if value is None:
        try:
            with session.begin_nested():
                session.add(IdCounter(name=name, value=1))
            value = 1
        except IntegrityError:
            return allocate_user_id(session, kind=kind)
    return f"{_PREFIX[kind]}{value:06d}"


def get_user(session: Session, *, user_id: str) -> User:
    """The user with this user ID, or ``NotFound``."""
    user = session.scalar(select(User).where(User.user_id == user_id.strip().upper()))
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def _issue_token(
    session: Session, ctx: AppContext, *, user: User, purpose: TokenPurpose, ttl: timedelta
) -> str:
    token = generate_secret()
    now = ctx.clock.now()
    session.add(
        OneTimeToken(
            token_hash=ctx.token_hasher.hash(token),
            purpose=purpose,
            user_id=user.id,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return token


def _consume_token(session: Session, ctx: AppContext, *, token: str, purpose: TokenPurpose) -> User:
    """Mark a link token used and return its user; forged, used and expired tokens fail alike."""
    if not token or len(token) > 200:
        raise InvalidToken("this link is not valid")
    record = session.get(OneTimeToken, ctx.token_hasher.hash(token), with_for_update=True)
    if record is None or record.purpose is not purpose:
        raise InvalidToken("this link is not valid")
    if record.used_at is not None:
        raise InvalidToken("this link was already used")
    if record.expires_at <= ctx.clock.now():
        raise InvalidToken("this link has expired")
    # Guarded update: of two concurrent uses only one sees the row still unused.
    result = session.execute(
        update(OneTimeToken)
        .where(OneTimeToken.token_hash == record.token_hash, OneTimeToken.used_at.is_(None))
        .values(used_at=ctx.clock.now())
    )
    claimed = cast(CursorResult[Any], result).rowcount
    if claimed != 1:
        raise InvalidToken("this link was already used")
    user = session.get(User, record.user_id)
    if user is None:
        raise InvalidToken("this link is not valid")
    return user


def _set_password_hash(session: Session, ctx: AppContext, *, user: User, new_hash: str) -> None:
    if user.password_hash:
        session.add(
            PasswordHistory(
                user_id=user.id, password_hash=user.password_hash, created_at=ctx.clock.now()
            )
        )
    user.password_hash = new_hash
    user.password_changed_at = ctx.clock.now()
    user.updated_at = ctx.clock.now()


@dataclass(frozen=True)
class Registration:
    """What a registration did; the caller answers the same in both cases (contract C3)."""

    mail_ids: list[int]


def register(
    session: Session,
    ctx: AppContext,
    *,
    email: str,
    given_name: str,
    family_name: str,
    password: str,
) -> Registration:
    """Register a person, or mail the owner of a taken e-mail a notice instead."""
    normalized = normalize_email(email)
    policy = get_policy(session, kind=UserKind.person, clock=ctx.clock)
    check_new_password(session, policy=policy, password=password, hasher=ctx.passwords)
    password_hash = ctx.passwords.hash(password)  # hashed in every branch: equal timing
    if not may_self_register(email, allowed=ctx.settings.registration_domains):
        # Outside OSTIARY_REGISTRATION_DOMAINS: the same answer, no account, no mail.
        return Registration([])
    existing = session.scalar(
        select(User).where(User.email_normalized == normalized, User.kind == UserKind.person)
    )
    base = ctx.settings.public_url
    if existing is not None:
        subject, body = mails.already_registered(
            name=existing.given_name or existing.email or "",
            signin_link=f"{base}/console/signin",
            reset_link=f"{base}/console/password-reset",
        )
        return Registration(
            [
                mail.enqueue(
                    session,
                    clock=ctx.clock,
                    recipient=existing.email or email,
                    subject=subject,
                    body=body,
                )
            ]
        )
    now = ctx.clock.now()
    user = User(
        id=uuid.uuid4(),
        user_id=allocate_user_id(session, kind=UserKind.person),
        kind=UserKind.person,
        status=UserStatus.pending,
        email=email.strip(),
        email_normalized=normalized,
        given_name=given_name.strip(),
        family_name=family_name.strip(),
        display_name=f"{given_name.strip()} {family_name.strip()}".strip(),
        password_hash=password_hash,
        password_changed_at=now,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        # A concurrent registration took the address a moment ago: answer like a fresh one.
        return Registration([])
    hours = ctx.settings.activation_ttl_hours
    token = _issue_token(
        session, ctx, user=user, purpose=TokenPurpose.activation, ttl=timedelta(hours=hours)
    )
    subject, body = mails.activation(
        name=user.given_name, link=f"{base}/console/activate?token={token}", hours=hours
    )
    return Registration(
        [
            mail.enqueue(
                session, clock=ctx.clock, recipient=user.email or email, subject=subject, body=body
            )
        ]
    )


def activate(session: Session, ctx: AppContext, *, token: str) -> User:
    """Activate the person the activation token was issued to."""
    user = _consume_token(session, ctx, token=token, purpose=TokenPurpose.activation)
    if user.status is not UserStatus.pending:
        raise InvalidToken("this account is already activated")
    user.status = UserStatus.active
    user.activated_at = ctx.clock.now()
    user.updated_at = ctx.clock.now()
    return user


def verify_keyed(ctx: AppContext, stored: str | None, password: str) -> bool:
    """Check a generated secret against its stored keyed hash (``None``: always false)."""
    digest = ctx.secret_hasher.hash(password)
    return stored is not None and constant_time_equals(digest, stored.removeprefix(KEYED_PREFIX))


def verify_secret(ctx: AppContext, user: User, password: str) -> bool:
    """Check a known user's password: a generated secret's keyed hash, or argon2.

    Authentication of callers is the gate's (``ostiary.gate.authenticators``); this serves
    changing and rehashing a password the user just proved. A technical user's secrets
    are rows of the credentials domain, any working one will do."""
    if user.kind is UserKind.technical:
        from ostiary.credentials.secrets import verify_current  # it imports this module

        session = object_session(user)
        assert session is not None, "a technical user's secrets are read in its session"
        return verify_current(session, ctx, user=user, password=password, now=ctx.clock.now())
    stored = user.password_hash
    if stored is not None and stored.startswith(KEYED_PREFIX):
        return verify_keyed(ctx, stored, password)
    return ctx.passwords.verify(stored, password)


def needs_rehash(ctx: AppContext, user: User) -> bool:
    """Whether the user's argon2 hash was made with other parameters than today's."""
    stored = user.password_hash or ""
    return stored.startswith("$argon2") and ctx.passwords.needs_rehash(stored)


def rehash(session: Session, ctx: AppContext, *, user_id: str, password: str) -> None:
    """Store a fresh hash of a just-verified password (rehash-on-verify).

    Callers run this in its own short write transaction after authentication, so the
    slow verification never holds a write lock.
    """
    user = session.scalar(select(User).where(User.user_id == user_id))
    if user is not None and needs_rehash(ctx, user) and verify_secret(ctx, user, password):
        user.password_hash = ctx.passwords.hash(password)


def is_password_expired(session: Session, ctx: AppContext, *, user: User) -> bool:
    """Whether the user's password is past its policy's expiry (reads only)."""
    policy = current_policy(session, kind=user.kind, clock=ctx.clock)
    expires = password_expires_at(user, policy)
    return expires is not None and expires <= ctx.clock.now()


def change_password(
    session: Session,
    ctx: AppContext,
    *,
    user: User,
    current_password: str,
    new_password: str,
    keep_session: str | None = None,
) -> None:
    """Change a user's own password after checking the current one; every other session
    of the user ends (``keep_session``: the stored hash of the one the change came from)."""
    if not verify_secret(ctx, user, current_password):
        raise InvalidInput("the current password is not correct")
    if current_password == new_password:
        raise InvalidInput("the new password must differ from the current one")
    policy = get_policy(session, kind=user.kind, clock=ctx.clock)
    check_new_password(
        session, policy=policy, password=new_password, hasher=ctx.passwords, user=user
    )
    if user.kind is UserKind.technical:
        from ostiary.credentials.secrets import replace_with_chosen  # it imports this module

        replace_with_chosen(session, ctx, user=user, new_hash=ctx.passwords.hash(new_password))
        return
    _set_password_hash(session, ctx, user=user, new_hash=ctx.passwords.hash(new_password))
    sessions.end_all_for(session, user=user, keep=keep_session)


def request_password_reset(session: Session, ctx: AppContext, *, email: str) -> list[int]:
    """Mail a reset link to an active person with this e-mail; say nothing either way."""
    user = session.scalar(
        select(User).where(
            User.email_normalized == normalize_email(email), User.kind == UserKind.person
        )
    )
    if user is None or user.status is not UserStatus.active:
        return []
    minutes = ctx.settings.reset_ttl_minutes
    token = _issue_token(
        session, ctx, user=user, purpose=TokenPurpose.password_reset, ttl=timedelta(minutes=minutes)
    )
    subject, body = mails.password_reset(
        name=user.given_name,
        link=f"{ctx.settings.public_url}/console/password-reset/confirm?token={token}",
        minutes=minutes,
    )
    return [
        mail.enqueue(
            session, clock=ctx.clock, recipient=user.email or email, subject=subject, body=body
        )
    ]


def reset_password(session: Session, ctx: AppContext, *, token: str, new_password: str) -> User:
    """Set a new password through a reset link."""
    user = _consume_token(session, ctx, token=token, purpose=TokenPurpose.password_reset)
    policy = get_policy(session, kind=user.kind, clock=ctx.clock)
    check_new_password(
        session, policy=policy, password=new_password, hasher=ctx.passwords, user=user
    )
    _set_password_hash(session, ctx, user=user, new_hash=ctx.passwords.hash(new_password))
    sessions.end_all_for(session, user=user)
    # A reset mail always gets the owner back in, whoever guessed at the account before.
    ctx.throttle.clear(session, Account(Kind(user.kind), user.user_id))
    return user


def ensure_admin(session: Session, ctx: AppContext, *, email: str, password: str) -> User:
    """Create the first platform administrator (idempotent: an existing one is kept as is)."""
    normalized = normalize_email(email)
    existing = session.scalar(
        select(User).where(User.email_normalized == normalized, User.kind == UserKind.person)
    )
    if existing is not None:
        if not existing.is_platform_admin:
            raise Conflict(f"{email} exists and is not a platform administrator")
        return existing
    now = ctx.clock.now()
    user = User(
        id=uuid.uuid4(),
        user_id=allocate_user_id(session, kind=UserKind.person),
        kind=UserKind.person,
        status=UserStatus.active,
        email=email.strip(),
        email_normalized=normalized,
        given_name="Platform",
        family_name="Administrator",
        display_name="Platform Administrator",
        password_hash=ctx.passwords.hash(password),
        password_changed_at=now,
        is_platform_admin=True,
        created_at=now,
        updated_at=now,
        activated_at=now,
    )
    session.add(user)
    session.flush()
    return user


def has_platform_admin(session: Session) -> bool:
    """Whether any platform administrator exists."""
    return (
        session.scalar(select(User.id).where(User.is_platform_admin.is_(True)).limit(1)) is not None
    )


def set_status(session: Session, ctx: AppContext, *, user: User, status: UserStatus) -> None:
    """Lock, disable or re-activate a user."""
    user.status = status
    user.updated_at = ctx.clock.now()
