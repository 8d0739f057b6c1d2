"""Sub-accounts and their members. The caller owns the transaction; every change is audited
and bumps the grants version."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from ostiary.access.models import RoleCollection, RoleCollectionAssignment
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.clock import Clock
from ostiary.db import add_unique
from ostiary.errors import Conflict, InvalidInput, LimitExceeded, NotFound
from ostiary.identity.models import User
from ostiary.tenancy.models import Member, MemberRole, Plan, Subaccount
from ostiary.tenancy.plans import PLAN_LIMITS

SUBDOMAIN = re.compile(r"^[a-z0-9-]{3,63}$")


def _snapshot(subaccount: Subaccount) -> dict[str, str]:
    return {
        "subdomain": subaccount.subdomain,
        "display_name": subaccount.display_name,
        "plan": subaccount.plan.value,
        "description": subaccount.description,
    }


def get(session: Session, *, subdomain: str) -> Subaccount:
    """The sub-account with this subdomain, or ``NotFound``."""
    subaccount = session.scalar(select(Subaccount).where(Subaccount.subdomain == subdomain))
    if subaccount is None:
        raise NotFound(f"no sub-account {subdomain}")
    return subaccount


def create(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    subdomain: str,
    display_name: str,
    plan: Plan,
    description: str = "",
    creator: User | None = None,
) -> Subaccount:
    """Create a sub-account; its creator (a person) becomes its first Administrator."""
    if not SUBDOMAIN.match(subdomain) or subdomain.startswith("-") or subdomain.endswith("-"):
        raise InvalidInput(
            "subdomain must be 3-63 of a-z, 0-9 and '-', not starting or ending with '-'"
        )
    if not display_name.strip():
        raise InvalidInput("display_name must not be empty")
    now = clock.now()
    subaccount = Subaccount(
        id=uuid.uuid4(),
        subdomain=subdomain,
        display_name=display_name.strip(),
        plan=plan,
        description=description,
        created_at=now,
        updated_at=now,
    )
    add_unique(session, subaccount, conflict=f"sub-account {subdomain} already exists")
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.subaccount_created,
        target=subdomain,
        subdomain=subdomain,
        after=_snapshot(subaccount),
    )
    if creator is not None:
        add_member(
            session,
            clock=clock,
            actor=actor,
            subaccount=subaccount,
            user=creator,
            roles=[MemberRole.administrator.value],
            description="created the sub-account",
        )
    return subaccount


def update(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    subaccount: Subaccount,
    display_name: str | None = None,
    description: str | None = None,
    plan: Plan | None = None,
    basic_auth_allowed: bool | None = None,
    message_retention_days: int | None = None,
) -> Subaccount:
    """Rename or describe a sub-account, change its plan (checked against current use), allow
    or forbid Basic authentication for its flows, set message retention."""
    before = _snapshot(subaccount)
    if display_name is not None:
        if not display_name.strip():
            raise InvalidInput("display_name must not be empty")
        subaccount.display_name = display_name.strip()
    if description is not None:
        subaccount.description = description
    if plan is not None and plan is not subaccount.plan:
        limits = PLAN_LIMITS[plan]
        used = usage(session, subaccount=subaccount)
        over = [k for k, v in used.items() if v > limits.as_dict().get(k, v)]
        if over:
            raise LimitExceeded(
                f"the {plan.value} plan allows fewer {', '.join(over)} than this sub-account has"
            )
        subaccount.plan = plan
    if basic_auth_allowed is not None:
        subaccount.basic_auth_allowed = basic_auth_allowed
    if message_retention_days is not None:
        if not 1 <= message_retention_days <= 3650:
            raise InvalidInput("message_retention_days must be between 1 and 3650")
        subaccount.message_retention_days = message_retention_days
    subaccount.updated_at = clock.now()
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.subaccount_updated,
        target=subaccount.subdomain,
        subdomain=subaccount.subdomain,
        before=before,
        after=_snapshot(subaccount),
    )
    return subaccount


def usage(session: Session, *, subaccount: Subaccount) -> dict[str, int]:
    """How much of each plan limit the sub-account uses."""
    from ostiary.access.models import Role
    from ostiary.runtime.models import Flow

    def count(query: object) -> int:
        return int(session.scalar(query) or 0)  # type: ignore[call-overload]

    return {
        "members": count(
            select(func.count()).select_from(Member).where(Member.subaccount_id == subaccount.id)
        ),
        "technical_users": count(
            select(func.count()).select_from(User).where(User.home_subaccount_id == subaccount.id)
        ),
        "custom_roles": count(
            select(func.count()).select_from(Role).where(Role.subaccount_id == subaccount.id)
        ),
        "flows": count(
            select(func.count()).select_from(Flow).where(Flow.subaccount_id == subaccount.id)
        ),
        "role_collections": count(
            select(func.count())
            .select_from(RoleCollection)
            .where(RoleCollection.subaccount_id == subaccount.id)
        ),
    }


def check_limit(session: Session, *, subaccount: Subaccount, what: str, adding: int = 1) -> None:
    """Raise ``LimitExceeded`` if adding ``adding`` more of ``what`` would pass the plan."""
    limit = PLAN_LIMITS[subaccount.plan].as_dict()[what]
    used = usage(session, subaccount=subaccount).get(what, 0)
    if used + adding > limit:
        raise LimitExceeded(
            f"the {subaccount.plan.value} plan allows {limit} {what.replace('_', ' ')}"
            f" per sub-account; {subaccount.subdomain} has {used}"
        )


def dependents(session: Session, *, subaccount: Subaccount) -> dict[str, int]:
    """What deleting the sub-account would take with it (needs explicit confirmation)."""
    used = usage(session, subaccount=subaccount)
    assignments = int(
        session.scalar(
            select(func.count())
            .select_from(RoleCollectionAssignment)
            .join(RoleCollection, RoleCollection.id == RoleCollectionAssignment.collection_id)
            .where(RoleCollection.subaccount_id == subaccount.id)
        )
        or 0
    )
    found = {
        "flows": used["flows"],
        "technical_users": used["technical_users"],
        "role_assignments": assignments,
    }
    return {k: v for k, v in found.items() if v}


def delete_subaccount(
    session: Session, *, clock: Clock, actor: str, subaccount: Subaccount, confirm: str | None
) -> None:
    """Delete a sub-account; with dependents, ``confirm`` must repeat the subdomain."""
    found = dependents(session, subaccount=subaccount)
    if found and confirm != subaccount.subdomain:
        listed = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in found.items())
        raise Conflict(
            f"{subaccount.subdomain} still has {listed}; repeat its subdomain as "
            "confirm to delete it anyway"
        )
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.subaccount_deleted,
        target=subaccount.subdomain,
        subdomain=subaccount.subdomain,
        before={**_snapshot(subaccount), "dependents": found},
    )
    session.delete(subaccount)
    session.flush()


def list_visible(session: Session, *, user: User, limit: int | None = None) -> list[Subaccount]:
    """All sub-accounts for a platform administrator; the ones a user is a member of otherwise
    (the first ``limit`` of them by subdomain, if given)."""
    query = _visible(select(Subaccount), user=user).order_by(Subaccount.subdomain).limit(limit)
    return list(session.scalars(query))


def count_visible(session: Session, *, user: User) -> int:
    """How many sub-accounts ``list_visible`` would list."""
    query = _visible(select(func.count()).select_from(Subaccount), user=user)
    return int(session.scalar(query) or 0)


def _visible(query: Select[Any], *, user: User) -> Select[Any]:
    if user.is_platform_admin:
        return query
    return query.join(Member, Member.subaccount_id == Subaccount.id).where(
        Member.user_id == user.id
    )


# ---------------------------------------------------------------- members


def _roles(roles: Sequence[str]) -> list[str]:
    chosen = []
    for name in roles:
        try:
            chosen.append(MemberRole(name).value)
        except ValueError as exc:
            raise InvalidInput(
                f"unknown member role {name!r}; use Administrator, Developer or Viewer"
            ) from exc
    if not chosen:
        raise InvalidInput("a member needs at least one member role")
    return sorted(set(chosen))


def get_member(session: Session, *, subaccount: Subaccount, user: User) -> Member:
    """The membership of ``user`` in ``subaccount``, or ``NotFound``."""
    member = session.scalar(
        select(Member).where(Member.subaccount_id == subaccount.id, Member.user_id == user.id)
    )
    if member is None:
        raise NotFound(f"{user.user_id} is not a member of {subaccount.subdomain}")
    return member


def add_member(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    subaccount: Subaccount,
    user: User,
    roles: Sequence[str],
    description: str = "",
) -> Member:
    """Add a user to a sub-account with member roles and a description."""
    from ostiary.identity.technical import require_may_bring_in  # identity builds on tenancy

    chosen = _roles(roles)
    require_may_bring_in(session, actor=actor, user=user, subaccount_id=subaccount.id)
    check_limit(session, subaccount=subaccount, what="members")
    now = clock.now()
    member = Member(
        id=uuid.uuid4(),
        subaccount_id=subaccount.id,
        user_id=user.id,
        roles=chosen,
        description=description,
        created_at=now,
        updated_at=now,
    )
    add_unique(
        session,
        member,
        conflict=f"{user.user_id} is already a member of {subaccount.subdomain}",
    )
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.member_added,
        target=user.user_id,
        subdomain=subaccount.subdomain,
        after={"roles": chosen, "description": description},
    )
    return member


def _administrators(session: Session, *, subaccount: Subaccount) -> int:
    members = session.scalars(select(Member).where(Member.subaccount_id == subaccount.id))
    return sum(1 for m in members if MemberRole.administrator.value in m.roles)


def change_member(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    subaccount: Subaccount,
    user: User,
    roles: Sequence[str] | None = None,
    description: str | None = None,
) -> Member:
    """Change a member's roles or description; the last Administrator cannot be demoted."""
    member = get_member(session, subaccount=subaccount, user=user)
    before = {"roles": list(member.roles), "description": member.description}
    if roles is not None:
        chosen = _roles(roles)
        if (
            MemberRole.administrator.value in member.roles
            and MemberRole.administrator.value not in chosen
            and _administrators(session, subaccount=subaccount) <= 1
        ):
            raise Conflict(
                f"{user.user_id} is the last Administrator of {subaccount.subdomain}; "
                "make someone else Administrator first"
            )
        member.roles = chosen
    if description is not None:
        member.description = description
    member.updated_at = clock.now()
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.member_changed,
        target=user.user_id,
        subdomain=subaccount.subdomain,
        before=before,
        after={"roles": list(member.roles), "description": member.description},
    )
    return member


