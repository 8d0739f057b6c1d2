"""Role collections assigned to groups in a sub-account: every member of the group holds
them there, and the access decision names the path ("group G → role collection C")."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ostiary.access.models import RoleCollection
from ostiary.access.service import get_collection
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.clock import Clock
from ostiary.groups.models import Group, GroupAssignment
from ostiary.tenancy.models import Subaccount


def group_collections(session: Session, *, subaccount: Subaccount, group: Group) -> list[str]:
    """Names of the role collections assigned to ``group`` in ``subaccount``."""
    return sorted(
        session.scalars(
            select(RoleCollection.name)
            .join(GroupAssignment, GroupAssignment.collection_id == RoleCollection.id)
            .where(
                RoleCollection.subaccount_id == subaccount.id, GroupAssignment.group_id == group.id
            )
        )
    )


def set_group_collections(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    subaccount: Subaccount,
    group: Group,
    names: Sequence[str],
) -> list[str]:
    """Replace the role collections ``group`` holds in ``subaccount`` with ``names``."""
    wanted = sorted(set(names))
    collections = [get_collection(session, subaccount=subaccount, name=n) for n in wanted]
    before = group_collections(session, subaccount=subaccount, group=group)
    if before == wanted:
        return wanted
    here = select(RoleCollection.id).where(RoleCollection.subaccount_id == subaccount.id)
    session.execute(
        delete(GroupAssignment).where(
            GroupAssignment.group_id == group.id, GroupAssignment.collection_id.in_(here)
        )
    )
    now = clock.now()
    session.add_all(
        GroupAssignment(collection_id=c.id, group_id=group.id, assigned_at=now) for c in collections
    )
    session.flush()
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.group_assignments_changed,
        target=group.group_id,
        subdomain=subaccount.subdomain,
        before={"role_collections": before},
        after={"role_collections": wanted},
    )
    return wanted


def groups_with_assignments(
    session: Session, *, subaccount: Subaccount
) -> list[tuple[Group, list[str]]]:
    """Groups holding role collections in ``subaccount``, with those collections."""
    held: dict[str, list[str]] = {}
    groups: dict[str, Group] = {}
    for group, name in session.execute(
        select(Group, RoleCollection.name)
        .join(GroupAssignment, GroupAssignment.group_id == Group.id)
        .join(RoleCollection, RoleCollection.id == GroupAssignment.collection_id)
        .where(RoleCollection.subaccount_id == subaccount.id)
        .order_by(Group.name, RoleCollection.name)
    ):
        groups[group.group_id] = group
        held.setdefault(group.group_id, []).append(name)
    return [(groups[g], held[g]) for g in groups]
