"""Roles, role collections and their assignment to users. The caller owns the transaction;
every change is audited and bumps the grants version."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ostiary.access.decision import Grants
from ostiary.access.models import (
    Role,
    RoleCollection,
    RoleCollectionAssignment,
    RoleCollectionRole,
)
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.clock import Clock
from ostiary.db import add_unique
from ostiary.errors import Conflict, InvalidInput, NotFound
from ostiary.identity.models import User
from ostiary.tenancy.models import Member, Subaccount
from ostiary.tenancy.service import check_limit

#: The integration tenant's built-in role templates (contract §1).
BUILTIN_ROLES: dict[str, str] = {
    "ESBMessaging.send": "Send messages to integration flows",
    "AuthGroup.Administrator": "Administer the integration tenant",
    "AuthGroup.IntegrationDeveloper": "Develop and deploy integration content",
    "AuthGroup.BusinessExpert": "Monitor messages and business content",
    "AuthGroup.ReadOnly": "Read integration content and monitoring",
}
ROLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")


# ---------------------------------------------------------------- roles


def role_names(session: Session, *, subaccount: Subaccount) -> dict[str, str]:
    """Every role of the sub-account (built-in templates and custom roles) with descriptions."""
    names = dict(BUILTIN_ROLES)
    for role in session.scalars(select(Role).where(Role.subaccount_id == subaccount.id)):
        names[role.name] = role.description
    return dict(sorted(names.items()))


def create_role(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    subaccount: Subaccount,
    name: str,
    description: str = "",
) -> Role:
    """Define a custom role such as ``Orders.send``."""
    if not ROLE_NAME.match(name):
        raise InvalidInput(
            "a role name starts with a letter and has at most 100 of A-Z, a-z, 0-9, '_', '.', '-'"
        )
    if name in BUILTIN_ROLES:
        raise Conflict(f"{name} is a built-in role")
    check_limit(session, subaccount=subaccount, what="custom_roles")
    role = Role(
        id=uuid.uuid4(),
        subaccount_id=subaccount.id,
        name=name,
        description=description,
        created_at=clock.now(),
    )
    add_unique(session, role, conflict=f"role {name} already exists in {subaccount.subdomain}")
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.role_created,
        target=name,
        subdomain=subaccount.subdomain,
        after={"description": description},
    )
    return role


def delete_role(
    session: Session, *, clock: Clock, actor: str, subaccount: Subaccount, name: str
) -> None:
    """Delete a custom role that no role collection uses."""
    role = session.scalar(
        select(Role).where(Role.subaccount_id == subaccount.id, Role.name == name)
    )
    if role is None:
        raise NotFound(f"no custom role {name} in {subaccount.subdomain}")
    users = list(
        session.scalars(
            select(RoleCollection.name)
            .join(RoleCollectionRole, RoleCollectionRole.collection_id == RoleCollection.id)
            .where(
                RoleCollection.subaccount_id == subaccount.id, RoleCollectionRole.role_name == name
            )
        )
    )
    if users:
        raise Conflict(
            f"role {name} is used by role collection(s) {', '.join(sorted(users))}; "
            "remove it there first"
        )
    session.delete(role)
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.role_deleted,
        target=name,
        subdomain=subaccount.subdomain,
        before={"description": role.description},
    )


# ---------------------------------------------------------------- role collections


def _check_roles(session: Session, subaccount: Subaccount, roles: Sequence[str]) -> list[str]:
    known = role_names(session, subaccount=subaccount)
    unknown = sorted(set(roles) - set(known))
    if unknown:
        raise InvalidInput(f"unknown role(s) in {subaccount.subdomain}: {', '.join(unknown)}")
    return sorted(set(roles))


def get_collection(session: Session, *, subaccount: Subaccount, name: str) -> RoleCollection:
    """The role collection ``name`` of the sub-account, or ``NotFound``."""
    collection = session.scalar(
        select(RoleCollection).where(
            RoleCollection.subaccount_id == subaccount.id, RoleCollection.name == name
        )
    )
    if collection is None:
        raise NotFound(f"no role collection {name!r} in {subaccount.subdomain}")
    return collection


def collection_roles(session: Session, *, collection: RoleCollection) -> list[str]:
    """The role names in a collection."""
    return sorted(
        session.scalars(
            select(RoleCollectionRole.role_name).where(
                RoleCollectionRole.collection_id == collection.id
            )
        )
    )


def create_collection(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    subaccount: Subaccount,
    name: str,
    roles: Sequence[str],
    description: str = "",
) -> RoleCollection:
    """Create a role collection holding ``roles``."""
    if not COLLECTION_NAME.match(name):
        raise InvalidInput(
            "a role collection name has 1-100 of letters, digits, ' ', '_', '.', "
            "'-' and starts with a letter or digit"
        )
    chosen = _check_roles(session, subaccount, roles)
    check_limit(session, subaccount=subaccount, what="role_collections")
    now = clock.now()
    collection = RoleCollection(
        id=uuid.uuid4(),
        subaccount_id=subaccount.id,
        name=name,
        description=description,
        created_at=now,
        updated_at=now,
    )
    add_unique(
        session,
        collection,
        conflict=f"role collection {name!r} already exists in {subaccount.subdomain}",
    )
    session.add_all(RoleCollectionRole(collection_id=collection.id, role_name=r) for r in chosen)
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.role_collection_created,
        target=name,
        subdomain=subaccount.subdomain,
        after={"roles": chosen, "description": description},
    )
    return collection


def change_collection(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    subaccount: Subaccount,
    name: str,
    roles: Sequence[str] | None = None,
    description: str | None = None,
) -> RoleCollection:
    """Replace a collection's roles and/or description."""
    collection = get_collection(session, subaccount=subaccount, name=name)
    before = {
        "roles": collection_roles(session, collection=collection),
        "description": collection.description,
    }
    if roles is not None:
        chosen = _check_roles(session, subaccount, roles)
        session.execute(
            delete(RoleCollectionRole).where(RoleCollectionRole.collection_id == collection.id)
        )
        session.add_all(
            RoleCollectionRole(collection_id=collection.id, role_name=r) for r in chosen
        )
    if description is not None:
        collection.description = description
    collection.updated_at = clock.now()
    session.flush()
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.role_collection_changed,
        target=name,
        subdomain=subaccount.subdomain,
        before=before,
        after={
            "roles": collection_roles(session, collection=collection),
            "description": collection.description,
        },
    )
    return collection


