"""Groups and their members. The caller owns the transaction; every change is audited, and
membership changes move the grants version by themselves (``access/versions.py``: the group
tables are part of the read model).

These signatures are relied on by the SCIM Groups resource: keep them stable.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.clock import Clock
from ostiary.db import add_unique
from ostiary.errors import Conflict, InvalidInput, NotFound
from ostiary.groups.models import Group, GroupMember, GroupOwnership
from ostiary.identity.models import IdCounter, User, UserKind, UserStatus
from ostiary.textsafe import clean

NAME_MAX = 100
_COUNTER = "group_id"


def _name(name: str) -> str:
    cleaned = clean(name).strip()
    if not cleaned or len(cleaned) > NAME_MAX:
        raise InvalidInput(f"a group name has 1-{NAME_MAX} printable characters")
    return cleaned


def _allocate_group_id(session: Session) -> str:
    """The next human-readable group ID, ``G000001`` (same counter scheme as user IDs)."""
    value = session.execute(
        update(IdCounter)
        .where(IdCounter.name == _COUNTER)
        .values(value=IdCounter.value + 1)
        .returning(IdCounter.value)
    ).scalar()
    if value is None:
        try:
            with session.begin_nested():
                session.add(IdCounter(name=_COUNTER, value=1))
            value = 1
        except IntegrityError:
            return _allocate_group_id(session)
    return f"G{value:06d}"


def create(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    name: str,
    description: str = "",
    external_id: str | None = None,
) -> Group:
    """Create an empty group; its name is unique in the directory."""
    now = clock.now()
    group = Group(
        id=uuid.uuid4(),
        group_id=_allocate_group_id(session),
        name=_name(name),
        description=clean(description),
        external_id=clean(external_id, 200) if external_id else None,
        created_at=now,
        updated_at=now,
    )
    add_unique(session, group, conflict=f"a group named {group.name!r} already exists")
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.group_created,
        target=group.group_id,
        after={"name": group.name, "description": group.description},
    )
    return group


def get(session: Session, *, group_id: str) -> Group:
    """The group with this group ID (``G000001``), or ``NotFound``."""
    group = session.scalar(select(Group).where(Group.group_id == group_id.strip().upper()))
    if group is None:
        raise NotFound(f"no group {group_id}")
    return group


def find(session: Session, *, reference: str) -> Group:
    """The group named by its group ID or its exact name, or ``NotFound`` (for the CLI and
    the console, where people type names)."""
    ref = reference.strip()
    group = session.scalar(
        select(Group).where(or_(Group.group_id == ref.upper(), Group.name == ref))
    )
    if group is None:
        raise NotFound(f"no group {reference}")
    return group


def list_groups(
    session: Session, *, query: str = "", limit: int = 100, after: str | None = None
) -> list[Group]:
    """Groups by group ID, filtered by a search over ID and name, after the cursor ``after``."""
    statement = select(Group).order_by(Group.group_id).limit(limit)
    if query:
        like = f"%{query.lower()}%"
        statement = statement.where(
            or_(func.lower(Group.group_id).like(like), func.lower(Group.name).like(like))
        )
    if after:
        statement = statement.where(Group.group_id > after)
    return list(session.scalars(statement))


def update_group(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    group: Group,
    name: str | None = None,
    description: str | None = None,
    external_id: str | None = None,
) -> Group:
    """Rename a group or change its description or external ID."""
    before = {"name": group.name, "description": group.description}
    if name is not None:
        group.name = _name(name)
    if description is not None:
        group.description = clean(description)
    if external_id is not None:
        group.external_id = clean(external_id, 200) or None
    group.updated_at = clock.now()
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a group named {group.name!r} already exists") from exc
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.group_changed,
        target=group.group_id,
        before=before,
        after={"name": group.name, "description": group.description},
    )
    return group


def owned_technical_users(session: Session, *, group: Group) -> list[User]:
    """The technical users this group owns, by user ID."""
    return list(
        session.scalars(
            select(User)
            .join(GroupOwnership, GroupOwnership.user_id == User.id)
            .where(GroupOwnership.group_id == group.id)
            .order_by(User.user_id)
        )
    )


def delete_group(session: Session, *, clock: Clock, actor: str, group: Group) -> None:
    """Delete a group, its memberships and role collection assignments; refused (409, with
    the list) while it owns technical users, which would be left without an owner."""
    owned = owned_technical_users(session, group=group)
    if owned:
        raise Conflict(
            f"group {group.name!r} owns technical user(s) "
            f"{', '.join(u.user_id for u in owned)}; give them another owner first"
        )
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.group_deleted,
        target=group.group_id,
        before={"name": group.name, "members": [u.user_id for u in members(session, group=group)]},
    )
    session.delete(group)
    session.flush()


def may_see(session: Session, *, actor: User) -> bool:
    """Platform administrators and Administrators of any sub-account see the directory's
    groups (they assign role collections to them); everyone sees the groups they are in."""
    from ostiary.tenancy.models import Member, MemberRole

    if actor.is_platform_admin:
        return True
    return any(
        MemberRole.administrator.value in roles
        for roles in session.scalars(select(Member.roles).where(Member.user_id == actor.id))
    )


# ---------------------------------------------------------------- members


def members(session: Session, *, group: Group) -> list[User]:
    """The group's members (persons and technical users), by user ID."""
    return list(
        session.scalars(
            select(User)
            .join(GroupMember, GroupMember.user_id == User.id)
            .where(GroupMember.group_id == group.id)
            .order_by(User.user_id)
        )
    )


