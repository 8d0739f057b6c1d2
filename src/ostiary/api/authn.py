"""Authentication for the admin API: the gate's authenticators, chosen by the credential
the request carries (Basic, Bearer, or the console session cookie plus CSRF token).

A route states what it accepts by depending on ``authenticated`` (or
``authenticated_allow_expired``, only for changing an expired password). Those depend on
``any_credential``, which declares the three credentials to the OpenAPI document as its
security schemes (``SCHEMES``), so every such operation shows them; ``document_csrf`` adds
the CSRF header a session needs on unsafe methods.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import Depends, Request, Security
from fastapi.openapi.models import APIKey, APIKeyIn, HTTPBase, HTTPBearer, SecurityBase
from fastapi.security.base import SecurityBase as SecurityDependency

from ostiary.access.snapshot import GrantSnapshot
from ostiary.context import AppContext
from ostiary.crypto import constant_time_equals
from ostiary.db import transaction
from ostiary.errors import AuthenticationFailed, PasswordExpired, PermissionDenied
from ostiary.gate import authenticators
from ostiary.gate.client_certs import presented
from ostiary.gate.principal import Method, Principal, Refusal
from ostiary.gate.rfc7617_basic import parse_basic
from ostiary.gate.service import settle
from ostiary.identity import sessions

__all__ = ["CSRF_HEADER", "SESSION_COOKIE", "Principal", "authenticated", "client_address"]

SESSION_COOKIE = "ostiary_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Declared(SecurityDependency):
    """A security scheme for the OpenAPI document only: resolving it reads nothing, because
    ``_credentials`` reads the request itself (one place that decides which credential
    counts)."""

    def __init__(self, name: str, model: SecurityBase) -> None:
        self.scheme_name = name
        self.model = model

    async def __call__(self) -> None:
        """Nothing to resolve (async, so FastAPI runs it inline, not in a thread)."""
        return None


#: The admin API's security schemes (OpenAPI ``components.securitySchemes``), by name.
SCHEMES = {
    "basic": Declared(
        "basic",
        HTTPBase(
            scheme="basic",
            description="User ID or e-mail and password; a technical user's secret too.",
        ),
    ),
    "bearer": Declared(
        "bearer",
        HTTPBearer(
            bearerFormat="JWT",
            description="An access token from `POST /oauth/token` (client credentials).",
        ),
    ),
    "session": Declared(
        "session",
        APIKey(
            **{"in": APIKeyIn.cookie},
            name=SESSION_COOKIE,
            description="The console's session cookie (sign in at /console/signin); "
            f"unsafe methods need `{CSRF_HEADER}` too.",
        ),
    ),
}
CSRF = Declared(
    "csrf",
    APIKey(
        **{"in": APIKeyIn.header},
        name=CSRF_HEADER,
        description="The console session's CSRF token; needed with the session cookie on "
        "POST, PUT, PATCH and DELETE.",
    ),
)


async def any_credential(
    _basic: None = Security(SCHEMES["basic"]),
    _bearer: None = Security(SCHEMES["bearer"]),
    _session: None = Security(SCHEMES["session"]),
) -> None:
    """Dependency that declares the credentials ``_credentials`` accepts, any one of them
    (FastAPI lists each security dependency as an alternative in the document)."""


def document_csrf(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add to ``openapi`` what FastAPI cannot say: on an unsafe method, the session cookie
    counts only with the CSRF header (both in one Security Requirement Object, OpenAPI 3.1)."""
    csrf: dict[str, list[str]] = {CSRF.scheme_name: []}
    for item in openapi.get("paths", {}).values():
        for method, operation in item.items():
            if method.upper() in SAFE_METHODS or not isinstance(operation, dict):
                continue
            security = operation.get("security")
            if not security:
                continue
            operation["security"] = [
                {**requirement, **csrf} if "session" in requirement else requirement
                for requirement in security
            ]
            schemes = openapi.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes[CSRF.scheme_name] = CSRF.model.model_dump(
                mode="json", by_alias=True, exclude_none=True
            )
    return openapi


def client_address(request: Request) -> str:
    """The caller's address (after ``OSTIARY_TRUSTED_PROXIES``), for throttling and logs."""
    return request.client.host if request.client else "unknown"


async def _credentials(
    request: Request, ctx: AppContext, snapshot: GrantSnapshot
) -> Principal | Refusal | None:
    """The principal for the credential the request carries; ``None`` if it carries none."""
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        identifier, secret = parse_basic(header)
        return await authenticators.password(
            ctx, snapshot, identifier=identifier, secret=secret, address=client_address(request)
        )
    if header[:7].lower() == "bearer ":
        return authenticators.bearer(
            ctx,
            snapshot,
            token=header[7:].strip(),
            now=ctx.clock.now(),
            certificate=presented(request.scope),
        )
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    signed_in = await anyio.to_thread.run_sync(
        _resolve_session,
        ctx,
        cookie,
        client_address(request),
        request.headers.get("user-agent", ""),
    )
    if signed_in is None:
        return None
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not constant_time_equals(sent, signed_in.csrf_token):
            raise PermissionDenied("missing or wrong CSRF token (send it in X-CSRF-Token)")
    if signed_in.must_change_password:
        request.state.must_change_password = True
    return authenticators.console_session(snapshot, signed_in.user.user_id)


def _resolve_session(
    ctx: AppContext, secret: str, address: str, user_agent: str
) -> sessions.SignedIn | None:
    with transaction(ctx.read_sessions) as session:
        signed_in = sessions.resolve(session, ctx, secret=secret)
    if signed_in is not None and sessions.needs_touch(ctx, signed_in):
        # A short write of its own, at most once a minute per session (``TOUCH_EVERY``).
        with transaction(ctx.sessions) as session:
            sessions.touch(
                session,
                ctx,
                token_hash=signed_in.token_hash,
                address=address,
                user_agent=user_agent,
            )
    return signed_in


async def _authenticate(request: Request, *, allow_expired: bool) -> Principal:
    ctx: AppContext = request.app.state.ctx
    found = await settle(
        ctx,
        lambda snapshot: _credentials(request, ctx, snapshot),
        target=f"{request.method} {request.url.path}",
        address=client_address(request),
        bearer=request.headers.get("authorization", "")[:7].lower() == "bearer ",
    )
    if found is None:
        raise AuthenticationFailed(reason="no credentials")
    if found.method is not Method.session:  # last use per credential, flushed with the rest
        request.app.state.runtime.last_use.touch_principal(
            found, ctx.clock.now(), client_address(request)
        )
    expired = found.password_expired or getattr(request.state, "must_change_password", False)
    if expired and not allow_expired:
        if found.method is Method.session:
            raise PermissionDenied("the password has expired; change it first")
        raise PasswordExpired(
            "the password has expired; change it with POST /api/v1/me/password or in the console"
        )
    return found


async def authenticated(request: Request, _: None = Depends(any_credential)) -> Principal:
    """Dependency: the authenticated caller (401 otherwise)."""
    return await _authenticate(request, allow_expired=False)


async def authenticated_allow_expired(
    request: Request, _: None = Depends(any_credential)
) -> Principal:
    """Dependency: the caller, even if their password expired (for changing it)."""
    return await _authenticate(request, allow_expired=True)


async def platform_admin(request: Request, _: None = Depends(any_credential)) -> Principal:
    """Dependency: a platform administrator (403 otherwise)."""
    principal = await authenticated(request)
    if not principal.is_platform_admin:
        raise PermissionDenied("only platform administrators may do this")
    return principal
