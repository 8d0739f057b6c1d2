"""Console plumbing: templates, the signed-in user, CSRF tokens and flash messages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from ostiary.api.authn import SESSION_COOKIE, client_address
from ostiary.context import AppContext
from ostiary.crypto import constant_time_equals, generate_secret
from ostiary.db import transaction
from ostiary.errors import PermissionDenied
from ostiary.gate import authenticators
from ostiary.gate.admission import Admitted, UseConsole, admit
from ostiary.gate.principal import Principal
from ostiary.identity import sessions
from ostiary.identity.models import User

ANON_CSRF_COOKIE = "ostiary_csrf"
FLASH_COOKIE = "ostiary_flash"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

#: Flash messages by code; only codes travel in the cookie, so no text can be injected.
FLASHES = {
    "registered": ("info", "Check your mailbox: we sent you a link to activate your account."),
    "activated": ("success", "Your account is active. Sign in to continue."),
    "signed_out": ("info", "You are signed out."),
    "password_changed": ("success", "Your password was changed."),
    "reset_sent": ("info", "If the address belongs to an account, a reset link is on its way."),
    "reset_done": ("success", "Your password was reset. Sign in with the new one."),
    "must_change": ("warning", "Your password has expired. Choose a new one to continue."),
    "subaccount_created": ("success", "The sub-account was created. You are its Administrator."),
    "member_added": ("success", "The member was added."),
    "member_changed": ("success", "The member was changed."),
    "member_removed": ("success", "The member was removed, with their role collections here."),
    "collection_created": ("success", "The role collection was created."),
    "role_created": ("success", "The role was created."),
    "assignments_saved": ("success", "The role collections were saved."),
    "owner_changed": ("success", "Ownership was transferred."),
    "flow_created": ("success", "The flow was created. Senders need its required role."),
    "flow_changed": ("success", "The flow was saved."),
    "flow_enabled": ("success", "The flow is enabled and accepts messages."),
    "flow_disabled": ("warning", "The flow is disabled: callers get 403 until it is enabled."),
    "flow_deleted": ("success", "The flow was deleted. Its messages stay in the log."),
    "oauth_secret_retired": ("success", "The secret was retired: it no longer gets tokens."),
    "oauth_client_disabled": (
        "warning",
        "The OAuth client is disabled: it gets no tokens and its live tokens stop working.",
    ),
    "oauth_client_enabled": ("success", "The OAuth client is enabled and can get tokens again."),
    "oauth_client_deleted": ("success", "The OAuth client was deleted with its secrets."),
    "ca_rotated": (
        "success",
        "A new CA signs certificates from now on. The old one is trusted until the last "
        "certificate it issued expires.",
    ),
    "certificate_issued": (
        "success",
        "The certificate was issued. Download it with its CA chain from its row.",
    ),
    "certificate_pinned": ("success", "The external certificate is pinned by its fingerprint."),
    "certificate_revoked": (
        "warning",
        "The certificate is revoked: it is refused within a second and listed in the CRL.",
    ),
    "certificate_revoked_already": ("info", "The certificate was revoked already."),
    "trusted_ca_added": ("success", "The CA is trusted. Add mapping rules for its subjects."),
    "trusted_ca_deleted": (
        "success",
        "The CA is no longer trusted; its mapping rules and mapped certificates were removed.",
    ),
    "mapping_rule_added": ("success", "The mapping rule was added."),
    "mapping_rule_deleted": ("success", "The mapping rule was removed."),
    "group_created": ("success", "The group was created. Add its members."),
    "group_member_added": ("success", "The member was added to the group."),
    "group_member_removed": (
        "success",
        "The member left the group; what the group gave them ends within a second.",
    ),
    "invitation_sent": ("success", "The invitation is on its way; its link works once."),
    "invitation_withdrawn": ("success", "The invitation was withdrawn; its link no longer works."),
    "invitation_accepted": ("success", "Welcome: you are now a member of the sub-account."),
}


def human_size(count: int) -> str:
    """A byte count as people read it: ``512 B``, ``3.2 KiB``, ``10 MiB``."""
    size = float(count)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1024
    return f"{count} B"  # unreachable: MiB is the last unit


templates.env.filters["size"] = human_size


@dataclass
class Viewer:
    """Who looks at a console page: the signed-in user (if any) and the page's CSRF token."""

    user: User | None
    csrf_token: str
    session_hash: str | None
    must_change_password: bool
    new_anon_token: str | None
    #: The signed-in user as the gate admitted them.
    principal: Principal | None = None