def is_member(session: Session, *, group: Group, user: User) -> bool:
    """Whether ``user`` is in ``group``."""
    return session.get(GroupMember, (group.id, user.id)) is not None


def is_active_member(session: Session, *, group: Group, user: User) -> bool:
    """Whether ``user`` is in ``group`` and active (what lets a member manage what the group
    owns)."""
    return user.status is UserStatus.active and is_member(session, group=group, user=user)


def groups_of(session: Session, *, user: User) -> list[Group]:
    """The groups ``user`` is in, by name."""
    return list(
        session.scalars(
            select(Group)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user.id)
            .order_by(Group.name)
        )
    )


def add_member(session: Session, *, clock: Clock, actor: str, group: Group, user: User) -> bool:
    """Put ``user`` in the group; ``False`` if it already was (nothing changes then)."""
    if is_member(session, group=group, user=user):
        return False
    session.add(GroupMember(group_id=group.id, user_id=user.id, added_at=clock.now()))
    group.updated_at = clock.now()
    session.flush()
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.group_member_added,
        target=group.group_id,
        after={"user": user.user_id},
    )
    return True


def remove_member(session: Session, *, clock: Clock, actor: str, group: Group, user: User) -> bool:
    """Take ``user`` out of the group; ``False`` if it was not in it. The grants it held
    through the group end with this transaction, on every worker within 1 s."""
    removed = session.execute(
        delete(GroupMember).where(GroupMember.group_id == group.id, GroupMember.user_id == user.id)
    )
    if not getattr(removed, "rowcount", 0):
        return False
    group.updated_at = clock.now()
    session.flush()
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.group_member_removed,
        target=group.group_id,
        before={"user": user.user_id},
    )
    return True


def set_members(
    session: Session, *, clock: Clock, actor: str, group: Group, users: Sequence[User]
) -> None:
    """Make ``users`` exactly the group's members (SCIM ``replace``)."""
    wanted = {u.id: u for u in users}
    current = {u.id: u for u in members(session, group=group)}
    for user_uuid, user in current.items():
        if user_uuid not in wanted:
            remove_member(session, clock=clock, actor=actor, group=group, user=user)
    for user_uuid, user in wanted.items():
        if user_uuid not in current:
            add_member(session, clock=clock, actor=actor, group=group, user=user)


def active_member_emails(session: Session, *, group: Group) -> list[str]:
    """E-mail addresses of the group's active persons (reminder recipients for what the
    group owns); technical members and members without an address are skipped."""
    return sorted(
        {
            email
            for email in session.scalars(
                select(User.email)
                .join(GroupMember, GroupMember.user_id == User.id)
                .where(
                    GroupMember.group_id == group.id,
                    User.kind == UserKind.person,
                    User.status == UserStatus.active,
                    User.email.is_not(None),
                )
            )
            if email
        }
    )
