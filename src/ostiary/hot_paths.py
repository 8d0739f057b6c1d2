"""Measured hot paths, answered before the framework's middleware stack.

Every request to a FastAPI application passes about ten layers before its endpoint
(server errors, FastAPI's telemetry and body limit, our metrics and body limit, the
exception handlers, an exit stack, the router and the route's request wrapper), each an
``async`` call with its own ``send`` wrapper. For the token endpoint, where a request's
whole CPU budget is ~0.2 ms, that was ~10 % of it (benchmarks/README.md). ``HotPaths``
tries its few routes first (Starlette's own matching, so path parameters and methods mean
what they mean in the router) and, on a full match, calls the endpoint directly, wrapped
only in what it still needs: request metrics and the access log
(``ops.RequestLog``) and a last-resort 500 in the API's error shape. Everything
else, a wrong method on a hot path included, goes through the full stack, unchanged. A hot
endpoint handles its own errors (RFC 6749 errors at the token endpoint, 401/403/413/503 at
the runtime, a 503 without the store at both) and limits its own body.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ostiary.ops import Metrics, RequestLog

log = logging.getLogger("ostiary.hot_paths")


class HotPaths:
    """Answers requests that fully match one of ``routes`` directly; the rest goes to ``app``."""

    def __init__(self, app: ASGIApp, routes: Sequence[Route], *, metrics: Metrics) -> None:
        self.app = app
        # Routes without parameters are found by their path first (the token endpoint):
        # trying the runtime's pattern on every token request cost ~2 % of it.
        self.exact = {r.path: r for r in routes if "{" not in r.path}
        self.patterns = tuple(r for r in routes if "{" in r.path)
        # The framework stack's counters and access log, without a ``send`` wrapper: the
        # status is known before sending (``_serve``).
        self.log = RequestLog(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            exact = self.exact.get(scope["path"])
            for route in (exact,) if exact is not None else self.patterns:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    await self._serve(route, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500
        try:
            try:
                response: Response = await route.endpoint(Request(scope, receive))
            except Exception:
                # What ServerErrorMiddleware and api/errors.py would have answered: logged
                # here, and a body without details for the caller.
                log.exception("unhandled error on %s %s", scope["method"], scope["path"])
                response = JSONResponse(
                    {"error": "internal_error", "detail": "an unexpected error occurred"},
                    status_code=500,
                )
            status = response.status_code  # known before sending: no ``send`` wrapper
            await response(scope, receive, send)
        finally:
            self.log.observe(scope, status, started)
