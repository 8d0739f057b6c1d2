"""Console pages under a sub-account's *Security → OAuth clients* (contract C6): clients acting as
technical users, created with a secret shown once, rotated with overlap, retired, disabled and
deleted. They mirror ``ostiary.api.oauth_clients``; a new secret appears only in the answer to
the POST that made it (no-store), never in a cookie, a URL or a log."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from ostiary.access.permissions import Permission
from ostiary.api.deps import context
from ostiary.console.guard import authorized, page, principal, problem, signed_in
from ostiary.console.web import Viewer, check_csrf, redirect, render
from ostiary.context import AppContext
from ostiary.errors import InvalidInput, OstiaryError, PermissionDenied
from ostiary.identity import service as identity
from ostiary.identity import technical
from ostiary.identity.models import User, UserStatus
from ostiary.oauth import clients
from ostiary.oauth.clients import IssuedClientSecret
from ostiary.oauth.models import ClientSecret, ClientStatus, OAuthClient
from ostiary.tenancy.models import Subaccount

router = APIRouter(
    prefix="/console/subaccounts/{subdomain}/security/oauth-clients", include_in_schema=False
)
Ctx = Annotated[AppContext, Depends(context)]
Field = Annotated[str, Form(max_length=2000)]
ACTIONS = {"rotate", "retire", "disable", "enable", "delete"}
#: The flash message code after each action that redirects (rotate shows the new secret).
FLASHES = {
    "retire": "oauth_secret_retired",
    "disable": "oauth_client_disabled",
    "enable": "oauth_client_enabled",
    "delete": "oauth_client_deleted",
}
#: The service's cap (``clients.MAX_OVERLAP``) in the form's unit; checked here too so the
#: number is refused before ``timedelta`` could overflow.
MAX_OVERLAP_HOURS = clients.MAX_OVERLAP.days * 24
#: How many technical users the "New OAuth client" select offers; the user-ID field takes any.
CHOICES = 200


@dataclass(frozen=True)
class ClientRow:
    """One client as the list shows it."""

    client: OAuthClient
    user: User
    active_secrets: int
    expired: bool


def _url(subdomain: str, client_id: str | None = None) -> str:
    base = f"/console/subaccounts/{quote(subdomain)}/security/oauth-clients"
    return f"{base}/{quote(client_id)}" if client_id else base


def _active(secret: ClientSecret, now: datetime) -> bool:
    return secret.expires_at is None or secret.expires_at > now


def _expiry(value: str) -> datetime | None:
    """The client's end from the form's date: 00:00 UTC of that day, or none."""
    if not value.strip():
        return None
    try:
        return datetime.combine(date.fromisoformat(value.strip()), time.min, tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput("the expiry must be a date such as 2030-12-31") from exc


def _overlap(value: str) -> timedelta:
    """How long the current secrets stay valid after a rotation, from the hours field."""
    try:
        hours = float(value.strip().replace(",", "."))
    except ValueError as exc:
        raise InvalidInput("the old secret's validity must be a number of hours") from exc
    if not math.isfinite(hours) or not 0 <= hours <= MAX_OVERLAP_HOURS:
        raise InvalidInput(f"the old secret's validity must be 0 to {MAX_OVERLAP_HOURS} hours")
    return timedelta(hours=hours)


def _acting_user(session: Session, client: OAuthClient) -> User:
    user = session.get(User, client.user_id)
    assert user is not None  # the foreign key cascades
    return user


# ---------------------------------------------------------------- the list and "New"


def _list_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    subdomain: str,
    *,
    failed: OstiaryError | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    now = ctx.clock.now()
    try:
        with authorized(ctx, seen, subdomain, Permission.credentials_read) as here:
            rows = [
                ClientRow(
                    client=c,
                    user=u,
                    active_secrets=sum(
                        _active(s, now) for s in clients.secrets_of(here.session, client=c)
                    ),
                    expired=c.expires_at is not None and c.expires_at <= now,
                )
                for c, u in clients.list_clients(here.session, subaccount=here.subaccount)
            ]
            writable = here.may(Permission.credentials_write)
            choices = (
                [
                    r.user
                    for r in technical.inventory(
                        here.session, subaccount=here.subaccount, limit=CHOICES
                    )
                    if r.user.status is UserStatus.active
                ]
                if writable
                else []
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return page(
        request,
        ctx,
        seen,
        "subaccounts/oauth_clients.html",
        failed=failed,
        subaccount=here.subaccount,
        rows=rows,
        writable=writable,
        choices=choices,
        form=form or {"technical_user": "", "user_id": "", "description": "", "expires_on": ""},
        section="oauth_clients",
    )


@router.get("")
def client_list(request: Request, ctx: Ctx, subdomain: str) -> Response:
    """The sub-account's OAuth clients, and (for credentials_write holders) the form for one."""
    seen = signed_in(request, ctx)
    return _list_page(request, ctx, seen, subdomain)


