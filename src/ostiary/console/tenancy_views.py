"""Console pages for sub-accounts and their members (contract §2 steps 5-6, C2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from ostiary.access.permissions import Permission
from ostiary.api.deps import context
from ostiary.console.guard import authorized, page, principal, problem, signed_in
from ostiary.console.review_views import subaccount_pictures
from ostiary.console.web import Viewer, check_csrf, redirect, render
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import InvalidInput, OstiaryError, PermissionDenied
from ostiary.identity import service as identity
from ostiary.review.home import recent_messages
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import MemberRole, Plan
from ostiary.tenancy.plans import PLAN_LIMITS

router = APIRouter(prefix="/console/subaccounts", include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
Field = Annotated[str, Form(max_length=2000)]
Choices = Annotated[list[str], Form(max_length=10, default_factory=list)]
MEMBER_ROLES = [r.value for r in MemberRole]
PLAN_NAMES = [p.value for p in Plan]
#: What each member role may do, shown next to the checkboxes.
MEMBER_ROLE_HINTS = {
    MemberRole.administrator.value: "manages members, authorizations, technical users, flows",
    MemberRole.developer.value: "manages flows, reads the rest",
    MemberRole.viewer.value: "reads",
}
#: Rows of the limits table, in the order the overview shows them.
LIMIT_LABELS = {
    "members": "Members",
    "technical_users": "Technical users (at home here)",
    "custom_roles": "Custom roles",
    "role_collections": "Role collections",
    "flows": "Integration flows",
}


# ---------------------------------------------------------------- sub-accounts


def _list_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    *,
    failed: OstiaryError | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    assert seen.user is not None
    with transaction(ctx.read_sessions) as session:
        visible = tenancy.list_visible(session, user=seen.user)
    return page(
        request,
        ctx,
        seen,
        "subaccounts/list.html",
        failed=failed,
        subaccounts=visible,
        plans=PLAN_NAMES,
        form=form or {"plan": Plan.trial.value},
    )


@router.get("")
def subaccounts(request: Request, ctx: Ctx) -> Response:
    """The sub-accounts the user may see; platform administrators can create one."""
    seen = signed_in(request, ctx)
    return _list_page(request, ctx, seen)


@router.post("")
def create_subaccount(
    request: Request,
    ctx: Ctx,
    csrf_token: Field = "",
    subdomain: Field = "",
    display_name: Field = "",
    plan: Field = "trial",
) -> Response:
    """Create a sub-account (platform administrators); its creator becomes Administrator."""
    seen = signed_in(request, ctx)
    form = {"subdomain": subdomain, "display_name": display_name, "plan": plan}
    try:
        check_csrf(seen, csrf_token)
        if seen.user is None or not seen.user.is_platform_admin:
            raise PermissionDenied("only platform administrators create sub-accounts")
        if plan not in PLAN_NAMES:
            raise InvalidInput(f"choose the plan {' or '.join(PLAN_NAMES)}")
        with transaction(ctx.sessions) as session:
            creator = identity.get_user(session, user_id=seen.user.user_id)
            tenancy.create(
                session,
                clock=ctx.clock,
                actor=creator.user_id,
                subdomain=subdomain.strip(),
                display_name=display_name,
                plan=Plan(plan),
                creator=creator,
            )
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        return _list_page(request, ctx, seen, failed=exc, form=form)
    return redirect(ctx, f"/console/subaccounts/{subdomain.strip()}", flash="subaccount_created")


@router.get("/{subdomain}")
def overview(request: Request, ctx: Ctx, subdomain: str) -> Response:
    """Plan, limits against use, and one-click links to Members and Authorizations (C2)."""
    seen = signed_in(request, ctx)
    try:
        with authorized(ctx, seen, subdomain, Permission.subaccount_read) as here:
            used = tenancy.usage(here.session, subaccount=here.subaccount)
            pictures = subaccount_pictures(here.session, ctx=ctx, subaccount=here.subaccount)
            messages = recent_messages(
                here.session, subaccount=here.subaccount, now=ctx.clock.now()
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    limits = PLAN_LIMITS[here.subaccount.plan].as_dict()
    rows = [(label, used.get(key), limits[key]) for key, label in LIMIT_LABELS.items()]
    return render(
        request,
        ctx,
        seen,
        "subaccounts/overview.html",
        subaccount=here.subaccount,
        limits=rows,
        pictures=pictures,
        flows=used.get("flows", 0),
        messages=messages,
        section="overview",
    )


# ---------------------------------------------------------------- members


def _members_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    subdomain: str,
    *,
    failed: OstiaryError | None = None,
    form: dict[str, object] | None = None,
) -> Response:
    try:
        with authorized(ctx, seen, subdomain, Permission.members_read) as here:
            members = tenancy.list_members(here.session, subaccount=here.subaccount)
            writable = here.may(Permission.members_write)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return page(
        request,
        ctx,
        seen,
        "subaccounts/members.html",
        failed=failed,
        subaccount=here.subaccount,
        members=members,
        writable=writable,
        member_roles=MEMBER_ROLES,
        hints=MEMBER_ROLE_HINTS,
        form=form or {"user_id": "", "roles": [], "description": ""},
        section="members",
    )


@router.get("/{subdomain}/members")
def members(request: Request, ctx: Ctx, subdomain: str) -> Response:
    """The members of a sub-account, and (for Administrators) the Add form."""
    seen = signed_in(request, ctx)
    return _members_page(request, ctx, seen, subdomain)


@router.post("/{subdomain}/members")
def add_member(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    roles: Choices,
    csrf_token: Field = "",
    user_id: Field = "",
    description: Field = "",
) -> Response:
    """Add a user by user ID with member roles and a description (contract §2 step 5)."""
    seen = signed_in(request, ctx)
    form: dict[str, object] = {"user_id": user_id, "roles": roles, "description": description}
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.members_write, write=True) as here:
            if not user_id.strip():
                raise InvalidInput("enter the user ID of the user to add")
            user = identity.get_user(here.session, user_id=user_id)
            tenancy.add_member(
                here.session,
                clock=ctx.clock,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                user=user,
                roles=roles,
                description=description.strip(),
            )
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        return _members_page(request, ctx, seen, subdomain, failed=exc, form=form)
    return redirect(ctx, f"/console/subaccounts/{subdomain}/members", flash="member_added")


def _member_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    subdomain: str,
    user_id: str,
    *,
    failed: OstiaryError | None = None,
) -> Response:
    try:
        with authorized(ctx, seen, subdomain, Permission.members_write) as here:
            user = identity.get_user(here.session, user_id=user_id)
            member = tenancy.get_member(here.session, subaccount=here.subaccount, user=user)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return page(
        request,
        ctx,
        seen,
        "subaccounts/member.html",
        failed=failed,
        subaccount=here.subaccount,
        member=member,
        member_user=user,
        member_roles=MEMBER_ROLES,
        hints=MEMBER_ROLE_HINTS,
        section="members",
    )


@router.get("/{subdomain}/members/{user_id}")
def member(request: Request, ctx: Ctx, subdomain: str, user_id: str) -> Response:
    """Change a member's roles or description, or remove the member."""
    seen = signed_in(request, ctx)
    return _member_page(request, ctx, seen, subdomain, user_id)


@router.post("/{subdomain}/members/{user_id}")
def change_member(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    user_id: str,
    roles: Choices,
    csrf_token: Field = "",
    description: Field = "",
) -> Response:
    """Save a member's roles and description; the last Administrator stays one."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.members_write, write=True) as here:
            tenancy.change_member(
                here.session,
                clock=ctx.clock,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                user=identity.get_user(here.session, user_id=user_id),
                roles=roles,
                description=description.strip(),
            )
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        return _member_page(request, ctx, seen, subdomain, user_id, failed=exc)
    return redirect(ctx, f"/console/subaccounts/{subdomain}/members", flash="member_changed")


@router.post("/{subdomain}/members/{user_id}/remove")
def remove_member(
    request: Request, ctx: Ctx, subdomain: str, user_id: str, csrf_token: Field = ""
) -> Response:
    """Remove a member; their role collections in this sub-account go with them."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.members_write, write=True) as here:
            tenancy.remove_member(
                here.session,
                clock=ctx.clock,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                user=identity.get_user(here.session, user_id=user_id),
            )
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        return _member_page(request, ctx, seen, subdomain, user_id, failed=exc)
    return redirect(ctx, f"/console/subaccounts/{subdomain}/members", flash="member_removed")