def delete_collection(
    session: Session, *, clock: Clock, actor: str, subaccount: Subaccount, name: str
) -> None:
    """Delete a role collection and its assignments."""
    collection = get_collection(session, subaccount=subaccount, name=name)
    holders = list(
        session.scalars(
            select(User.user_id)
            .join(RoleCollectionAssignment, RoleCollectionAssignment.user_id == User.id)
            .where(RoleCollectionAssignment.collection_id == collection.id)
        )
    )
    before = {
        "roles": collection_roles(session, collection=collection),
        "assigned_to": sorted(holders),
    }
    session.delete(collection)
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.role_collection_deleted,
        target=name,
        subdomain=subaccount.subdomain,
        before=before,
    )


def list_collections(
    session: Session, *, subaccount: Subaccount
) -> list[tuple[RoleCollection, list[str], int]]:
    """Collections with their roles and how many users hold each."""
    result = []
    for collection in session.scalars(
        select(RoleCollection)
        .where(RoleCollection.subaccount_id == subaccount.id)
        .order_by(RoleCollection.name)
    ):
        holders = int(
            session.scalar(
                select(func.count())
                .select_from(RoleCollectionAssignment)
                .where(RoleCollectionAssignment.collection_id == collection.id)
            )
            or 0
        )
        result.append((collection, collection_roles(session, collection=collection), holders))
    return result


# ---------------------------------------------------------------- assignments


def user_collections(session: Session, *, subaccount: Subaccount, user: User) -> list[str]:
    """Names of the role collections ``user`` holds in ``subaccount``."""
    return sorted(
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


def set_user_collections(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    subaccount: Subaccount,
    user: User,
    names: Sequence[str],
) -> list[str]:
    """Replace the role collections ``user`` holds in ``subaccount`` with ``names``."""
    wanted = sorted(set(names))
    collections = {n: get_collection(session, subaccount=subaccount, name=n) for n in wanted}
    before = user_collections(session, subaccount=subaccount, user=user)
    if before == wanted:
        return wanted
    if wanted:
        from ostiary.identity.technical import require_may_bring_in  # identity builds on access

        require_may_bring_in(session, actor=actor, user=user, subaccount_id=subaccount.id)
    all_ids = select(RoleCollection.id).where(RoleCollection.subaccount_id == subaccount.id)
    session.execute(
        delete(RoleCollectionAssignment).where(
            RoleCollectionAssignment.user_id == user.id,
            RoleCollectionAssignment.collection_id.in_(all_ids),
        )
    )
    now = clock.now()
    session.add_all(
        RoleCollectionAssignment(collection_id=c.id, user_id=user.id, assigned_at=now)
        for c in collections.values()
    )
    session.flush()
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.assignments_changed,
        target=user.user_id,
        subdomain=subaccount.subdomain,
        before={"role_collections": before},
        after={"role_collections": wanted},
    )
    return wanted


