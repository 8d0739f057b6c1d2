"""Groups of the directory, their members and their role collections in a sub-account."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ostiary.access.permissions import Permission
from ostiary.api.authn import Principal, authenticated, platform_admin
from ostiary.api.deps import Cursor, Limit, Page, acting_user, authorized, context
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import NotFound, PermissionDenied
from ostiary.groups import assignments
from ostiary.groups import service as groups
from ostiary.groups.models import Group
from ostiary.identity import service as identity

router = APIRouter(prefix="/api/v1", tags=["groups"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]
Admin = Annotated[Principal, Depends(platform_admin)]
Name = Annotated[str, Field(min_length=1, max_length=groups.NAME_MAX)]
Text = Annotated[str, Field(max_length=2000)]


class GroupIn(BaseModel):
    """A new group."""

    name: Name
    description: Text = ""


class GroupPatch(BaseModel):
    """Changes to a group."""

    name: Name | None = None
    description: Text | None = None


class MemberRef(BaseModel):
    """A member of a group."""

    user_id: str
    kind: str
    status: str
    display_name: str


class GroupOut(BaseModel):
    """A group with its members and the technical users it owns."""

    group_id: str
    name: str
    description: str
    members: list[MemberRef]
    owns: list[str]
    created_at: datetime
    updated_at: datetime


class MemberIn(BaseModel):
    """A user to put in the group (a person or a technical user)."""

    user_id: Annotated[str, Field(min_length=1, max_length=32)]


class GroupAssignmentIn(BaseModel):
    """The role collections a group holds in a sub-account."""

    role_collections: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=200)]


class GroupAssignmentOut(BaseModel):
    """A group's role collections in a sub-account."""

    group_id: str
    name: str
    role_collections: list[str]


def group_out(session: Session, group: Group) -> GroupOut:
    """A group as the API shows it."""
    return GroupOut(
        group_id=group.group_id,
        name=group.name,
        description=group.description,
        members=[
            MemberRef(
                user_id=u.user_id,
                kind=u.kind.value,
                status=u.status.value,
                display_name=u.display_name,
            )
            for u in groups.members(session, group=group)
        ],
        owns=[u.user_id for u in groups.owned_technical_users(session, group=group)],
        created_at=group.created_at,
        updated_at=group.updated_at,
    )


def _visible(session: Session, principal: Principal, group_id: str) -> Group:
    """The group, if the caller may see it (others get the same 404 as for no group)."""
    actor = acting_user(session, principal)
    group = groups.get(session, group_id=group_id)
    if not groups.may_see(session, actor=actor) and not groups.is_member(
        session, group=group, user=actor
    ):
        raise NotFound(f"no group {group_id}")
    return group


