"""Console pages for invitations: a sub-account's pending invitations (send, withdraw) and
the page the mailed link opens, which registers or, signed in, joins (issue 12)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Query, Request
from starlette.responses import Response

from ostiary.access.permissions import Permission
from ostiary.api.deps import context, deliver_after_response
from ostiary.console.guard import authorized, page, problem, signed_in
from ostiary.console.web import check_csrf, redirect, render, viewer
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import InvalidInput, OstiaryError
from ostiary.groups import invitations
from ostiary.identity.models import User
from ostiary.tenancy.models import MemberRole

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
Field = Annotated[str, Form(max_length=2000)]
Choices = Annotated[list[str], Form(max_length=10, default_factory=list)]
Token = Annotated[str, Query(max_length=200)]


def _url(subdomain: str) -> str:
    return f"/console/subaccounts/{subdomain}/invitations"


@router.get("/subaccounts/{subdomain}/invitations")
def pending(request: Request, ctx: Ctx, subdomain: str) -> Response:
    """Pending invitations, and the form to invite an e-mail address."""
    seen = signed_in(request, ctx)
    try:
        with authorized(ctx, seen, subdomain, Permission.members_read) as here:
            rows = invitations.pending(here.session, ctx, subaccount=here.subaccount)
            writable = here.may(Permission.members_write)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return page(
        request,
        ctx,
        seen,
        "subaccounts/invitations.html",
        subaccount=here.subaccount,
        rows=rows,
        writable=writable,
        member_roles=[r.value for r in MemberRole],
        section="members",
    )


@router.post("/subaccounts/{subdomain}/invitations")
def change(
    request: Request,
    ctx: Ctx,
    tasks: BackgroundTasks,
    subdomain: str,
    roles: Choices,
    email: Field = "",
    invitation_id: Field = "",
    action: Field = "send",
    csrf_token: Field = "",
) -> Response:
    """Send an invitation, or withdraw one."""
    seen = signed_in(request, ctx)
    mail_ids: list[int] = []
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.members_write, write=True) as here:
            if action == "withdraw":
                invitations.withdraw(
                    here.session,
                    ctx,
                    actor=here.actor,
                    subaccount=here.subaccount,
                    invitation_id=invitation_id,
                )
            else:
                sent = invitations.invite(
                    here.session,
                    ctx,
                    actor=here.actor,
                    subaccount=here.subaccount,
                    email=email,
                    roles=roles,
                )
                mail_ids.append(sent.mail_id)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    deliver_after_response(tasks, ctx, mail_ids)
    flash = "invitation_withdrawn" if action == "withdraw" else "invitation_sent"
    return redirect(ctx, _url(subdomain), flash=flash)


@router.get("/invitations/accept")
def accept_form(request: Request, ctx: Ctx, token: Token = "") -> Response:
    """What the invitation offers; signed in: a Join button, else a registration form."""
    seen = viewer(request, ctx)
    try:
        with transaction(ctx.read_sessions) as session:
            invitation, subaccount = invitations.peek(session, ctx, token=token)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return render(
        request,
        ctx,
        seen,
        "invitations/accept.html",
        invitation=invitation,
        subaccount=subaccount,
        token=token,
    )


@router.post("/invitations/accept")
def accept(
    request: Request,
    ctx: Ctx,
    token: Field = "",
    given_name: Field = "",
    family_name: Field = "",
    password: Field = "",
    csrf_token: Field = "",
) -> Response:
    """Join as the signed-in person, or register the invited address and join."""
    seen = viewer(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with transaction(ctx.sessions) as session:
            _, subaccount = invitations.peek(session, ctx, token=token)
            subdomain = subaccount.subdomain
            if seen.user is not None:
                user = session.get(User, seen.user.id)
                assert user is not None
                invitations.accept(session, ctx, token=token, user=user)
            else:
                if not given_name.strip():
                    raise InvalidInput("enter your given name")
                invitations.register_and_accept(
                    session,
                    ctx,
                    token=token,
                    given_name=given_name,
                    family_name=family_name,
                    password=password,
                )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    if seen.user is not None:
        return redirect(ctx, f"/console/subaccounts/{subdomain}", flash="invitation_accepted")
    return redirect(ctx, "/console/signin", flash="invitation_accepted")
