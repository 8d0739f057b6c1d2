"""Console pages for the identity directory: register, activate, sign in, account settings."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from starlette.responses import Response

from ostiary.access.snapshot import GrantSnapshot
from ostiary.api.authn import SESSION_COOKIE, client_address
from ostiary.api.deps import context, deliver_after_response
from ostiary.console.web import check_csrf, redirect, render, secure, viewer
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import (
    AuthenticationFailed,
    InvalidInput,
    OstiaryError,
    Throttled,
)
from ostiary.gate import authenticators
from ostiary.gate.admission import UseConsole, admit
from ostiary.gate.principal import Principal, Refusal
from ostiary.gate.service import settle
from ostiary.identity import policy as policies
from ostiary.identity import service as identity
from ostiary.identity import sessions
from ostiary.identity.emails import parse_email
from ostiary.identity.models import OneTimeToken, TokenPurpose
from ostiary.mail import service as mail

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
Field = Annotated[str, Form(max_length=2000)]
SIGNIN_FAILED = "The user ID, e-mail or password is not correct, or the account is not active."


@router.get("/register")
def register_form(request: Request, ctx: Ctx) -> Response:
    """The registration form."""
    return render(request, ctx, viewer(request, ctx), "register.html", values={})


@router.post("/register")
def register(
    request: Request,
    ctx: Ctx,
    tasks: BackgroundTasks,
    csrf_token: Field = "",
    email: Field = "",
    given_name: Field = "",
    family_name: Field = "",
    password: Field = "",
) -> Response:
    """Register; the same answer whether or not the e-mail is taken (contract C3)."""
    seen = viewer(request, ctx)
    values = {"email": email, "given_name": given_name, "family_name": family_name}
    try:
        check_csrf(seen, csrf_token)
        email = parse_email(email)
        if not given_name.strip() or not family_name.strip():
            raise InvalidInput("enter your given and family name")
        with transaction(ctx.sessions) as session:
            result = identity.register(
                session,
                ctx,
                email=email,
                given_name=given_name,
                family_name=family_name,
                password=password,
            )
    except OstiaryError as exc:
        return render(
            request,
            ctx,
            seen,
            "register.html",
            status=exc.status_code,
            error=exc.detail,
            values=values,
        )
    deliver_after_response(tasks, ctx, result.mail_ids)
    return redirect(ctx, "/console/signin", flash="registered")


@router.get("/activate")
def activate_form(request: Request, ctx: Ctx, token: str = "") -> Response:
    """The activation landing page; a button activates, so link scanners cannot."""
    seen = viewer(request, ctx)
    problem = None
    with transaction(ctx.sessions) as session:
        record = (
            session.get(OneTimeToken, ctx.token_hasher.hash(token))
            if 0 < len(token) < 200
            else None
        )
        if record is None or record.purpose is not TokenPurpose.activation:
            problem = "This activation link is not valid. Check that you copied all of it."
        elif record.used_at is not None:
            problem = "This activation link was already used. Your account is active: sign in."
        elif record.expires_at <= ctx.clock.now():
            problem = "This activation link has expired. Register again to get a new one."
    return render(
        request,
        ctx,
        seen,
        "activate.html",
        status=400 if problem else 200,
        token=token,
        problem=problem,
    )


@router.post("/activate")
def activate(request: Request, ctx: Ctx, csrf_token: Field = "", token: Field = "") -> Response:
    """Activate the account."""
    seen = viewer(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with transaction(ctx.sessions) as session:
            identity.activate(session, ctx, token=token)
    except OstiaryError as exc:
        return render(
            request,
            ctx,
            seen,
            "activate.html",
            status=exc.status_code,
            token=token,
            problem=exc.detail,
        )
    return redirect(ctx, "/console/signin", flash="activated")


@router.get("/signin")
def signin_form(request: Request, ctx: Ctx) -> Response:
    """The sign-in form."""
    return render(request, ctx, viewer(request, ctx), "signin.html", identifier="")


@router.post("/signin")
async def signin(
    request: Request, ctx: Ctx, csrf_token: Field = "", identifier: Field = "", password: Field = ""
) -> Response:
    """Sign in with user ID or e-mail; expired passwords lead to a forced change."""
    seen = await anyio.to_thread.run_sync(viewer, request, ctx)
    address = client_address(request)
    expired = False
    try:
        check_csrf(seen, csrf_token)
        if not identifier:
            raise AuthenticationFailed(reason="empty form")

        async def attempt(snapshot: GrantSnapshot) -> Principal | Refusal:
            found = await authenticators.password(
                ctx, snapshot, identifier=identifier, secret=password, address=address
            )
            if isinstance(found, Refusal):
                return found
            admitted = admit(snapshot, found, UseConsole())
            return admitted if isinstance(admitted, Refusal) else found

        principal = await settle(ctx, attempt, target="/console/signin", address=address)
        assert principal is not None
        expired = principal.password_expired
        secret = await anyio.to_thread.run_sync(
            _start_session,
            ctx,
            principal,
            expired,
            address,
            request.headers.get("user-agent", ""),
        )
    except (AuthenticationFailed, Throttled) as exc:
        message = SIGNIN_FAILED if isinstance(exc, AuthenticationFailed) else exc.detail
        return render(
            request,
            ctx,
            seen,
            "signin.html",
            status=exc.status_code,
            error=message,
            identifier=identifier,
        )
    except OstiaryError as exc:
        return render(
            request,
            ctx,
            seen,
            "signin.html",
            status=exc.status_code,
            error=exc.detail,
            identifier=identifier,
        )
    target = "/console/account/password" if expired else "/console/"  # the home
    response = redirect(ctx, target, flash="must_change" if expired else None)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        samesite="lax",
        secure=secure(ctx, request.scope),
        path="/",
        max_age=ctx.settings.session_ttl_hours * 3600,
    )
    return response


def _start_session(
    ctx: AppContext, principal: Principal, expired: bool, address: str, user_agent: str
) -> str:
    with transaction(ctx.sessions) as session:
        user = identity.get_user(session, user_id=principal.user_id)
        return sessions.start(
            session,
            ctx,
            user=user,
            must_change_password=expired,
            address=address,
            user_agent=user_agent,
        )


@router.post("/signout")
def signout(request: Request, ctx: Ctx, csrf_token: Field = "") -> Response:
    """Sign out and forget the session."""
    seen = viewer(request, ctx)
    if seen.user is not None:
        check_csrf(seen, csrf_token)
        with transaction(ctx.sessions) as session:
            sessions.end(session, ctx, secret=request.cookies.get(SESSION_COOKIE, ""))
    response = redirect(ctx, "/console/signin", flash="signed_out")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/account")
def account(request: Request, ctx: Ctx) -> Response:
    """Account settings: user ID, name, e-mail, kind, status."""
    seen = viewer(request, ctx)
    if seen.user is None:
        return redirect(ctx, "/console/signin")
    if seen.must_change_password:
        return redirect(ctx, "/console/account/password", flash="must_change")
    with transaction(ctx.read_sessions) as session:
        policy = policies.current_policy(session, kind=seen.user.kind, clock=ctx.clock)
        expires = policies.password_expires_at(seen.user, policy)
    return render(request, ctx, seen, "account.html", password_expires_at=expires)


@router.get("/account/password")
def password_form(request: Request, ctx: Ctx) -> Response:
    """The change-password form."""
    seen = viewer(request, ctx)
    if seen.user is None:
        return redirect(ctx, "/console/signin")
    return render(request, ctx, seen, "password.html")


@router.post("/account/password")
def change_password(
    request: Request,
    ctx: Ctx,
    csrf_token: Field = "",
    current_password: Field = "",
    new_password: Field = "",
    confirm_password: Field = "",
) -> Response:
    """Change one's password; other sessions of the user end."""
    seen = viewer(request, ctx)
    if seen.user is None:
        return redirect(ctx, "/console/signin")
    try:
        check_csrf(seen, csrf_token)
        if new_password != confirm_password:
            raise InvalidInput("the new passwords do not match")
        with transaction(ctx.sessions) as session:
            user = identity.get_user(session, user_id=seen.user.user_id)
            identity.change_password(
                session,
                ctx,
                user=user,
                current_password=current_password,
                new_password=new_password,
                keep_session=seen.session_hash,
            )
            if seen.session_hash:
                sessions.password_changed(session, token_hash=seen.session_hash)
    except OstiaryError as exc:
        return render(request, ctx, seen, "password.html", status=exc.status_code, error=exc.detail)
    return redirect(ctx, "/console/account", flash="password_changed")


