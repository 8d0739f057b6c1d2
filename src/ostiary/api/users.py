"""Technical users, their inventory, user administration and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ostiary.access.permissions import Permission
from ostiary.api.authn import Principal, authenticated, platform_admin
from ostiary.api.deps import (
    Cursor,
    Limit,
    Page,
    acting_user,
    authorize,
    authorized,
    context,
    paginate,
)
from ostiary.audit import checkpoints as audit_checkpoints
from ostiary.audit import service as audit
from ostiary.audit import verify as audit_verify
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import InvalidInput, PermissionDenied
from ostiary.identity import admin, technical
from ostiary.identity import service as identity
from ostiary.identity.emails import Email
from ostiary.identity.models import User, UserStatus

router = APIRouter(prefix="/api/v1", tags=["users"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]
Admin = Annotated[Principal, Depends(platform_admin)]
UserId = Annotated[str, Field(min_length=1, max_length=32)]
Text = Annotated[str, Field(max_length=2000)]


class TechnicalUserIn(BaseModel):
    """A new technical user; the caller becomes its owner. No mailbox needed."""

    display_name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Text = ""
    subdomain: Annotated[str, Field(max_length=63)] | None = None
    email: Email | None = None


class SecretOut(BaseModel):
    """A technical user's new password. It is shown this once and never again."""

    user_id: str
    password: str
    display_name: str
    owner: str | None


class OwnerIn(BaseModel):
    """The new owner of a technical user: a person (``owner_user_id``) or a group
    (``group_id``), exactly one of them."""

    owner_user_id: UserId | None = None
    group_id: Annotated[str, Field(min_length=1, max_length=16)] | None = None


class ConvertIn(BaseModel):
    """The owner a converted person gets."""

    owner_user_id: UserId


class StatusIn(BaseModel):
    """A new status for a user."""

    status: UserStatus


class UserOut(BaseModel):
    """A user of the directory."""

    user_id: str
    kind: str
    status: str
    display_name: str
    email: str | None
    description: str
    owner: str | None
    created_at: datetime
    #: The group owning a technical user, when a group does (issue 12).
    owner_group: str | None = None


class InventoryOut(BaseModel):
    """A technical user in a sub-account's inventory (contract C5)."""

    user_id: str
    display_name: str
    description: str
    status: str
    owner: str | None
    ownerless: bool
    created_at: datetime
    credentials: list[dict[str, Any]]
    #: The group owning the technical user, when a group does (issue 12).
    owner_group: str | None = None
    member_roles: list[str]
    role_collections: list[str]
    roles: list[str]
    last_used_at: datetime | None
    flows_called: list[str]


class AuditEventOut(BaseModel):
    """One audit event."""

    id: int
    occurred_at: datetime
    actor: str
    action: str
    subdomain: str | None
    target: str
    detail: dict[str, Any]
    hash: str


class ChainOut(BaseModel):
    """Result of recomputing the audit hash chain."""

    ok: bool
    events: int
    first_broken_id: int | None
    #: What is wrong, naming the first bad event (empty when ``ok``).
    reason: str = ""


def _owner_id(session: Any, user: User) -> str | None:
    owner = session.get(User, user.owner_id) if user.owner_id else None
    return owner.user_id if owner else None


def user_out(session: Any, user: User) -> UserOut:
    """A user as the API shows it."""
    return UserOut(
        user_id=user.user_id,
        kind=user.kind.value,
        status=user.status.value,
        display_name=user.display_name,
        email=user.email,
        description=user.description,
        owner=_owner_id(session, user),
        created_at=user.created_at,
        owner_group=_owner_group(session, user),
    )


def _owner_group(session: Any, user: User) -> str | None:
    from ostiary.groups.ownership import owner_group

    group = owner_group(session, user=user)
    return group.group_id if group else None


