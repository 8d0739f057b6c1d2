"""Console pages for the integration runtime: a sub-account's flows, its message processing
log, and the access explanation on the flow and technical-user pages (contract C4, C5)."""

from __future__ import annotations

import math
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from ostiary.access.permissions import Permission
from ostiary.access.service import role_names
from ostiary.api.deps import authorize, context
from ostiary.console import message_views
from ostiary.console.guard import authorized, page, principal, problem, signed_in
from ostiary.console.web import Viewer, check_csrf, redirect, render
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import InvalidInput, OstiaryError, PermissionDenied
from ostiary.gate.admission import explain
from ostiary.identity import service as identity
from ostiary.runtime import flows
from ostiary.runtime.models import (
    DEFAULT_MAX_BYTES,
    DEFAULT_ROLE,
    AuthMethod,
    FlowMode,
)

router = APIRouter(prefix="/console", include_in_schema=False)
# The MPL pages live in their own module; they ride on this router so the app adds one.
router.include_router(message_views.router)
Ctx = Annotated[AppContext, Depends(context)]
Field = Annotated[str, Form(max_length=2000)]
Choices = Annotated[list[str], Form(max_length=10, default_factory=list)]
Filter = Annotated[str, Query(max_length=200)]
MIB = 1024 * 1024
#: The sender authentication methods with the words the form shows next to them.
AUTH_LABELS = {
    AuthMethod.basic.value: "HTTP Basic (user ID or e-mail and password)",
    AuthMethod.oauth.value: "OAuth 2.0 client credentials (bearer token)",
    AuthMethod.certificate.value: "X.509 client certificate",
}
FLOW_ACTIONS = {"save", "enable", "disable", "delete"}


def _flows_url(subdomain: str, path: str | None = None) -> str:
    base = f"/console/subaccounts/{quote(subdomain)}/flows"
    return f"{base}/{quote(path)}" if path else base


def _number(value: str, *, label: str) -> float:
    try:
        number = float(value.strip().replace(",", "."))
    except ValueError as exc:
        raise InvalidInput(f"{label} must be a number") from exc
    if not math.isfinite(number):  # "inf" and "nan" parse, but round() fails on them
        raise InvalidInput(f"{label} must be a number")
    return number


def _flow_fields(form: dict[str, Any]) -> dict[str, Any]:
    """The service's keyword arguments from the flow form, or ``InvalidInput``."""
    if form["mode"] not in {m.value for m in FlowMode}:
        raise InvalidInput("choose the mode store or forward")
    return {
        "required_role": form["required_role"].strip() or DEFAULT_ROLE,
        "auth": list(form["auth"]),
        "mode": FlowMode(form["mode"]),
        "receiver_url": form["receiver_url"].strip() or None,
        "timeout_seconds": _number(form["timeout_seconds"], label="the timeout"),
        "max_bytes": round(_number(form["max_mib"], label="the maximum size") * MIB),
        "description": form["description"].strip(),
    }


def _blank_form() -> dict[str, Any]:
    return {
        "path": "",
        "required_role": DEFAULT_ROLE,
        "auth": [AuthMethod.basic.value],
        "mode": FlowMode.store.value,
        "receiver_url": "",
        "timeout_seconds": "30",
        "max_mib": f"{DEFAULT_MAX_BYTES / MIB:g}",
        "description": "",
    }


# ---------------------------------------------------------------- flows


def _flows_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    subdomain: str,
    *,
    failed: OstiaryError | None = None,
    form: dict[str, Any] | None = None,
) -> Response:
    try:
        with authorized(ctx, seen, subdomain, Permission.flows_read) as here:
            listed = flows.list_flows(here.session, subaccount=here.subaccount)
            roles = role_names(here.session, subaccount=here.subaccount)
            writable = here.may(Permission.flows_write)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return page(
        request,
        ctx,
        seen,
        "subaccounts/flows.html",
        failed=failed,
        subaccount=here.subaccount,
        flows=listed,
        roles=roles,
        auth_labels=AUTH_LABELS,
        writable=writable,
        form=form or _blank_form(),
        section="flows",
    )


@router.get("/subaccounts/{subdomain}/flows")
def flow_list(request: Request, ctx: Ctx, subdomain: str) -> Response:
    """The flows of a sub-account, and (for flows_write holders) the form for a new one."""
    seen = signed_in(request, ctx)
    return _flows_page(request, ctx, seen, subdomain)


@router.post("/subaccounts/{subdomain}/flows")
def create_flow(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    auth: Choices,
    csrf_token: Field = "",
    path: Field = "",
    required_role: Field = DEFAULT_ROLE,
    mode: Field = "store",
    receiver_url: Field = "",
    timeout_seconds: Field = "30",
    max_mib: Field = "10",
    description: Field = "",
) -> Response:
    """Create a flow at ``/t/{subdomain}/http/{path}``."""
    seen = signed_in(request, ctx)
    form: dict[str, Any] = {
        "path": path,
        "required_role": required_role,
        "auth": auth,
        "mode": mode,
        "receiver_url": receiver_url,
        "timeout_seconds": timeout_seconds,
        "max_mib": max_mib,
        "description": description,
    }
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.flows_write, write=True) as here:
            flow = flows.create(
                here.session,
                clock=ctx.clock,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                path=path.strip(),
                **_flow_fields(form),
            )
            created = flow.path
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        return _flows_page(request, ctx, seen, subdomain, failed=exc, form=form)
    return redirect(ctx, _flows_url(subdomain, created), flash="flow_created")


