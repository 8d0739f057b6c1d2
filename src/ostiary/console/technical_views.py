"""Console pages for technical users: mine, new, reset, transfer (contract C3), and a
sub-account's inventory (contract C5). Generated passwords appear once, in the POST answer."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from ostiary.access.permissions import Permission
from ostiary.api.deps import authorize, context
from ostiary.certificates import service as certificate_service
from ostiary.console.guard import authorized, page, principal, problem, signed_in
from ostiary.console.web import Viewer, check_csrf, redirect, render
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import OstiaryError, PermissionDenied
from ostiary.groups import ownership
from ostiary.identity import service as identity
from ostiary.identity import technical
from ostiary.identity.models import User, UserKind
from ostiary.identity.technical import IssuedSecret
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Subaccount

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
Field = Annotated[str, Form(max_length=2000)]
Search = Annotated[str, Query(max_length=100)]
PAGE_SIZE = 50


def _mine_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    *,
    failed: OstiaryError | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    assert seen.user is not None
    with transaction(ctx.read_sessions) as session:
        owned = technical.owned_by(session, owner=seen.user)
        homes = tenancy.list_visible(session, user=seen.user)
    return page(
        request,
        ctx,
        seen,
        "technical_users/mine.html",
        failed=failed,
        owned=owned,
        homes=homes,
        form=form or {"display_name": "", "description": "", "subdomain": ""},
    )


@router.get("/technical-users")
def mine(request: Request, ctx: Ctx) -> Response:
    """The technical users I own, and the form for a new one (no mailbox needed, C3)."""
    seen = signed_in(request, ctx)
    return _mine_page(request, ctx, seen)


def _secret_page(
    request: Request, ctx: AppContext, seen: Viewer, issued: IssuedSecret, *, created: bool
) -> Response:
    # Rendered straight into the POST answer (no-store): never in a cookie, URL or log.
    return render(
        request,
        ctx,
        seen,
        "technical_users/secret.html",
        issued_user=issued.user,
        secret=issued.secret,
        created=created,
    )


@router.post("/technical-users")
def create(
    request: Request,
    ctx: Ctx,
    csrf_token: Field = "",
    display_name: Field = "",
    description: Field = "",
    subdomain: Field = "",
) -> Response:
    """Create a technical user owned by me; its password is shown on this answer only."""
    seen = signed_in(request, ctx)
    form = {"display_name": display_name, "description": description, "subdomain": subdomain}
    try:
        check_csrf(seen, csrf_token)
        with transaction(ctx.sessions) as session:
            home = None
            if subdomain.strip():
                home, _ = authorize(
                    session,
                    principal=principal(seen),
                    subdomain=subdomain.strip(),
                    permission=Permission.technical_users_write,
                )
            issued = technical.create(
                session,
                ctx,
                creator=identity.get_user(session, user_id=principal(seen).user_id),
                display_name=display_name,
                description=description.strip(),
                home=home,
            )
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        return _mine_page(request, ctx, seen, failed=exc, form=form)
    return _secret_page(request, ctx, seen, issued, created=True)


def _managed(session: Session, seen: Viewer, user_id: str) -> tuple[User, User]:
    """The acting user and the technical user they may manage, or ``PermissionDenied``."""
    actor = identity.get_user(session, user_id=principal(seen).user_id)
    user = identity.get_user(session, user_id=user_id)
    if user.kind is not UserKind.technical or not technical.may_manage(
        session, actor=actor, user=user
    ):
        raise PermissionDenied(
            f"only the owner or an administrator may manage technical user {user.user_id}",
            reason="not owner or administrator",
            actor=actor.user_id,
        )
    return actor, user


def _detail_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    user_id: str,
    *,
    failed: OstiaryError | None = None,
) -> Response:
    try:
        with transaction(ctx.read_sessions) as session:
            _, user = _managed(session, seen, user_id)
            owner = session.get(User, user.owner_id) if user.owner_id else None
            owner_group = ownership.owner_group(session, user=user)
            home = (
                session.get(Subaccount, user.home_subaccount_id)
                if user.home_subaccount_id
                else None
            )
            places = sorted(
                s.subdomain
                for s in (
                    session.get(Subaccount, sub_id)
                    for sub_id in technical.subaccounts_of(session, user=user)
                )
                if s is not None
            )
            # The admin API's GET /technical-users/{id}/certificates, under the same check.
            certificates = certificate_service.certificates_of_user(session, user=user)
            now = ctx.clock.now()
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return page(
        request,
        ctx,
        seen,
        "technical_users/detail.html",
        failed=failed,
        subject=user,
        owner=owner,
        owner_group=owner_group,
        home=home,
        places=places,
        certificates=certificates,
        now=now,
    )


@router.get("/technical-users/{user_id}")
def detail(request: Request, ctx: Ctx, user_id: str) -> Response:
    """One technical user, with Reset password and Transfer ownership."""
    seen = signed_in(request, ctx)
    return _detail_page(request, ctx, seen, user_id)


@router.post("/technical-users/{user_id}/password")
def reset_password(request: Request, ctx: Ctx, user_id: str, csrf_token: Field = "") -> Response:
    """Replace the password; the new one is shown once, the old one stops working at once."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with transaction(ctx.sessions) as session:
            actor, user = _managed(session, seen, user_id)
            issued = technical.reset_secret(session, ctx, actor=actor, user=user)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return _secret_page(request, ctx, seen, issued, created=False)


@router.post("/technical-users/{user_id}/owner")
def transfer(
    request: Request, ctx: Ctx, user_id: str, csrf_token: Field = "", owner_user_id: Field = ""
) -> Response:
    """Hand the technical user to another person."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with transaction(ctx.sessions) as session:
            actor, user = _managed(session, seen, user_id)
            owner = identity.get_user(session, user_id=owner_user_id)
            technical.transfer(session, ctx, actor=actor, user=user, owner=owner)
            still = technical.may_manage(session, actor=actor, user=user)
            target = user.user_id
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        return _detail_page(request, ctx, seen, user_id, failed=exc)
    # A former owner who is no administrator may no longer open the technical user.
    url = f"/console/technical-users/{quote(target)}" if still else "/console/technical-users"
    return redirect(ctx, url, flash="owner_changed")


@router.get("/subaccounts/{subdomain}/technical-users")
def inventory(
    request: Request, ctx: Ctx, subdomain: str, search: Search = "", after: Search = ""
) -> Response:
    """Every technical user of the sub-account with owner, credentials and roles (C5)."""
    seen = signed_in(request, ctx)
    try:
        with authorized(ctx, seen, subdomain, Permission.technical_users_read) as here:
            rows = technical.inventory(
                here.session,
                subaccount=here.subaccount,
                search=search.strip(),
                limit=PAGE_SIZE + 1,
                after=after or None,
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render(
        request,
        ctx,
        seen,
        "subaccounts/technical_users.html",
        subaccount=here.subaccount,
        rows=rows,
        search=search,
        next_after=rows[-1].user.user_id if more else None,
        section="technical_users",
    )
