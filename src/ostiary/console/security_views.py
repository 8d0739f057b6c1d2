"""Console pages under a sub-account's *Security*: Authorizations → Users, Role collections,
Roles (contract §2 step 7)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from ostiary.access import service as access
from ostiary.access.permissions import Permission
from ostiary.api.deps import context
from ostiary.console.guard import authorized, page, principal, problem, signed_in
from ostiary.console.web import Viewer, check_csrf, redirect, render
from ostiary.context import AppContext
from ostiary.errors import NotFound, OstiaryError, PermissionDenied
from ostiary.identity import service as identity
from ostiary.tenancy import service as tenancy

router = APIRouter(prefix="/console/subaccounts/{subdomain}/security", include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
Field = Annotated[str, Form(max_length=2000)]
Choices = Annotated[list[str], Form(max_length=500, default_factory=list)]
Search = Annotated[str, Query(max_length=100)]


# ---------------------------------------------------------------- Authorizations → Users


@router.get("/authorizations")
def authorizations(
    request: Request, ctx: Ctx, subdomain: str, search: Search = "", user_id: Search = ""
) -> Response:
    """Users of the sub-account with their role collections, searchable; or open one by ID."""
    seen = signed_in(request, ctx)
    missing: NotFound | None = None
    try:
        with authorized(ctx, seen, subdomain, Permission.assignments_read) as here:
            if user_id.strip():
                # Any user of the directory can be opened: an assignment needs no membership.
                try:
                    found = identity.get_user(here.session, user_id=user_id)
                except NotFound as exc:
                    missing = exc
                else:
                    return redirect(ctx, _user_url(subdomain, found.user_id))
            rows = access.users_with_assignments(
                here.session, subaccount=here.subaccount, search=search.strip()
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return page(
        request,
        ctx,
        seen,
        "subaccounts/authorizations.html",
        failed=missing,
        subaccount=here.subaccount,
        rows=rows,
        search=search,
        user_id=user_id,
        section="authorizations",
    )


def _user_url(subdomain: str, user_id: str) -> str:
    return f"/console/subaccounts/{subdomain}/security/authorizations/users/{quote(user_id)}"


@router.get("/authorizations/users/{user_id}")
def user_authorizations(request: Request, ctx: Ctx, subdomain: str, user_id: str) -> Response:
    """One user's role collections in the sub-account, with a checkbox for every collection."""
    seen = signed_in(request, ctx)
    try:
        with authorized(ctx, seen, subdomain, Permission.assignments_read) as here:
            user = identity.get_user(here.session, user_id=user_id)
            held = access.user_collections(here.session, subaccount=here.subaccount, user=user)
            collections = access.list_collections(here.session, subaccount=here.subaccount)
            try:
                member_roles = list(
                    tenancy.get_member(here.session, subaccount=here.subaccount, user=user).roles
                )
            except NotFound:
                member_roles = []
            writable = here.may(Permission.assignments_write)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return render(
        request,
        ctx,
        seen,
        "subaccounts/authorization_user.html",
        subaccount=here.subaccount,
        subject=user,
        held=held,
        collections=collections,
        member_roles=member_roles,
        writable=writable,
        section="authorizations",
    )


@router.post("/authorizations/users/{user_id}")
def save_user_authorizations(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    user_id: str,
    role_collections: Choices,
    csrf_token: Field = "",
) -> Response:
    """Replace the user's role collections in the sub-account with the checked ones."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.assignments_write, write=True) as here:
            user = identity.get_user(here.session, user_id=user_id)
            saved = user.user_id
            access.set_user_collections(
                here.session,
                clock=ctx.clock,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                user=user,
                names=role_collections,
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return redirect(ctx, _user_url(subdomain, saved), flash="assignments_saved")


# ---------------------------------------------------------------- role collections


def _collections_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    subdomain: str,
    *,
    failed: OstiaryError | None = None,
    form: dict[str, object] | None = None,
) -> Response:
    try:
        with authorized(ctx, seen, subdomain, Permission.role_collections_read) as here:
            collections = access.list_collections(here.session, subaccount=here.subaccount)
            roles = access.role_names(here.session, subaccount=here.subaccount)
            writable = here.may(Permission.role_collections_write)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return page(
        request,
        ctx,
        seen,
        "subaccounts/role_collections.html",
        failed=failed,
        subaccount=here.subaccount,
        collections=collections,
        roles=roles,
        writable=writable,
        form=form or {"name": "", "description": "", "roles": []},
        section="role_collections",
    )


@router.get("/role-collections")
def role_collections(request: Request, ctx: Ctx, subdomain: str) -> Response:
    """Role collections with their roles, and (for Administrators) the create form."""
    seen = signed_in(request, ctx)
    return _collections_page(request, ctx, seen, subdomain)


@router.post("/role-collections")
def create_role_collection(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    roles: Choices,
    csrf_token: Field = "",
    name: Field = "",
    description: Field = "",
) -> Response:
    """Create a role collection from the checked roles."""
    seen = signed_in(request, ctx)
    form: dict[str, object] = {"name": name, "description": description, "roles": roles}
    try:
        check_csrf(seen, csrf_token)
        with authorized(
            ctx, seen, subdomain, Permission.role_collections_write, write=True
        ) as here:
            access.create_collection(
                here.session,
                clock=ctx.clock,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                name=name.strip(),
                roles=roles,
                description=description.strip(),
            )
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        return _collections_page(request, ctx, seen, subdomain, failed=exc, form=form)
    return redirect(
        ctx,
        f"/console/subaccounts/{subdomain}/security/role-collections",
        flash="collection_created",
    )


# ---------------------------------------------------------------- roles


def _roles_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    subdomain: str,
    *,
    failed: OstiaryError | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    try:
        with authorized(ctx, seen, subdomain, Permission.roles_read) as here:
            roles = access.role_names(here.session, subaccount=here.subaccount)
            writable = here.may(Permission.roles_write)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return page(
        request,
        ctx,
        seen,
        "subaccounts/roles.html",
        failed=failed,
        subaccount=here.subaccount,
        roles=[(n, d, n in access.BUILTIN_ROLES) for n, d in roles.items()],
        writable=writable,
        form=form or {"name": "", "description": ""},
        section="roles",
    )


@router.get("/roles")
def roles(request: Request, ctx: Ctx, subdomain: str) -> Response:
    """Built-in role templates and custom roles."""
    seen = signed_in(request, ctx)
    return _roles_page(request, ctx, seen, subdomain)


@router.post("/roles")
def create_role(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    csrf_token: Field = "",
    name: Field = "",
    description: Field = "",
) -> Response:
    """Define a custom role such as ``Orders.send``."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.roles_write, write=True) as here:
            access.create_role(
                here.session,
                clock=ctx.clock,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                name=name.strip(),
                description=description.strip(),
            )
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        return _roles_page(
            request,
            ctx,
            seen,
            subdomain,
            failed=exc,
            form={"name": name, "description": description},
        )
    return redirect(ctx, f"/console/subaccounts/{subdomain}/security/roles", flash="role_created")