def _flow_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    subdomain: str,
    path: str,
    *,
    user_id: str = "",
    failed: OstiaryError | None = None,
) -> Response:
    try:
        with authorized(ctx, seen, subdomain, Permission.flows_read) as here:
            flow = flows.get(here.session, subaccount=here.subaccount, path=path)
            roles = role_names(here.session, subaccount=here.subaccount)
            writable = here.may(Permission.flows_write)
            explainable = here.may(Permission.assignments_read)
            explanation = None
            if user_id.strip():
                authorize(
                    here.session,
                    principal=principal(seen),
                    subdomain=subdomain,
                    permission=Permission.assignments_read,
                )
                explanation = explain(
                    ctx.grants.refresh(),
                    user_id=user_id,
                    subdomain=subdomain,
                    path=flow.path,
                    now=ctx.clock.now(),
                )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    form = {
        "required_role": flow.required_role,
        "auth": list(flow.auth),
        "mode": flow.mode.value,
        "receiver_url": flow.receiver_url or "",
        "timeout_seconds": f"{flow.timeout_seconds:g}",
        "max_mib": f"{flow.max_bytes / MIB:g}",
        "description": flow.description,
    }
    return page(
        request,
        ctx,
        seen,
        "subaccounts/flow.html",
        failed=failed,
        subaccount=here.subaccount,
        flow=flow,
        endpoint=f"{ctx.settings.public_url}/t/{here.subaccount.subdomain}/http/{flow.path}",
        roles=roles,
        auth_labels=AUTH_LABELS,
        writable=writable,
        explainable=explainable,
        explanation=explanation,
        explained_user=user_id.strip().upper(),
        form=form,
        section="flows",
    )


@router.get("/subaccounts/{subdomain}/flows/{path:path}")
def flow_detail(
    request: Request, ctx: Ctx, subdomain: str, path: str, user_id: Filter = ""
) -> Response:
    """One flow: settings, enable/disable, delete, and why a given user may call it."""
    seen = signed_in(request, ctx)
    return _flow_page(request, ctx, seen, subdomain, path, user_id=user_id)


@router.post("/subaccounts/{subdomain}/flows/{path:path}")
def change_flow(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    path: str,
    auth: Choices,
    csrf_token: Field = "",
    action: Field = "save",
    required_role: Field = DEFAULT_ROLE,
    mode: Field = "store",
    receiver_url: Field = "",
    timeout_seconds: Field = "30",
    max_mib: Field = "10",
    description: Field = "",
) -> Response:
    """Save, enable, disable or delete a flow (one URL: a flow path may end in any word)."""
    seen = signed_in(request, ctx)
    form = {
        "required_role": required_role,
        "auth": auth,
        "mode": mode,
        "receiver_url": receiver_url,
        "timeout_seconds": timeout_seconds,
        "max_mib": max_mib,
        "description": description,
    }
    try:
        check_csrf(seen, csrf_token)
        if action not in FLOW_ACTIONS:
            raise InvalidInput(f"unknown action {action!r}")
        with authorized(ctx, seen, subdomain, Permission.flows_write, write=True) as here:
            actor = principal(seen).user_id
            if action == "delete":
                flows.delete(
                    here.session,
                    clock=ctx.clock,
                    actor=actor,
                    subaccount=here.subaccount,
                    path=path,
                )
            else:
                fields = _flow_fields(form) if action == "save" else {"enabled": action == "enable"}
                flows.change(
                    here.session,
                    clock=ctx.clock,
                    actor=actor,
                    subaccount=here.subaccount,
                    path=path,
                    **fields,
                )
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        if exc.status_code == 404:
            return problem(request, ctx, seen, exc)
        return _flow_page(request, ctx, seen, subdomain, path, failed=exc)
    if action == "delete":
        return redirect(ctx, _flows_url(subdomain), flash="flow_deleted")
    flash = {"save": "flow_changed", "enable": "flow_enabled", "disable": "flow_disabled"}
    return redirect(ctx, _flows_url(subdomain, path.strip("/")), flash=flash[action])


# ---------------------------------------------------------------- technical users


@router.get("/technical-users/{user_id}/explain")
def explain_technical_user(
    request: Request, ctx: Ctx, user_id: str, subdomain: Filter = "", flow: Filter = ""
) -> Response:
    """Why a technical user may or may not call a flow of a sub-account."""
    seen = signed_in(request, ctx)
    try:
        if not subdomain.strip() or not flow.strip():
            raise InvalidInput("enter the sub-account and the flow path to explain")
        with transaction(ctx.read_sessions) as session:
            subject = identity.get_user(session, user_id=user_id)
            subaccount, _ = authorize(
                session,
                principal=principal(seen),
                subdomain=subdomain.strip(),
                permission=Permission.assignments_read,
            )
            explanation = explain(
                ctx.grants.refresh(),
                user_id=subject.user_id,
                subdomain=subaccount.subdomain,
                path=flow,
                now=ctx.clock.now(),
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return render(
        request,
        ctx,
        seen,
        "technical_users/explain.html",
        subject=subject,
        subaccount=subaccount,
        flow_path=flow.strip().strip("/"),
        explanation=explanation,
    )
