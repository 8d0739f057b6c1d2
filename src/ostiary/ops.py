"""Operations endpoints (/healthz, /readyz, /metrics) and the request metrics middleware."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy import text
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ostiary.context import AppContext

access_log = logging.getLogger("ostiary.access")


class Metrics:
    """The Prometheus collectors of one process (each app gets its own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ostiary_http_requests_total",
            "HTTP requests answered",
            ["method", "area", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ostiary_http_request_seconds",
            "Time to answer an HTTP request",
            ["area"],
            registry=self.registry,
        )


def _area(path: str) -> str:
    """A low-cardinality label for a path: its first segment."""
    first = path.strip("/").split("/", 1)[0]
    return (
        first
        if first
        in {"api", "console", "t", "oauth", "scim", "healthz", "readyz", "metrics", "static"}
        else "other"
    )


class RequestLog:
    """Counts and times answered requests, and writes the access log line without query
    strings (activation and reset links carry single-use secrets there)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        # The labelled children, looked up once: ``labels()`` costs a few µs per request,
        # a measurable part of the token endpoint's (benchmarks/README.md).
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[str, Any] = {}

    def observe(self, scope: Scope, status: int, started: float) -> None:
        """One answered request (``started``: its ``perf_counter``)."""
        elapsed = time.perf_counter() - started
        area = _area(scope["path"])
        key = (scope["method"], area, status)
        counter = self._counted.get(key)
        if counter is None:
            counter = self.metrics.requests.labels(key[0], area, str(status))
            if len(self._counted) < 1000:  # methods are the client's to choose
                self._counted[key] = counter
        counter.inc()
        timer = self._timed.get(area)
        if timer is None:
            timer = self._timed[area] = self.metrics.latency.labels(area)
        timer.observe(elapsed)
        access_log.info("%s %s %s %.1fms", scope["method"], scope["path"], status, elapsed * 1000)


class ObservabilityMiddleware:
    """``RequestLog`` for every request through the framework's stack."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.log = RequestLog(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.log.observe(scope, status, started)


class BodyLimitMiddleware:
    """Refuses request bodies above a size with 413 before the application reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                    await self._refuse(scope, receive, send, 400, "invalid Content-Length")
                    return
                if too_big:
                    await self._refuse(
                        scope, receive, send, 413, f"the body exceeds {self.max_bytes} bytes"
                    )
                    return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._refuse(
                scope, receive, send, 413, f"the body exceeds {self.max_bytes} bytes"
            )

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        code = "payload_too_large" if status == 413 else "invalid_request"
        response = JSONResponse(
            {"error": code, "detail": detail}, status_code=status, headers={"Connection": "close"}
        )
        await response(scope, receive, send)


class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body without Content-Length grows past the limit.

    An ``HTTPException`` because FastAPI turns any other error raised while it reads the
    body into a generic 400; this one it re-raises, and the error handler answers 413.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the body exceeds {max_bytes} bytes")


def routes(
    ctx: AppContext, metrics: Metrics, *, writer_alive: Callable[[], bool] = lambda: True
) -> list[Route]:
    """The operations routes, as plain Starlette routes (no auth, no OpenAPI).

    ``/readyz`` is ready when the database answers and this process's store writer runs
    (without it every store-mode call would get 503)."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def readyz(_: Request) -> Response:
        try:
            with ctx.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not ready"
            return JSONResponse(
                {"status": "unavailable", "detail": type(exc).__name__}, status_code=503
            )
        if not writer_alive():
            return JSONResponse(
                {"status": "unavailable", "detail": "store writer stopped"}, status_code=503
            )
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(_: Request) -> Response:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