def remove_member(
    session: Session, *, clock: Clock, actor: str, subaccount: Subaccount, user: User
) -> None:
    """Remove a member, and with it their role collections in this sub-account (contract C4)."""
    member = get_member(session, subaccount=subaccount, user=user)
    if (
        MemberRole.administrator.value in member.roles
        and _administrators(session, subaccount=subaccount) <= 1
    ):
        raise Conflict(
            f"{user.user_id} is the last Administrator of {subaccount.subdomain}; "
            "make someone else Administrator first"
        )
    collection_ids = select(RoleCollection.id).where(RoleCollection.subaccount_id == subaccount.id)
    removed = list(
        session.scalars(
            select(RoleCollection.name)
            .join(
                RoleCollectionAssignment,
                RoleCollectionAssignment.collection_id == RoleCollection.id,
            )
            .where(
                RoleCollection.subaccount_id == subaccount.id,
                RoleCollectionAssignment.user_id == user.id,
            )
        )
    )
    session.execute(
        delete(RoleCollectionAssignment).where(
            RoleCollectionAssignment.user_id == user.id,
            RoleCollectionAssignment.collection_id.in_(collection_ids),
        )
    )
    before = {
        "roles": list(member.roles),
        "description": member.description,
        "role_collections": sorted(removed),
    }
    session.delete(member)
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.member_removed,
        target=user.user_id,
        subdomain=subaccount.subdomain,
        before=before,
    )


def list_members(session: Session, *, subaccount: Subaccount) -> list[tuple[Member, User]]:
    """Members with their users, by user ID."""
    rows = session.execute(
        select(Member, User)
        .join(User, User.id == Member.user_id)
        .where(Member.subaccount_id == subaccount.id)
        .order_by(User.user_id)
    )
    return [(m, u) for m, u in rows]