def _secret_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    subaccount: Subaccount,
    issued: IssuedClientSecret,
    user: User,
    *,
    overlap_until: datetime | None = None,
) -> Response:
    """The new secret, once; after a rotation also until when the older secrets work."""
    # Rendered straight into the POST answer (no-store): never in a cookie, URL or log.
    return render(
        request,
        ctx,
        seen,
        "subaccounts/oauth_clients_secret.html",
        subaccount=subaccount,
        client=issued.client,
        acting=user,
        secret=issued.secret,
        token_endpoint=f"{ctx.settings.public_url}/oauth/token",
        rotated=overlap_until is not None,
        overlap_until=overlap_until,
        section="oauth_clients",
    )


@router.post("")
def create_client(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    csrf_token: Field = "",
    technical_user: Field = "",
    user_id: Field = "",
    description: Field = "",
    expires_on: Field = "",
) -> Response:
    """Create a client acting as a technical user; its secret is on this answer only."""
    seen = signed_in(request, ctx)
    form = {
        "technical_user": technical_user,
        "user_id": user_id,
        "description": description,
        "expires_on": expires_on,
    }
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.credentials_write, write=True) as here:
            # A typed user ID wins over the select: it is the more deliberate of the two.
            chosen = user_id.strip() or technical_user.strip()
            if not chosen:
                raise InvalidInput("choose the technical user the client acts as")
            user = identity.get_user(here.session, user_id=chosen)
            issued = clients.create(
                here.session,
                ctx,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                user=user,
                description=description.strip(),
                expires_at=_expiry(expires_on),
            )
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        return _list_page(request, ctx, seen, subdomain, failed=exc, form=form)
    return _secret_page(request, ctx, seen, here.subaccount, issued, user)


# ---------------------------------------------------------------- one client


def _detail_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    subdomain: str,
    client_id: str,
    *,
    failed: OstiaryError | None = None,
) -> Response:
    now = ctx.clock.now()
    try:
        with authorized(ctx, seen, subdomain, Permission.credentials_read) as here:
            client = clients.get(here.session, subaccount=here.subaccount, client_id=client_id)
            user = _acting_user(here.session, client)
            secrets = [
                (s, _active(s, now)) for s in clients.secrets_of(here.session, client=client)
            ]
            writable = here.may(Permission.credentials_write)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return page(
        request,
        ctx,
        seen,
        "subaccounts/oauth_clients_detail.html",
        failed=failed,
        subaccount=here.subaccount,
        client=client,
        acting=user,
        secrets=secrets,
        active_secrets=sum(active for _, active in secrets),
        expired=client.expires_at is not None and client.expires_at <= now,
        token_endpoint=f"{ctx.settings.public_url}/oauth/token",
        writable=writable,
        section="oauth_clients",
    )


@router.get("/{client_id}")
def client_detail(request: Request, ctx: Ctx, subdomain: str, client_id: str) -> Response:
    """One client: what it acts as, its secrets, and rotate / retire / disable / delete."""
    seen = signed_in(request, ctx)
    return _detail_page(request, ctx, seen, subdomain, client_id)


def _apply(
    session: Session,
    ctx: AppContext,
    *,
    action: str,
    actor: str,
    subaccount: Subaccount,
    client: OAuthClient,
    old_valid_until: datetime | None,
    secret_id: str,
) -> IssuedClientSecret | None:
    """Do one action of the detail page; a rotation returns the new secret to show."""
    if action == "rotate":
        assert old_valid_until is not None, "the caller computes it for a rotation"
        return clients.rotate(
            session,
            ctx,
            actor=actor,
            subaccount=subaccount,
            client=client,
            old_valid_until=old_valid_until,
        )
    if action == "retire":
        try:
            which = uuid.UUID(secret_id.strip())
        except ValueError as exc:
            raise InvalidInput("choose the secret to retire") from exc
        clients.retire(
            session, ctx, actor=actor, subaccount=subaccount, client=client, secret_id=which
        )
    elif action == "delete":
        clients.delete(session, ctx, actor=actor, subaccount=subaccount, client=client)
    else:
        status = ClientStatus.active if action == "enable" else ClientStatus.disabled
        clients.set_status(
            session, ctx, actor=actor, subaccount=subaccount, client=client, status=status
        )
    return None


@router.post("/{client_id}")
def change_client(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    client_id: str,
    csrf_token: Field = "",
    action: Field = "",
    old_valid_hours: Field = "24",
    secret_id: Field = "",
) -> Response:
    """Rotate (the new secret is on this answer only), retire a secret, disable, enable, delete."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        if action not in ACTIONS:
            raise InvalidInput(f"unknown action {action[:40]!r}")
        until = ctx.clock.now() + _overlap(old_valid_hours) if action == "rotate" else None
        with authorized(ctx, seen, subdomain, Permission.credentials_write, write=True) as here:
            client = clients.get(here.session, subaccount=here.subaccount, client_id=client_id)
            user = _acting_user(here.session, client)
            issued = _apply(
                here.session,
                ctx,
                action=action,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                client=client,
                old_valid_until=until,
                secret_id=secret_id,
            )
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        if exc.status_code == 404:
            return problem(request, ctx, seen, exc)
        return _detail_page(request, ctx, seen, subdomain, client_id, failed=exc)
    if issued is not None:
        return _secret_page(request, ctx, seen, here.subaccount, issued, user, overlap_until=until)
    if action == "delete":
        return redirect(ctx, _url(subdomain), flash=FLASHES[action])
    return redirect(ctx, _url(subdomain, client_id), flash=FLASHES[action])