def viewer(request: Request, ctx: AppContext) -> Viewer:
    """Resolve the session cookie; anonymous visitors get a double-submit CSRF cookie."""
    secret = request.cookies.get(SESSION_COOKIE, "")
    if secret:
        with transaction(ctx.sessions) as session:
            signed_in = sessions.resolve(session, ctx, secret=secret)
            if signed_in is not None and sessions.needs_touch(ctx, signed_in):
                sessions.touch(
                    session,
                    ctx,
                    token_hash=signed_in.token_hash,
                    address=client_address(request),
                    user_agent=request.headers.get("user-agent", ""),
                )
        principal = _admitted(ctx, signed_in.user.user_id) if signed_in is not None else None
        if signed_in is not None and principal is not None:
            return Viewer(
                signed_in.user,
                signed_in.csrf_token,
                signed_in.token_hash,
                signed_in.must_change_password,
                None,
                principal,
            )
    anon = request.cookies.get(ANON_CSRF_COOKIE, "")
    if len(anon) < 20 or len(anon) > 100:
        fresh = generate_secret(24)
        return Viewer(None, fresh, None, False, fresh)
    return Viewer(None, anon, None, False, None)


def _admitted(ctx: AppContext, user_id: str) -> Principal | None:
    """The session's principal, if the gate still lets its user into the console."""
    snapshot = ctx.grants.get()
    principal = authenticators.console_session(snapshot, user_id)
    if isinstance(principal, Principal) and isinstance(
        admit(snapshot, principal, UseConsole()), Admitted
    ):
        return principal
    return None


def check_csrf(seen: Viewer, submitted: str) -> None:
    """Refuse a form whose CSRF token does not match the viewer's."""
    if seen.new_anon_token is not None or not constant_time_equals(submitted, seen.csrf_token):
        raise PermissionDenied("the form expired or was not sent from this site; reload and retry")


def secure(ctx: AppContext, scope: Scope) -> bool:
    """Whether cookies get the ``Secure`` flag: the public URL is https, or this request
    came over https (``X-Forwarded-Proto: https`` from a trusted proxy counts)."""
    return ctx.settings.secure_cookies or scope.get("scheme") == "https"


def render(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    template: str,
    *,
    status: int = 200,
    **values: Any,
) -> Response:
    """Render a page with the layout's shared values, and hand out cookies it needs."""
    flash_code = request.cookies.get(FLASH_COOKIE, "")
    response: HTMLResponse = templates.TemplateResponse(
        request,
        template,
        {
            "viewer": seen,
            "user": seen.user,
            "csrf_token": seen.csrf_token,
            "flash": FLASHES.get(flash_code),
            "development": ctx.development,
            **values,
        },
        status_code=status,
    )
    if flash_code:
        response.delete_cookie(FLASH_COOKIE, path="/console")
    if seen.new_anon_token:
        response.set_cookie(
            ANON_CSRF_COOKIE,
            seen.new_anon_token,
            httponly=True,
            samesite="lax",
            secure=secure(ctx, request.scope),
            path="/console",
        )
    _harden(response)
    return response


def redirect(ctx: AppContext, url: str, *, flash: str | None = None) -> RedirectResponse:
    """A 303 redirect, optionally carrying a flash message code."""
    response = _Redirect(url, ctx=ctx, flash=flash)
    _harden(response)
    return response


class _Redirect(RedirectResponse):
    """A 303 whose flash cookie is set when it is sent, because only then is the request's
    scheme known (``redirect`` has no request, and its callers are many)."""

    def __init__(self, url: str, *, ctx: AppContext, flash: str | None) -> None:
        super().__init__(url, status_code=303)
        self._ctx = ctx
        self._flash = flash

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._flash:
            self.set_cookie(
                FLASH_COOKIE,
                self._flash,
                httponly=True,
                samesite="lax",
                secure=secure(self._ctx, scope),
                path="/console",
                max_age=60,
            )
        await super().__call__(scope, receive, send)


def _harden(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
    )
