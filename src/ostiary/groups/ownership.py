"""Technical users owned by a group: any active member may manage them, and they survive
their creator leaving (contract §1, "group")."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.clock import Clock
from ostiary.errors import InvalidInput, PermissionDenied
from ostiary.groups.models import Group, GroupMember, GroupOwnership
from ostiary.identity.models import User, UserKind, UserStatus


def owner_group(session: Session, *, user: User) -> Group | None:
    """The group owning the technical user ``user``, if a group does."""
    return session.scalar(
        select(Group)
        .join(GroupOwnership, GroupOwnership.group_id == Group.id)
        .where(GroupOwnership.user_id == user.id)
    )


def owner_is_active(
    session: Session, *, user: User, owner: User | None, group: Group | None
) -> bool:
    """Whether someone active answers for ``user``: its person owner, or at least one
    active member of its owning group (else the inventory calls it ownerless)."""
    if group is not None:
        return (
            session.scalar(
                select(GroupMember.user_id)
                .join(User, User.id == GroupMember.user_id)
                .where(GroupMember.group_id == group.id, User.status == UserStatus.active)
                .limit(1)
            )
            is not None
        )
    return owner is not None and owner.status is UserStatus.active


def managed_through_group(session: Session, *, actor: User, user: User) -> bool:
    """Whether ``actor`` is an active member of the group owning ``user``."""
    if actor.status is not UserStatus.active:
        return False
    found = session.scalar(
        select(GroupMember.user_id)
        .join(GroupOwnership, GroupOwnership.group_id == GroupMember.group_id)
        .where(GroupOwnership.user_id == user.id, GroupMember.user_id == actor.id)
    )
    return found is not None


def give_to_group(session: Session, *, clock: Clock, actor: User, user: User, group: Group) -> None:
    """Make ``group`` the owner of the technical user (the person owner is cleared).

    The caller checked that ``actor`` may manage ``user``; a group only takes ownership
    from one of its active members or a platform administrator, so nobody hands their
    technical users to a group that did not ask for them.
    """
    from ostiary.groups.service import is_active_member

    if user.kind is not UserKind.technical:
        raise InvalidInput(f"{user.user_id} is not a technical user")
    if not actor.is_platform_admin and not is_active_member(session, group=group, user=actor):
        raise PermissionDenied(f"only members of group {group.name!r} may give it ownership")
    previous = owner_group(session, user=user)
    person = session.get(User, user.owner_id) if user.owner_id else None
    session.execute(delete(GroupOwnership).where(GroupOwnership.user_id == user.id))
    session.add(GroupOwnership(user_id=user.id, group_id=group.id, since=clock.now()))
    user.owner_id = None
    user.updated_at = clock.now()
    session.flush()
    record(
        session,
        clock=clock,
        actor=actor.user_id,
        action=AuditAction.technical_user_owner_changed,
        target=user.user_id,
        before={
            "owner": person.user_id if person else None,
            "owner_group": previous.group_id if previous else None,
        },
        after={"owner": None, "owner_group": group.group_id},
    )


def release(session: Session, *, user: User) -> Group | None:
    """Drop a group's ownership of ``user`` (a person becomes owner); the group it had."""
    previous = owner_group(session, user=user)
    if previous is not None:
        session.execute(delete(GroupOwnership).where(GroupOwnership.user_id == user.id))
    return previous