@router.get("/password-reset")
def reset_request_form(request: Request, ctx: Ctx) -> Response:
    """Ask for a reset link."""
    return render(request, ctx, viewer(request, ctx), "reset_request.html")


@router.post("/password-reset")
def reset_request(
    request: Request, ctx: Ctx, tasks: BackgroundTasks, csrf_token: Field = "", email: Field = ""
) -> Response:
    """Mail a reset link if the address belongs to a person; never say whether it does."""
    seen = viewer(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with transaction(ctx.sessions) as session:
            mail_ids = identity.request_password_reset(session, ctx, email=email)
    except OstiaryError as exc:
        return render(
            request, ctx, seen, "reset_request.html", status=exc.status_code, error=exc.detail
        )
    deliver_after_response(tasks, ctx, mail_ids)
    return redirect(ctx, "/console/signin", flash="reset_sent")


@router.get("/password-reset/confirm")
def reset_confirm_form(request: Request, ctx: Ctx, token: str = "") -> Response:
    """The form that sets a new password with a reset token."""
    return render(request, ctx, viewer(request, ctx), "reset_confirm.html", token=token)


@router.post("/password-reset/confirm")
def reset_confirm(
    request: Request,
    ctx: Ctx,
    csrf_token: Field = "",
    token: Field = "",
    new_password: Field = "",
    confirm_password: Field = "",
) -> Response:
    """Set the new password and end every session of the user."""
    seen = viewer(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        if new_password != confirm_password:
            raise InvalidInput("the new passwords do not match")
        with transaction(ctx.sessions) as session:
            identity.reset_password(session, ctx, token=token, new_password=new_password)
    except OstiaryError as exc:
        return render(
            request,
            ctx,
            seen,
            "reset_confirm.html",
            status=exc.status_code,
            error=exc.detail,
            token=token,
        )
    return redirect(ctx, "/console/signin", flash="reset_done")


@router.get("/dev/outbox")
def dev_outbox(request: Request, ctx: Ctx) -> Response:
    """Development only: the mails Ostiary would have sent."""
    seen = viewer(request, ctx)
    if not ctx.development:
        return render(
            request,
            ctx,
            seen,
            "error.html",
            status=404,
            message="The dev outbox exists only when OSTIARY_ENV=development.",
        )
    with transaction(ctx.sessions) as session:
        mails = mail.recent(session)
    return render(request, ctx, seen, "outbox.html", mails=mails)
