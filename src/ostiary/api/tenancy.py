"""Sub-accounts and members."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ostiary.access.permissions import Permission
from ostiary.api.authn import Principal, authenticated, platform_admin
from ostiary.api.deps import (
    Cursor,
    Limit,
    Page,
    acting_user,
    authorized,
    context,
    paginate,
)
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.identity import service as identity
from ostiary.identity.models import User
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Member, MemberRole, Plan, Subaccount
from ostiary.tenancy.plans import PLAN_LIMITS

router = APIRouter(prefix="/api/v1/subaccounts", tags=["sub-accounts"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]
Subdomain = Annotated[str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9-]{3,63}$")]
Text = Annotated[str, Field(max_length=2000)]


class SubaccountIn(BaseModel):
    """A new sub-account."""

    subdomain: Subdomain
    display_name: Annotated[str, Field(min_length=1, max_length=200)]
    plan: Plan = Plan.trial
    description: Text = ""


class SubaccountPatch(BaseModel):
    """Changes to a sub-account; the plan only by platform administrators."""

    display_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Text | None = None
    plan: Plan | None = None
    basic_auth_allowed: bool | None = None
    message_retention_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class SubaccountOut(BaseModel):
    """A sub-account with its plan's limits and their use."""

    subdomain: str
    display_name: str
    description: str
    plan: Plan
    limits: dict[str, int]
    usage: dict[str, int]
    basic_auth_allowed: bool
    message_retention_days: int
    created_at: datetime


class MemberIn(BaseModel):
    """Add a user by user ID with member roles and a description."""

    user_id: Annotated[str, Field(min_length=1, max_length=32)]
    roles: Annotated[list[MemberRole], Field(min_length=1, max_length=3)]
    description: Text = ""


class MemberPatch(BaseModel):
    """Change a member's roles or description."""

    roles: Annotated[list[MemberRole], Field(min_length=1, max_length=3)] | None = None
    description: Text | None = None


class MemberOut(BaseModel):
    """A member of a sub-account."""

    user_id: str
    display_name: str
    email: str | None
    kind: str
    roles: list[str]
    description: str
    added_at: datetime


def subaccount_out(ctx: AppContext, subaccount: Subaccount, usage: dict[str, int]) -> SubaccountOut:
    """A sub-account as the API shows it."""
    return SubaccountOut(
        subdomain=subaccount.subdomain,
        display_name=subaccount.display_name,
        description=subaccount.description,
        plan=subaccount.plan,
        limits=PLAN_LIMITS[subaccount.plan].as_dict(),
        usage=usage,
        basic_auth_allowed=subaccount.basic_auth_allowed,
        message_retention_days=subaccount.message_retention_days,
        created_at=subaccount.created_at,
    )


def member_out(member: Member, user: User) -> MemberOut:
    """A member as the API shows it."""
    return MemberOut(
        user_id=user.user_id,
        display_name=user.display_name,
        email=user.email,
        kind=user.kind.value,
        roles=list(member.roles),
        description=member.description,
        added_at=member.created_at,
    )


@router.post("", status_code=201, response_model=SubaccountOut)
def create_subaccount(
    body: SubaccountIn, ctx: Ctx, principal: Principal = Depends(platform_admin)
) -> SubaccountOut:
    """Create a sub-account (platform administrators); its creator becomes Administrator."""
    with transaction(ctx.sessions) as session:
        creator = acting_user(session, principal)
        subaccount = tenancy.create(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            subdomain=body.subdomain,
            display_name=body.display_name,
            plan=body.plan,
            description=body.description,
            creator=creator,
        )
        return subaccount_out(ctx, subaccount, tenancy.usage(session, subaccount=subaccount))


