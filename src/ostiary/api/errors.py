"""The one place where errors become HTTP responses: ``{error, detail}`` JSON.

The database being unreachable is answered 503 ``store_unavailable`` with ``Retry-After``
on every route (console pages get a small HTML page), never 500: a 500 goes through
Starlette's last-resort handler, which re-raises, and uvicorn then drops the keep-alive
connection. Which driver errors mean "the store" is ``ostiary.db.store_wide``, the same
test the group-commit writer uses.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.db import store_wide, transaction
from ostiary.errors import (
    AuthenticationFailed,
    OstiaryError,
    PermissionDenied,
    SoleOwner,
    Throttled,
)

log = logging.getLogger("ostiary.api")

#: The challenge sent with every 401 of the admin API.
BASIC_CHALLENGE = 'Basic realm="ostiary", charset="UTF-8"'
BEARER_CHALLENGE = 'Bearer realm="ostiary", error="invalid_token"'
#: Seconds a client should wait after a 503 (the runtime's 503 says the same).
STORE_RETRY_AFTER = "1"
#: The console's page for an unreachable store: plain HTML, so showing it needs neither
#: the database (the signed-in user) nor a template that might.
_UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ostiary is unavailable</title></head>
<body><main><h1>Temporarily unavailable</h1>
<p>Ostiary cannot reach its database right now. Nothing was changed; try again in a moment.</p>
</main></body></html>
"""


def error_response(
    status: int,
    error: str,
    detail: Any,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """The JSON error body every endpoint answers with (``extra``: fields an error adds)."""
    return JSONResponse(
        {"error": error, "detail": detail, **(extra or {})}, status_code=status, headers=headers
    )


def _describe_validation(exc: RequestValidationError) -> list[dict[str, Any]]:
    described = []
    for err in exc.errors():
        described.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return described


async def _ostiary_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OstiaryError)
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationFailed):
        headers["WWW-Authenticate"] = (
            BEARER_CHALLENGE if exc.reason.startswith("bearer:") else BASIC_CHALLENGE
        )
        log.info(
            "authentication failed on %s: %s", request.url.path, exc.reason or "no credentials"
        )
    if isinstance(exc, Throttled):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, PermissionDenied) and exc.reason and exc.actor:
        # The failed transaction has rolled back by now; the denial gets its own.
        await anyio.to_thread.run_sync(audit_denial, request, exc)
    extra = {"technical_users": exc.technical_users} if isinstance(exc, SoleOwner) else None
    return error_response(exc.status_code, exc.code, exc.detail, headers, extra)


def audit_denial(request: Request, exc: PermissionDenied) -> None:
    """Record a refused request in its own transaction (the failed one has rolled back).

    Shared by the admin API's error handler and the console's problem page."""
    ctx = request.app.state.ctx
    with transaction(ctx.sessions) as session:
        record(
            session,
            clock=ctx.clock,
            actor=exc.actor or "anonymous",
            action=AuditAction.access_denied,
            target=f"{request.method} {request.url.path}",
            subdomain=exc.subdomain,
            reason=exc.reason,
        )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_request", _describe_validation(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        415: "unsupported_media_type",
        400: "invalid_request",
    }
    return error_response(
        exc.status_code, codes.get(exc.status_code, "error"), exc.detail, dict(exc.headers or {})
    )


async def _data_error(request: Request, exc: Exception) -> Response:
    # The database refused a value the request carried (a NUL character in a PostgreSQL text
    # column, a text longer than its column): the client's input is at fault, not the server.
    log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc)
    return error_response(
        400, "invalid_request", "a value in the request cannot be stored (a NUL character?)"
    )


def store_unavailable(request: Request) -> Response:
    """503 for a request that could not be served because the store cannot be reached."""
    headers = {"Retry-After": STORE_RETRY_AFTER, "Cache-Control": "no-store"}
    if request.url.path.startswith("/console"):
        headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
        return HTMLResponse(_UNAVAILABLE_PAGE, status_code=503, headers=headers)
    return error_response(
        503, "store_unavailable", "the database cannot be reached; try again later", headers
    )


async def _store_error(request: Request, exc: Exception) -> Response:
    if not store_wide(exc):
        return await _unexpected(request, exc)
    log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
    return store_unavailable(request)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "an unexpected error occurred")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(OstiaryError, _ostiary_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _data_error)
    # OperationalError, InterfaceError and the rest of the driver's errors, and a pool
    # without a free connection; the handlers run for the most specific class raised.
    app.add_exception_handler(DBAPIError, _store_error)
    app.add_exception_handler(PoolTimeoutError, _store_error)
    app.add_exception_handler(Exception, _unexpected)
