"""Measured hot paths, answered before the framework's middleware stack.

Every request to a FastAPI application passes about ten layers before its endpoint
(server errors, FastAPI's telemetry and body limit, our metrics and body limit, the
exception handlers, an exit stack, the router and the route's request wrapper), each an
``async`` call with its own ``send`` wrapper. For the token endpoint, where a request's
whole CPU budget is ~0.2 ms, that was ~10 % of it (benchmarks/README.md). ``HotPaths``
looks up ``(method, path)`` in a dict first and, for the few endpoints listed there, calls
the endpoint directly, wrapped only in what they still need: request metrics and the
access log (``ObservabilityMiddleware``) and a last-resort 500 in the API's error shape.
Every other request goes through the full stack, unchanged. A listed endpoint handles its
own errors (the OAuth endpoints answer RFC 6749 errors and a 503 without the store) and
limits its own body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ostiary.ops import Metrics, ObservabilityMiddleware

log = logging.getLogger("ostiary.hot_paths")

Endpoint = Callable[[Request], Awaitable[Response]]


class HotPaths:
    """Answers the listed ``(method, path)`` pairs directly; the rest goes to ``app``."""

    def __init__(
        self, app: ASGIApp, endpoints: Mapping[tuple[str, str], Endpoint], *, metrics: Metrics
    ) -> None:
        self.app = app
        self.endpoints = dict(endpoints)
        self.observed = ObservabilityMiddleware(self._serve, metrics=metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["method"], scope["path"]) in self.endpoints:
            await self.observed(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.endpoints[(scope["method"], scope["path"])]
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception:
            # What ServerErrorMiddleware and api/errors.py would have answered: logged
            # here, and a body without details for the caller.
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            response = JSONResponse(
                {"error": "internal_error", "detail": "an unexpected error occurred"},
                status_code=500,
            )
        await response(scope, receive, send)
