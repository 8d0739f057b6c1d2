"""Factories for test data: made through the services, never by copying rows by hand."""

from __future__ import annotations

import base64
import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from ostiary.context import AppContext
from ostiary.crypto import generate_secret
from ostiary.db import transaction
from ostiary.identity import service as identity
from ostiary.identity.models import User, UserKind, UserStatus

_counter = itertools.count(1)
DEFAULT_PASSWORD = "Tr0ub4dor&3-horse-battery"


def person(
    ctx: AppContext,
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    status: UserStatus = UserStatus.active,
    platform_admin: bool = False,
    given_name: str = "Ada",
    family_name: str = "Lovelace",
) -> User:
    """A person in the directory, active unless told otherwise."""
    n = next(_counter)
    email = email or f"person{n}-{uuid.uuid4().hex[:6]}@example.com"
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = User(
            id=uuid.uuid4(),
            user_id=identity.allocate_user_id(session, kind=UserKind.person),
            kind=UserKind.person,
            status=status,
            email=email,
            email_normalized=identity.normalize_email(email),
            given_name=given_name,
            family_name=family_name,
            display_name=f"{given_name} {family_name}",
            password_hash=ctx.passwords.hash(password),
            password_changed_at=now,
            is_platform_admin=platform_admin,
            created_at=now,
            updated_at=now,
            activated_at=now if status is UserStatus.active else None,
        )
        session.add(user)
    return user


def basic(identifier: str, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
    """An Authorization header for HTTP Basic."""
    token = base64.b64encode(f"{identifier}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def technical_user(
    ctx: AppContext,
    *,
    owner: User,
    status: UserStatus = UserStatus.active,
    display_name: str = "Order sender",
) -> tuple[User, str]:
    """A technical user owned by ``owner`` and its generated secret (stored as a keyed hash)."""
    secret = generate_secret()
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = User(
            id=uuid.uuid4(),
            user_id=identity.allocate_user_id(session, kind=UserKind.technical),
            kind=UserKind.technical,
            status=status,
            email=None,
            email_normalized=None,
            given_name="",
            family_name="",
            display_name=display_name,
            password_hash=identity.KEYED_PREFIX + ctx.secret_hasher.hash(secret),
            password_changed_at=now,
            owner_id=owner.id,
            created_at=now,
            updated_at=now,
            activated_at=now if status is UserStatus.active else None,
        )
        session.add(user)
    return user, secret


def admin(ctx: AppContext, **kwargs: object) -> User:
    """A platform administrator."""
    return person(ctx, platform_admin=True, given_name="Pat", family_name="Admin", **kwargs)  # type: ignore[arg-type]


@contextmanager
def messages_table_away(ctx: AppContext) -> Iterator[None]:
    """The message table cannot be written for a while (renamed away and back)."""
    with ctx.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE messages RENAME TO messages_away")
    try:
        yield
    finally:
        with ctx.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE messages_away RENAME TO messages")
