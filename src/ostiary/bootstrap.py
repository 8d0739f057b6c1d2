"""First start: the platform administrator and the default password policies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from ostiary.context import AppContext
from ostiary.crypto import generate_secret
from ostiary.db import transaction
from ostiary.identity import service as identity
from ostiary.identity.models import IdCounter, User, UserKind, UserStatus
from ostiary.identity.policy import get_policy

GENERATED_ADMIN_EMAIL = "admin@ostiary.local"


@dataclass(frozen=True)
class GeneratedAdmin:
    """An administrator made without configured credentials; the password is shown once."""

    user_id: str
    email: str
    password: str


def bootstrap(ctx: AppContext) -> GeneratedAdmin | None:
    """Make sure policies and a platform administrator exist; safe to run concurrently."""
    for attempt in range(3):
        try:
            with transaction(ctx.sessions) as session:
                for kind in UserKind:
                    get_policy(session, kind=kind, clock=ctx.clock)
            break
        except IntegrityError:
            if attempt == 2:
                raise
    settings = ctx.settings
    if settings.admin_email and settings.admin_password:
        try:
            with transaction(ctx.sessions) as session:
                identity.ensure_admin(
                    session, ctx, email=settings.admin_email, password=settings.admin_password
                )
        except IntegrityError:
            pass  # another process created it at the same moment
        return None
    password = generate_secret(18)
    try:
        with transaction(ctx.sessions) as session:
            if identity.has_platform_admin(session):
                return None
            # Whoever inserts this marker first creates the administrator; others back off.
            session.add(IdCounter(name="bootstrap:admin", value=1))
            session.flush()
            now = ctx.clock.now()
            admin = User(
                id=uuid.uuid4(),
                user_id=identity.allocate_user_id(session, kind=UserKind.person),
                kind=UserKind.person,
                status=UserStatus.active,
                email=GENERATED_ADMIN_EMAIL,
                email_normalized=GENERATED_ADMIN_EMAIL,
                given_name="Platform",
                family_name="Administrator",
                display_name="Platform Administrator",
                password_hash=ctx.passwords.hash(password),
                # A one-time password: already expired, so the first sign-in must change it.
                password_changed_at=datetime(1970, 1, 1, tzinfo=UTC),
                is_platform_admin=True,
                created_at=now,
                updated_at=now,
                activated_at=now,
            )
            session.add(admin)
    except IntegrityError:
        return None
    return GeneratedAdmin(user_id=admin.user_id, email=GENERATED_ADMIN_EMAIL, password=password)