@router.get("", response_model=Page[SubaccountOut])
def list_subaccounts(
    ctx: Ctx, principal: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[SubaccountOut]:
    """Sub-accounts the caller is a member of (all of them for platform administrators)."""
    with transaction(ctx.read_sessions) as session:
        visible = tenancy.list_visible(session, user=acting_user(session, principal))
        items = [subaccount_out(ctx, s, tenancy.usage(session, subaccount=s)) for s in visible]
    return paginate(items, key=lambda s: s.subdomain, limit=limit, cursor=cursor)


@router.get("/{subdomain}", response_model=SubaccountOut)
def get_subaccount(subdomain: str, ctx: Ctx, principal: Caller) -> SubaccountOut:
    """One sub-account with its plan limits."""
    with authorized(ctx, principal, subdomain, Permission.subaccount_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        return subaccount_out(ctx, subaccount, tenancy.usage(session, subaccount=subaccount))


@router.patch("/{subdomain}", response_model=SubaccountOut)
def update_subaccount(
    subdomain: str, body: SubaccountPatch, ctx: Ctx, principal: Caller
) -> SubaccountOut:
    """Rename or describe a sub-account (Administrators); change its plan (platform admins)."""
    from ostiary.errors import PermissionDenied

    if body.plan is not None and not principal.is_platform_admin:
        raise PermissionDenied("only platform administrators change a plan")
    with authorized(ctx, principal, subdomain, Permission.subaccount_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        tenancy.update(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            subaccount=subaccount,
            display_name=body.display_name,
            description=body.description,
            plan=body.plan,
            basic_auth_allowed=body.basic_auth_allowed,
            message_retention_days=body.message_retention_days,
        )
        return subaccount_out(ctx, subaccount, tenancy.usage(session, subaccount=subaccount))


@router.delete("/{subdomain}", status_code=204)
def delete_subaccount(
    subdomain: str,
    ctx: Ctx,
    principal: Principal = Depends(platform_admin),
    confirm: Annotated[
        str | None,
        Query(
            max_length=63,
            description="Repeat the subdomain to delete a sub-account that still has content.",
        ),
    ] = None,
) -> None:
    """Delete a sub-account (platform administrators)."""
    with transaction(ctx.sessions) as session:
        subaccount = tenancy.get(session, subdomain=subdomain)
        tenancy.delete_subaccount(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            subaccount=subaccount,
            confirm=confirm,
        )


@router.get("/{subdomain}/members", response_model=Page[MemberOut])
def list_members(
    subdomain: str, ctx: Ctx, principal: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[MemberOut]:
    """The members of a sub-account."""
    with authorized(ctx, principal, subdomain, Permission.members_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        items = [member_out(m, u) for m, u in tenancy.list_members(session, subaccount=subaccount)]
    return paginate(items, key=lambda m: m.user_id, limit=limit, cursor=cursor)


@router.post("/{subdomain}/members", status_code=201, response_model=MemberOut)
def add_member(subdomain: str, body: MemberIn, ctx: Ctx, principal: Caller) -> MemberOut:
    """Add a user (person or technical) as a member, by user ID."""
    with authorized(ctx, principal, subdomain, Permission.members_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        user = identity.get_user(session, user_id=body.user_id)
        member = tenancy.add_member(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            subaccount=subaccount,
            user=user,
            roles=[r.value for r in body.roles],
            description=body.description,
        )
        return member_out(member, user)


@router.patch("/{subdomain}/members/{user_id}", response_model=MemberOut)
def change_member(
    subdomain: str, user_id: str, body: MemberPatch, ctx: Ctx, principal: Caller
) -> MemberOut:
    """Change a member's roles or description."""
    with authorized(ctx, principal, subdomain, Permission.members_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        user = identity.get_user(session, user_id=user_id)
        member = tenancy.change_member(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            subaccount=subaccount,
            user=user,
            roles=[r.value for r in body.roles] if body.roles is not None else None,
            description=body.description,
        )
        return member_out(member, user)


@router.delete("/{subdomain}/members/{user_id}", status_code=204)
def remove_member(subdomain: str, user_id: str, ctx: Ctx, principal: Caller) -> None:
    """Remove a member; their role collections in this sub-account go with them."""
    with authorized(ctx, principal, subdomain, Permission.members_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        user = identity.get_user(session, user_id=user_id)
        tenancy.remove_member(
            session, clock=ctx.clock, actor=principal.user_id, subaccount=subaccount, user=user
        )
