"""Console pages for groups: the directory's groups and their members, and a sub-account's
Security → Authorizations → Groups, where role collections are assigned to a group."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from ostiary.access import service as access
from ostiary.access.permissions import Permission
from ostiary.api.deps import context
from ostiary.console.guard import authorized, page, principal, problem, signed_in
from ostiary.console.web import check_csrf, redirect, render
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import NotFound, OstiaryError, PermissionDenied
from ostiary.groups import assignments
from ostiary.groups import service as groups
from ostiary.identity import service as identity
from ostiary.identity.models import User

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
Field = Annotated[str, Form(max_length=2000)]
Choices = Annotated[list[str], Form(max_length=500, default_factory=list)]


def _group_url(group_id: str) -> str:
    return f"/console/groups/{quote(group_id)}"


def _admin(actor: User | None) -> User:
    if actor is None or not actor.is_platform_admin:
        raise PermissionDenied("only platform administrators change groups")
    return actor


@router.get("/groups")
def group_list(request: Request, ctx: Ctx) -> Response:
    """The directory's groups (platform and sub-account administrators; others: their own)."""
    seen = signed_in(request, ctx)
    with transaction(ctx.read_sessions) as session:
        actor = session.get(User, principal(seen).id)
        assert actor is not None
        found = (
            groups.list_groups(session, limit=500)
            if groups.may_see(session, actor=actor)
            else groups.groups_of(session, user=actor)
        )
        rows = [(g, len(groups.members(session, group=g))) for g in found]
    return render(
        request, ctx, seen, "groups/list.html", rows=rows, can_create=actor.is_platform_admin
    )


@router.post("/groups")
def group_create(
    request: Request, ctx: Ctx, name: Field = "", description: Field = "", csrf_token: Field = ""
) -> Response:
    """Create a group and open it."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with transaction(ctx.sessions) as session:
            _admin(session.get(User, principal(seen).id))
            group = groups.create(
                session,
                clock=ctx.clock,
                actor=principal(seen).user_id,
                name=name,
                description=description,
            )
            made = group.group_id
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return redirect(ctx, _group_url(made), flash="group_created")


@router.get("/groups/{group_id}")
def group_detail(request: Request, ctx: Ctx, group_id: str) -> Response:
    """A group's members and the technical users it owns."""
    seen = signed_in(request, ctx)
    try:
        with transaction(ctx.read_sessions) as session:
            actor = session.get(User, principal(seen).id)
            assert actor is not None
            group = groups.get(session, group_id=group_id)
            if not groups.may_see(session, actor=actor) and not groups.is_member(
                session, group=group, user=actor
            ):
                raise NotFound(f"no group {group_id}")
            members = groups.members(session, group=group)
            owned = groups.owned_technical_users(session, group=group)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return render(
        request,
        ctx,
        seen,
        "groups/detail.html",
        group=group,
        members=members,
        owned=owned,
        writable=actor.is_platform_admin,
    )


@router.post("/groups/{group_id}/members")
def group_members(
    request: Request,
    ctx: Ctx,
    group_id: str,
    user_id: Field = "",
    action: Field = "add",
    csrf_token: Field = "",
) -> Response:
    """Add a user to the group by user ID, or remove one."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with transaction(ctx.sessions) as session:
            _admin(session.get(User, principal(seen).id))
            group = groups.get(session, group_id=group_id)
            user = identity.get_user(session, user_id=user_id)
            change = groups.remove_member if action == "remove" else groups.add_member
            change(session, clock=ctx.clock, actor=principal(seen).user_id, group=group, user=user)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    flash = "group_member_removed" if action == "remove" else "group_member_added"
    return redirect(ctx, _group_url(group_id), flash=flash)


# ---------------------------------------------------------------- Authorizations → Groups


def _assignment_url(subdomain: str, group_id: str) -> str:
    return f"/console/subaccounts/{subdomain}/security/authorizations/groups/{quote(group_id)}"


@router.get("/subaccounts/{subdomain}/security/authorizations/groups")
def group_authorizations(request: Request, ctx: Ctx, subdomain: str) -> Response:
    """Groups holding role collections here, and every group to open."""
    seen = signed_in(request, ctx)
    try:
        with authorized(ctx, seen, subdomain, Permission.assignments_read) as here:
            held = dict(
                (g.group_id, names)
                for g, names in assignments.groups_with_assignments(
                    here.session, subaccount=here.subaccount
                )
            )
            every = groups.list_groups(here.session, limit=500)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return page(
        request,
        ctx,
        seen,
        "subaccounts/authorization_groups.html",
        subaccount=here.subaccount,
        groups=every,
        held=held,
        section="authorizations",
    )


@router.get("/subaccounts/{subdomain}/security/authorizations/groups/{group_id}")
def group_authorization(request: Request, ctx: Ctx, subdomain: str, group_id: str) -> Response:
    """One group's role collections here, with a checkbox for every collection."""
    seen = signed_in(request, ctx)
    try:
        with authorized(ctx, seen, subdomain, Permission.assignments_read) as here:
            group = groups.get(here.session, group_id=group_id)
            held = assignments.group_collections(
                here.session, subaccount=here.subaccount, group=group
            )
            collections = access.list_collections(here.session, subaccount=here.subaccount)
            members = groups.members(here.session, group=group)
            writable = here.may(Permission.assignments_write)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return render(
        request,
        ctx,
        seen,
        "subaccounts/authorization_group.html",
        subaccount=here.subaccount,
        group=group,
        held=held,
        collections=collections,
        members=members,
        writable=writable,
        section="authorizations",
    )


@router.post("/subaccounts/{subdomain}/security/authorizations/groups/{group_id}")
def save_group_authorization(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    group_id: str,
    role_collections: Choices,
    csrf_token: Field = "",
) -> Response:
    """Replace the group's role collections here with the checked ones."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.assignments_write, write=True) as here:
            group = groups.get(here.session, group_id=group_id)
            saved = group.group_id
            assignments.set_group_collections(
                here.session,
                clock=ctx.clock,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                group=group,
                names=role_collections,
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return redirect(ctx, _assignment_url(subdomain, saved), flash="assignments_saved")