@router.post("/technical-users", status_code=201, response_model=SecretOut)
def create_technical_user(body: TechnicalUserIn, ctx: Ctx, principal: Caller) -> SecretOut:
    """Create a technical user owned by the caller; its password is in this answer only."""
    with transaction(ctx.sessions) as session:
        creator = acting_user(session, principal)
        home = None
        if body.subdomain:
            home, _ = authorize(
                session,
                principal=principal,
                subdomain=body.subdomain,
                permission=Permission.technical_users_write,
            )
        issued = technical.create(
            session,
            ctx,
            creator=creator,
            display_name=body.display_name,
            description=body.description,
            home=home,
            email=str(body.email) if body.email else None,
        )
    return SecretOut(
        user_id=issued.user.user_id,
        password=issued.secret,
        display_name=issued.user.display_name,
        owner=principal.user_id,
    )


@router.get("/technical-users", response_model=Page[UserOut])
def list_my_technical_users(
    ctx: Ctx, principal: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[UserOut]:
    """Technical users the caller owns (all of them for platform administrators)."""
    with transaction(ctx.read_sessions) as session:
        owner = None if principal.is_platform_admin else acting_user(session, principal)
        items = [user_out(session, u) for u in technical.owned_by(session, owner=owner)]
    return paginate(items, key=lambda u: u.user_id, limit=limit, cursor=cursor)


def managed(session: Any, principal: Principal, user_id: str) -> tuple[User, User]:
    """The acting user and the technical user they may manage, or ``PermissionDenied``."""
    actor = acting_user(session, principal)
    user = identity.get_user(session, user_id=user_id)
    if not technical.may_manage(session, actor=actor, user=user):
        raise PermissionDenied(
            f"only the owner or an administrator may manage {user.user_id}",
            reason="not owner or administrator",
            actor=principal.user_id,
        )
    return actor, user


_managed = managed  # the name api/certificates.py imports


@router.get("/technical-users/{user_id}", response_model=UserOut)
def get_technical_user(user_id: str, ctx: Ctx, principal: Caller) -> UserOut:
    """One technical user (owners and administrators)."""
    with transaction(ctx.read_sessions) as session:
        _, user = managed(session, principal, user_id)
        return user_out(session, user)


@router.post("/technical-users/{user_id}/password", response_model=SecretOut)
def reset_technical_password(user_id: str, ctx: Ctx, principal: Caller) -> SecretOut:
    """Replace the password; the new one is in this answer only, the old one stops at once."""
    with transaction(ctx.sessions) as session:
        actor, user = managed(session, principal, user_id)
        issued = technical.reset_secret(session, ctx, actor=actor, user=user)
        owner = _owner_id(session, user)
    return SecretOut(
        user_id=user.user_id, password=issued.secret, display_name=user.display_name, owner=owner
    )


@router.delete("/technical-users/{user_id}", status_code=204)
def delete_technical_user(user_id: str, ctx: Ctx, principal: Caller) -> None:
    """Delete a technical user (owners and administrators); it stops working at once."""
    with transaction(ctx.sessions) as session:
        actor, user = managed(session, principal, user_id)
        technical.delete(session, ctx, actor=actor, user=user)


@router.put("/technical-users/{user_id}/owner", response_model=UserOut)
def transfer_technical_user(user_id: str, body: OwnerIn, ctx: Ctx, principal: Caller) -> UserOut:
    """Hand a technical user to another owner."""
    with transaction(ctx.sessions) as session:
        actor, user = managed(session, principal, user_id)
        if (body.owner_user_id is None) == (body.group_id is None):
            raise InvalidInput("give either owner_user_id or group_id")
        if body.group_id is not None:
            from ostiary.groups import ownership
            from ostiary.groups import service as groups

            group = groups.get(session, group_id=body.group_id)
            ownership.give_to_group(session, clock=ctx.clock, actor=actor, user=user, group=group)
        else:
            owner = identity.get_user(session, user_id=body.owner_user_id or "")
            technical.transfer(session, ctx, actor=actor, user=user, owner=owner)
        return user_out(session, user)


@router.get("/subaccounts/{subdomain}/technical-users", response_model=Page[InventoryOut])
def technical_user_inventory(
    subdomain: str,
    ctx: Ctx,
    principal: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
    search: Annotated[str, Query(max_length=100)] = "",
) -> Page[InventoryOut]:
    """Every technical user of the sub-account with owner, credentials, roles (contract C5)."""
    with authorized(ctx, principal, subdomain, Permission.technical_users_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        rows = technical.inventory(
            session,
            subaccount=subaccount,
            search=search,
            limit=limit + 1,
            after=cursor,
            now=ctx.clock.now(),
        )
    items = [
        InventoryOut(
            user_id=r.user.user_id,
            display_name=r.user.display_name,
            description=r.user.description,
            status=r.user.status.value,
            owner=r.owner.user_id if r.owner else None,
            ownerless=r.ownerless,
            owner_group=r.owner_group,
            created_at=r.user.created_at,
            credentials=r.credentials,
            member_roles=r.member_roles,
            role_collections=r.role_collections,
            roles=r.roles,
            last_used_at=r.last_used_at,
            flows_called=r.flows_called,
        )
        for r in rows
    ]
    return Page[InventoryOut](
        items=items[:limit], next_cursor=items[limit - 1].user_id if len(items) > limit else None
    )


@router.get("/users/{user_id}", response_model=UserOut)
def get_user(user_id: str, ctx: Ctx, _: Admin) -> UserOut:
    """Any user of the directory (platform administrators)."""
    with transaction(ctx.read_sessions) as session:
        return user_out(session, identity.get_user(session, user_id=user_id))


@router.patch("/users/{user_id}", response_model=UserOut)
def change_user_status(user_id: str, body: StatusIn, ctx: Ctx, principal: Admin) -> UserOut:
    """Lock, disable or re-activate a user (platform administrators)."""
    with transaction(ctx.sessions) as session:
        user = identity.get_user(session, user_id=user_id)
        admin.change_status(
            session, ctx, actor=acting_user(session, principal), user=user, status=body.status
        )
        return user_out(session, user)


@router.post("/users/{user_id}/convert-to-technical", response_model=UserOut)
def convert_to_technical(user_id: str, body: ConvertIn, ctx: Ctx, principal: Admin) -> UserOut:
    """Turn a person (a P-user made the seed's way) into an owned technical user."""
    with transaction(ctx.sessions) as session:
        person = identity.get_user(session, user_id=user_id)
        owner = identity.get_user(session, user_id=body.owner_user_id)
        technical.convert(
            session, ctx, actor=acting_user(session, principal), person=person, owner=owner
        )
        return user_out(session, person)


@router.get("/audit-events", response_model=Page[AuditEventOut])
def list_audit_events(
    ctx: Ctx,
    _: Admin,
    limit: Limit = 50,
    cursor: Cursor = None,
    subdomain: Annotated[str | None, Query(max_length=63)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=32)] = None,
) -> Page[AuditEventOut]:
    """The audit trail, newest first (platform administrators)."""
    before = int(cursor) if cursor and cursor.isdigit() else None
    with transaction(ctx.read_sessions) as session:
        events = audit.list_events(
            session,
            limit=limit + 1,
            before_id=before,
            subdomain=subdomain,
            action=action,
            actor=actor,
        )
    items = [
        AuditEventOut(
            id=e.id,
            occurred_at=e.occurred_at,
            actor=e.actor,
            action=e.action,
            subdomain=e.subdomain,
            target=e.target,
            detail=e.detail,
            hash=e.hash,
        )
        for e in events
    ]
    more = len(items) > limit
    return Page[AuditEventOut](
        items=items[:limit], next_cursor=str(items[limit - 1].id) if more else None
    )


@router.get("/audit-events/verify", response_model=ChainOut)
def verify_audit_chain(ctx: Ctx, _: Admin) -> ChainOut:
    """Recompute the keyed chain against the newest stored checkpoint; ``ok`` is false if
    any event was changed, removed, forged or cut off (docs/audit.md)."""
    with transaction(ctx.read_sessions) as session:
        try:
            anchor = audit_checkpoints.latest(session, ctx)
        except InvalidInput as exc:  # a stored checkpoint that fails its signature
            return ChainOut(ok=False, events=0, first_broken_id=None, reason=exc.detail)
        result = audit_verify.verify_chain(session, checkpoint=anchor)
    return ChainOut(
        ok=result.ok,
        events=result.events,
        first_broken_id=result.first_broken_id,
        reason=result.reason,
    )