@router.get("/groups", response_model=Page[GroupOut])
def list_groups(
    ctx: Ctx,
    principal: Caller,
    query: Annotated[str, Query(max_length=100)] = "",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[GroupOut]:
    """Groups by group ID (platform and sub-account administrators; others: their own)."""
    with transaction(ctx.read_sessions) as session:
        actor = acting_user(session, principal)
        if groups.may_see(session, actor=actor):
            found = groups.list_groups(session, query=query, limit=limit + 1, after=cursor)
        else:
            found = [
                g
                for g in groups.groups_of(session, user=actor)
                if (not cursor or g.group_id > cursor) and query.lower() in g.name.lower()
            ]
            found = sorted(found, key=lambda g: g.group_id)[: limit + 1]
        items = [group_out(session, g) for g in found[:limit]]
    more = len(found) > limit
    return Page[GroupOut](items=items, next_cursor=items[-1].group_id if more and items else None)


@router.post("/groups", status_code=201, response_model=GroupOut)
def create_group(body: GroupIn, ctx: Ctx, principal: Admin) -> GroupOut:
    """Create a group (platform administrators)."""
    with transaction(ctx.sessions) as session:
        group = groups.create(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            name=body.name,
            description=body.description,
        )
        return group_out(session, group)


@router.get("/groups/{group_id}", response_model=GroupOut)
def get_group(group_id: str, ctx: Ctx, principal: Caller) -> GroupOut:
    """One group with its members."""
    with transaction(ctx.read_sessions) as session:
        return group_out(session, _visible(session, principal, group_id))


@router.patch("/groups/{group_id}", response_model=GroupOut)
def change_group(group_id: str, body: GroupPatch, ctx: Ctx, principal: Admin) -> GroupOut:
    """Rename a group or change its description (platform administrators)."""
    with transaction(ctx.sessions) as session:
        group = groups.update_group(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            group=groups.get(session, group_id=group_id),
            name=body.name,
            description=body.description,
        )
        return group_out(session, group)


@router.delete("/groups/{group_id}", status_code=204)
def delete_group(group_id: str, ctx: Ctx, principal: Admin) -> None:
    """Delete a group; refused (409) while it owns technical users."""
    with transaction(ctx.sessions) as session:
        groups.delete_group(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            group=groups.get(session, group_id=group_id),
        )


@router.get("/groups/{group_id}/members", response_model=list[MemberRef])
def list_group_members(group_id: str, ctx: Ctx, principal: Caller) -> list[MemberRef]:
    """The group's members."""
    with transaction(ctx.read_sessions) as session:
        return group_out(session, _visible(session, principal, group_id)).members


@router.post("/groups/{group_id}/members", status_code=201, response_model=GroupOut)
def add_group_member(
    group_id: str, body: MemberIn, ctx: Ctx, principal: Admin, response: Response
) -> GroupOut:
    """Put a person or technical user in the group (200 if it already was)."""
    with transaction(ctx.sessions) as session:
        group = groups.get(session, group_id=group_id)
        user = identity.get_user(session, user_id=body.user_id)
        if not groups.add_member(
            session, clock=ctx.clock, actor=principal.user_id, group=group, user=user
        ):
            response.status_code = 200
        return group_out(session, group)


@router.delete("/groups/{group_id}/members/{user_id}", status_code=204)
def remove_group_member(group_id: str, user_id: str, ctx: Ctx, principal: Caller) -> None:
    """Take a user out of the group (platform administrators; a member may leave)."""
    with transaction(ctx.sessions) as session:
        actor = acting_user(session, principal)
        group = _visible(session, principal, group_id)
        user = identity.get_user(session, user_id=user_id)
        if not actor.is_platform_admin and actor.id != user.id:
            raise PermissionDenied("only platform administrators remove others from a group")
        if not groups.remove_member(
            session, clock=ctx.clock, actor=principal.user_id, group=group, user=user
        ):
            raise NotFound(f"{user.user_id} is not in group {group.group_id}")


@router.get("/subaccounts/{subdomain}/groups", response_model=list[GroupAssignmentOut])
def list_group_assignments(subdomain: str, ctx: Ctx, principal: Caller) -> list[GroupAssignmentOut]:
    """Groups holding role collections in the sub-account (Security → Authorizations)."""
    with authorized(ctx, principal, subdomain, Permission.assignments_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        return [
            GroupAssignmentOut(group_id=g.group_id, name=g.name, role_collections=names)
            for g, names in assignments.groups_with_assignments(session, subaccount=subaccount)
        ]


@router.get(
    "/subaccounts/{subdomain}/groups/{group_id}/role-collections",
    response_model=GroupAssignmentOut,
)
def get_group_assignments(
    subdomain: str, group_id: str, ctx: Ctx, principal: Caller
) -> GroupAssignmentOut:
    """The role collections a group holds here."""
    with authorized(ctx, principal, subdomain, Permission.assignments_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        group = groups.get(session, group_id=group_id)
        names = assignments.group_collections(session, subaccount=subaccount, group=group)
    return GroupAssignmentOut(group_id=group.group_id, name=group.name, role_collections=names)


@router.put(
    "/subaccounts/{subdomain}/groups/{group_id}/role-collections",
    response_model=GroupAssignmentOut,
)
def set_group_assignments(
    subdomain: str, group_id: str, body: GroupAssignmentIn, ctx: Ctx, principal: Caller
) -> GroupAssignmentOut:
    """Replace the role collections a group holds here; every member holds them then."""
    with authorized(ctx, principal, subdomain, Permission.assignments_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        group = groups.get(session, group_id=group_id)
        names = assignments.set_group_collections(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            subaccount=subaccount,
            group=group,
            names=body.role_collections,
        )
    return GroupAssignmentOut(group_id=group.group_id, name=group.name, role_collections=names)
