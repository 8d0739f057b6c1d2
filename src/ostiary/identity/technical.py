"""Technical users: machine identities owned by a person, with generated secrets (contract C3, C5).

A technical user's password is generated (256 bits) and stored as a keyed hash: it is not
human-chosen, so it needs no argon2, and the runtime can verify it in microseconds. Its
secrets are rows of the credentials domain (``ostiary.credentials``), several at once
during an overlap rotation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, aliased

from ostiary.access.models import RoleCollection, RoleCollectionAssignment, RoleCollectionRole
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.context import AppContext
from ostiary.credentials.secrets import add_secret, adopt_legacy
from ostiary.errors import Conflict, InvalidInput, PermissionDenied
from ostiary.identity import sessions
from ostiary.identity.models import User, UserKind, UserStatus
from ostiary.identity.service import allocate_user_id
from ostiary.tenancy.models import Member, MemberRole, Subaccount
from ostiary.tenancy.service import check_limit


@dataclass(frozen=True)
class IssuedSecret:
    """A technical user and its new secret, to be shown exactly once."""

    user: User
    secret: str


def _require_active_person(user: User, what: str) -> None:
    if user.kind is not UserKind.person or user.status is not UserStatus.active:
        raise InvalidInput(f"{what} must be an active person")


def create(
    session: Session,
    ctx: AppContext,
    *,
    creator: User,
    display_name: str,
    description: str = "",
    home: Subaccount | None = None,
    email: str | None = None,
) -> IssuedSecret:
    """Create a technical user owned by ``creator``; no mailbox needed (contract C3)."""
    if creator.kind is not UserKind.person:
        raise PermissionDenied("only persons create technical users")
    if not display_name.strip():
        raise InvalidInput("display_name must not be empty")
    if home is not None:
        check_limit(session, subaccount=home, what="technical_users")
    now = ctx.clock.now()
    user = User(
        id=uuid.uuid4(),
        user_id=allocate_user_id(session, kind=UserKind.technical),
        kind=UserKind.technical,
        status=UserStatus.active,
        email=email,
        email_normalized=email.strip().lower() if email else None,
        display_name=display_name.strip(),
        description=description,
        password_hash=None,
        password_changed_at=now,
        owner_id=creator.id,
        home_subaccount_id=home.id if home else None,
        created_at=now,
        updated_at=now,
        activated_at=now,
    )
    session.add(user)
    session.flush()
    from ostiary.credentials.rotation import check_expiry  # it imports this module

    expires = check_expiry(session, user=user, now=now, expires_at=None)
    secret = add_secret(session, ctx, user=user, expires_at=expires).secret
    record(
        session,
        clock=ctx.clock,
        actor=creator.user_id,
        action=AuditAction.technical_user_created,
        target=user.user_id,
        subdomain=home.subdomain if home else None,
        after={"display_name": user.display_name, "owner": creator.user_id},
    )
    return IssuedSecret(user, secret)


def owned_by(session: Session, *, owner: User | None) -> list[User]:
    """Technical users owned by ``owner``, directly or through a group it is in (all of them
    for ``None``), by user ID."""
    query = select(User).where(User.kind == UserKind.technical).order_by(User.user_id)
    if owner is not None:
        from ostiary.groups.models import GroupMember, GroupOwnership  # groups build on identity

        through_groups = (
            select(GroupOwnership.user_id)
            .join(GroupMember, GroupMember.group_id == GroupOwnership.group_id)
            .where(GroupMember.user_id == owner.id)
        )
        query = query.where(or_(User.owner_id == owner.id, User.id.in_(through_groups)))
    return list(session.scalars(query))


def may_manage(session: Session, *, actor: User, user: User) -> bool:
    """Owners (a person, or any active member of an owning group), platform administrators
    and Administrators of a sub-account where the technical user lives, is a member or
    holds roles may reset, transfer and inspect it."""
    if actor.is_platform_admin or user.owner_id == actor.id:
        return True
    # Imported here: groups build on identity. Any active member of an owning group manages.
    from ostiary.groups.ownership import managed_through_group

    if managed_through_group(session, actor=actor, user=user):
        return True
    admin_of = {
        sub_id
        for sub_id, roles in session.execute(
            select(Member.subaccount_id, Member.roles).where(Member.user_id == actor.id)
        )
        if MemberRole.administrator.value in roles
    }
    return bool(admin_of & subaccounts_of(session, user=user))


def subaccounts_of(session: Session, *, user: User) -> set[uuid.UUID]:
    """Sub-accounts where ``user`` is at home, a member, or holds a role collection."""
    found = {user.home_subaccount_id} if user.home_subaccount_id else set()
    found |= set(session.scalars(select(Member.subaccount_id).where(Member.user_id == user.id)))
    found |= set(
        session.scalars(
            select(RoleCollection.subaccount_id)
            .join(
                RoleCollectionAssignment,
                RoleCollectionAssignment.collection_id == RoleCollection.id,
            )
            .where(RoleCollectionAssignment.user_id == user.id)
        )
    )
    return found


def require_may_bring_in(
    session: Session, *, actor: str, user: User, subaccount_id: uuid.UUID
) -> None:
    """``PermissionDenied`` unless ``actor`` may bring the technical user ``user`` into the
    sub-account ``subaccount_id`` (as a member or holding role collections there).

    Administrators of every sub-account it is in manage it (``may_manage``), so bringing it
    into one more widens who manages it: once it is in a sub-account, only someone who
    manages it already may do that, or an Administrator anywhere could add another
    sub-account's technical user and then rotate its secret or take it over. A technical
    user in no sub-account yet is handed to its first one by ID (its owner asks that
    sub-account's Administrator). Persons pass; an ``actor`` that is no user of the
    directory is the operator (CLI, bootstrap).
    """
    if user.kind is not UserKind.technical:
        return
    present = subaccounts_of(session, user=user)
    if not present or subaccount_id in present:
        return
    acting = session.scalar(select(User).where(User.user_id == actor))
    if acting is not None and not may_manage(session, actor=acting, user=user):
        raise PermissionDenied(
            f"only the owner or an administrator of {user.user_id} may bring it into "
            "another sub-account"
        )


def require_manager(session: Session, *, actor: User, user: User) -> None:
    """``PermissionDenied`` unless ``actor`` may manage the technical user ``user``."""
    if user.kind is not UserKind.technical:
        raise InvalidInput(f"{user.user_id} is not a technical user")
    if not may_manage(session, actor=actor, user=user):
        raise PermissionDenied(f"only the owner or an administrator may manage {user.user_id}")


def reset_secret(session: Session, ctx: AppContext, *, actor: User, user: User) -> IssuedSecret:
    """Replace the technical user's secrets; the old ones stop working at once (a rotation
    without overlap, ``credentials.rotation.rotate``)."""
    from ostiary.credentials.rotation import rotate  # it imports this module

    rotated = rotate(session, ctx, actor=actor, user=user)
    record(
        session,
        clock=ctx.clock,
        actor=actor.user_id,
        action=AuditAction.technical_user_password_reset,
        target=user.user_id,
        after={"secret_id": rotated.secret_id},
    )
    return IssuedSecret(user, rotated.password)


def delete(session: Session, ctx: AppContext, *, actor: User, user: User) -> None:
    """Delete a technical user; its memberships and assignments go with it, its messages stay
    in the MPL under its user ID."""
    require_manager(session, actor=actor, user=user)
    record(
        session,
        clock=ctx.clock,
        actor=actor.user_id,
        action=AuditAction.technical_user_deleted,
        target=user.user_id,
        before={"display_name": user.display_name},
    )
    session.delete(user)


def transfer(session: Session, ctx: AppContext, *, actor: User, user: User, owner: User) -> None:
    """Make ``owner`` the owner of the technical user."""
    require_manager(session, actor=actor, user=user)
    _require_active_person(owner, "the new owner")
    before = user.owner_id
    previous = session.get(User, before) if before else None
    from ostiary.groups.ownership import release  # groups build on identity

    group = release(session, user=user)
    user.owner_id = owner.id
    user.updated_at = ctx.clock.now()
    record(
        session,
        clock=ctx.clock,
        actor=actor.user_id,
        action=AuditAction.technical_user_owner_changed,
        target=user.user_id,
        before={
            "owner": previous.user_id if previous else None,
            **({"owner_group": group.group_id} if group else {}),
        },
        after={"owner": owner.user_id},
    )


def convert(session: Session, ctx: AppContext, *, actor: User, person: User, owner: User) -> None:
    """Turn a self-registered person (a P-user made the seed's way) into a technical user.

    It keeps its user ID, password and grants, moves to the technical password policy (no
    forced expiry), can no longer use the console, and gets an owner.
    """
    if person.kind is not UserKind.person:
        raise InvalidInput(f"{person.user_id} is already a technical user")
    if person.status is UserStatus.erased:
        # Erasure cannot be undone: an erased user ID must not come back with secrets.
        raise InvalidInput(f"{person.user_id} is erased; an erased person cannot be converted")
    if person.is_platform_admin:
        raise Conflict("a platform administrator cannot become a technical user")
    _require_active_person(owner, "the owner")
    if owner.id == person.id:
        raise InvalidInput("a technical user cannot own itself")
    person.kind = UserKind.technical
    person.owner_id = owner.id
    person.updated_at = ctx.clock.now()
    if person.status is UserStatus.pending:
        person.status = UserStatus.active
    sessions.end_all_for(session, user=person)
    adopt_legacy(session, user=person)  # the password it chose becomes its first secret
    record(
        session,
        clock=ctx.clock,
        actor=actor.user_id,
        action=AuditAction.user_converted,
        target=person.user_id,
        before={"kind": "person"},
        after={"kind": "technical", "owner": owner.user_id},
    )


@dataclass(frozen=True)
class InventoryRow:
    """One technical user as the inventory shows it (contract C5)."""

    user: User
    owner: User | None
    ownerless: bool
    credentials: list[dict[str, object]]
    role_collections: list[str]
    roles: list[str]
    last_used_at: datetime | None = None
    member_roles: list[str] = field(default_factory=list)
    flows_called: list[str] = field(default_factory=list)
    #: The group owning the technical user, when a group does (issue 12).
    owner_group: str | None = None


def inventory(
    session: Session,
    *,
    subaccount: Subaccount,
    search: str = "",
    limit: int = 50,
    after: str | None = None,
    now: datetime | None = None,
) -> list[InventoryRow]:
    """Technical users at home in, members of, or holding roles in ``subaccount``
    (``now`` decides which credentials have expired)."""
    now = now or datetime.now(UTC)
    holders = (
        select(RoleCollectionAssignment.user_id)
        .join(RoleCollection, RoleCollection.id == RoleCollectionAssignment.collection_id)
        .where(RoleCollection.subaccount_id == subaccount.id)
    )
    members = select(Member.user_id).where(Member.subaccount_id == subaccount.id)
    owner = aliased(User)
    query = (
        select(User, owner)
        .outerjoin(owner, owner.id == User.owner_id)
        .where(
            User.kind == UserKind.technical,
            or_(
                User.home_subaccount_id == subaccount.id, User.id.in_(holders), User.id.in_(members)
            ),
        )
        .order_by(User.user_id)
        .limit(limit)
    )
    if search:
        like = f"%{search.lower()}%"
        query = query.where(
            or_(
                User.user_id.ilike(like),
                User.display_name.ilike(like),
                User.description.ilike(like),
                owner.user_id.ilike(like),
            )
        )
    if after:
        query = query.where(User.user_id > after)
    rows = []
    for user, owner_user in session.execute(query):
        collections: dict[str, set[str]] = {}
        for collection_name, role_name in session.execute(
            select(RoleCollection.name, RoleCollectionRole.role_name)
            .join(
                RoleCollectionAssignment,
                RoleCollectionAssignment.collection_id == RoleCollection.id,
            )
            .outerjoin(RoleCollectionRole, RoleCollectionRole.collection_id == RoleCollection.id)
            .where(
                RoleCollection.subaccount_id == subaccount.id,
                RoleCollectionAssignment.user_id == user.id,
            )
        ):
            roles = collections.setdefault(collection_name, set())
            if role_name:
                roles.add(role_name)
        member_roles = (
            session.scalar(
                select(Member.roles).where(
                    Member.subaccount_id == subaccount.id, Member.user_id == user.id
                )
            )
            or []
        )
        from ostiary.groups.ownership import owner_group, owner_is_active

        group = owner_group(session, user=user)
        rows.append(
            InventoryRow(
                user=user,
                owner=owner_user,
                ownerless=not owner_is_active(session, user=user, owner=owner_user, group=group),
                owner_group=group.group_id if group else None,
                credentials=_credentials(session, user=user, subaccount=subaccount, now=now),
                role_collections=sorted(collections),
                roles=sorted(set().union(*collections.values())) if collections else [],
                member_roles=list(member_roles),
                last_used_at=user.last_used_at,
                flows_called=_flows_called(session, user=user, subaccount=subaccount),
            )
        )
    return rows


def _credentials(
    session: Session, *, user: User, subaccount: Subaccount, now: datetime
) -> list[dict[str, object]]:
    """Its secrets, and its OAuth clients' secrets and keys and its certificates in this
    sub-account (``credentials.service.listing``, the one model of every kind)."""
    from ostiary.credentials.service import listing  # it imports this module's models

    return [
        {
            "kind": c.kind.value,
            "id": c.credential_id,
            "client_id": c.client_id,
            "created_at": c.created_at,
            "expires_at": c.expires_at,
            "status": c.status,
            "last_used_at": c.last_used_at,
            "last_address": c.last_address,
        }
        for c in listing(session, now=now, user=user)
        if c.kind.value == "technical_user_secret" or c.subaccount == subaccount.subdomain
    ]


def _flows_called(session: Session, *, user: User, subaccount: Subaccount) -> list[str]:
    """Flows this user has sent messages to in the sub-account (from the MPL)."""
    from ostiary.runtime.models import Message

    return sorted(
        session.scalars(
            select(Message.flow_path)
            .distinct()
            .where(Message.subaccount_id == subaccount.id, Message.sender == user.user_id)
        )
    )