def add_user_collection(
    session: Session, *, clock: Clock, actor: str, subaccount: Subaccount, user: User, name: str
) -> list[str]:
    """Assign one more role collection to ``user``."""
    current = user_collections(session, subaccount=subaccount, user=user)
    return set_user_collections(
        session, clock=clock, actor=actor, subaccount=subaccount, user=user, names=[*current, name]
    )


def remove_user_collection(
    session: Session, *, clock: Clock, actor: str, subaccount: Subaccount, user: User, name: str
) -> list[str]:
    """Take one role collection away from ``user``."""
    current = user_collections(session, subaccount=subaccount, user=user)
    if name not in current:
        raise NotFound(
            f"{user.user_id} does not hold role collection {name!r} in {subaccount.subdomain}"
        )
    return set_user_collections(
        session,
        clock=clock,
        actor=actor,
        subaccount=subaccount,
        user=user,
        names=[n for n in current if n != name],
    )


def users_with_assignments(
    session: Session, *, subaccount: Subaccount, search: str = "", limit: int = 50
) -> list[tuple[User, list[str]]]:
    """Members and role holders of the sub-account with their role collections (Authorizations
    → Users), filtered by a search over user ID, name and e-mail."""
    holder_ids = (
        select(RoleCollectionAssignment.user_id)
        .join(RoleCollection, RoleCollection.id == RoleCollectionAssignment.collection_id)
        .where(RoleCollection.subaccount_id == subaccount.id)
    )
    member_ids = select(Member.user_id).where(Member.subaccount_id == subaccount.id)
    query = select(User).where(User.id.in_(holder_ids) | User.id.in_(member_ids))
    if search:
        like = f"%{search.lower()}%"
        query = query.where(
            func.lower(User.user_id).like(like)
            | func.lower(User.display_name).like(like)
            | func.lower(func.coalesce(User.email, "")).like(like)
        )
    users = list(session.scalars(query.order_by(User.user_id).limit(limit)))
    return [(u, user_collections(session, subaccount=subaccount, user=u)) for u in users]


# ---------------------------------------------------------------- grants


def load_grants(session: Session, *, user: User, subaccount: Subaccount) -> Grants:
    """What ``user`` holds in ``subaccount``, read from the database."""
    member = session.scalar(
        select(Member).where(Member.subaccount_id == subaccount.id, Member.user_id == user.id)
    )
    roles: dict[str, set[str]] = {}
    rows = session.execute(
        select(RoleCollectionRole.role_name, RoleCollection.name)
        .join(RoleCollection, RoleCollection.id == RoleCollectionRole.collection_id)
        .join(RoleCollectionAssignment, RoleCollectionAssignment.collection_id == RoleCollection.id)
        .where(
            RoleCollection.subaccount_id == subaccount.id,
            RoleCollectionAssignment.user_id == user.id,
        )
    )
    for role_name, collection_name in rows:
        roles.setdefault(role_name, set()).add(collection_name)
    collections = session.scalars(
        select(RoleCollection.name)
        .join(RoleCollectionAssignment, RoleCollectionAssignment.collection_id == RoleCollection.id)
        .where(
            RoleCollection.subaccount_id == subaccount.id,
            RoleCollectionAssignment.user_id == user.id,
        )
    )
    held = set(collections)
    direct = frozenset(held)
    via_groups: dict[str, set[str]] = {}
    # Imported here: the groups domain builds on this module.
    from ostiary.groups.models import Group, GroupAssignment, GroupMember

    for group_name, collection_name, role_name in session.execute(
        select(Group.name, RoleCollection.name, RoleCollectionRole.role_name)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .join(GroupAssignment, GroupAssignment.group_id == Group.id)
        .join(RoleCollection, RoleCollection.id == GroupAssignment.collection_id)
        .outerjoin(RoleCollectionRole, RoleCollectionRole.collection_id == RoleCollection.id)
        .where(RoleCollection.subaccount_id == subaccount.id, GroupMember.user_id == user.id)
    ):
        held.add(collection_name)
        via_groups.setdefault(collection_name, set()).add(group_name)
        if role_name is not None:
            roles.setdefault(role_name, set()).add(collection_name)
    return Grants(
        user_id=user.user_id,
        status=user.status,
        is_platform_admin=user.is_platform_admin,
        subdomain=subaccount.subdomain,
        member_roles=frozenset(member.roles) if member else frozenset(),
        roles={k: frozenset(v) for k, v in roles.items()},
        collections=frozenset(held),
        via_groups={k: frozenset(v) for k, v in via_groups.items()},
        direct=direct if via_groups else None,
    )
