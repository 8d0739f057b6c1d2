"""Searching the directory: who sees which users, one keyset page at a time."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from ostiary.errors import PermissionDenied
from ostiary.identity.models import User, UserKind, UserStatus
from ostiary.tenancy.models import Member, MemberRole


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def administered_subaccounts(session: Session, *, user: User) -> list[uuid.UUID]:
    """The sub-accounts in which ``user`` is an Administrator."""
    rows = session.execute(
        select(Member.subaccount_id, Member.roles).where(Member.user_id == user.id)
    )
    return [sid for sid, roles in rows if MemberRole.administrator.value in (roles or [])]


def visible_to(session: Session, *, viewer: User | None) -> ColumnElement[bool] | None:
    """The users ``viewer`` may list: everyone (``None``) for platform administrators and
    the operator's CLI (``viewer=None``), the members of their sub-accounts for
    Administrators; others may not list users."""
    if viewer is None or viewer.is_platform_admin:
        return None
    subaccounts = administered_subaccounts(session, user=viewer)
    if not subaccounts:
        raise PermissionDenied(
            "only platform administrators and sub-account Administrators may list users"
        )
    return User.id.in_(select(Member.user_id).where(Member.subaccount_id.in_(subaccounts)))


def search(
    session: Session,
    *,
    viewer: User | None,
    query: str = "",
    kind: UserKind | None = None,
    status: UserStatus | None = None,
    limit: int = 50,
    after: str | None = None,
) -> list[User]:
    """Users ``viewer`` may see, ordered by user ID, after the cursor ``after``.

    ``query`` matches user ID, e-mail and names anywhere, ignoring case. Returns up to
    ``limit`` users; ask for one more to learn whether there is a next page.
    """
    conditions: list[Any] = []
    scope = visible_to(session, viewer=viewer)
    if scope is not None:
        conditions.append(scope)
    text = query.strip()
    if text:
        pattern = _like(text.lower())
        conditions.append(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (
                        User.user_id,
                        User.email_normalized,
                        User.display_name,
                        User.given_name,
                        User.family_name,
                    )
                )
            )
        )
    if kind is not None:
        conditions.append(User.kind == kind)
    if status is not None:
        conditions.append(User.status == status)
    if after:
        conditions.append(User.user_id > after)
    return list(
        session.scalars(select(User).where(*conditions).order_by(User.user_id).limit(limit))
    )
