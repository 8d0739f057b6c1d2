"""``create_app(settings)``: the one place where the application is assembled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from ostiary import __version__
from ostiary.api import access as access_api
from ostiary.api import audit as audit_api
from ostiary.api import certificates as certificates_api
from ostiary.api import credentials as credentials_api
from ostiary.api import docs as docs_api
from ostiary.api import errors
from ostiary.api import findings as findings_api
from ostiary.api import groups as groups_api
from ostiary.api import identity as identity_api
from ostiary.api import invitations as invitations_api
from ostiary.api import oauth_clients as oauth_clients_api
from ostiary.api import people as people_api
from ostiary.api import runtime as runtime_api
from ostiary.api import scim as scim_api
from ostiary.api import scim_tokens as scim_tokens_api
from ostiary.api import tenancy as tenancy_api
from ostiary.api import transfer as transfer_api
from ostiary.api import users as users_api
from ostiary.console import audit_views as console_audit
from ostiary.console import certificate_views as console_certificates
from ostiary.console import group_views as console_groups
from ostiary.console import guard as console_guard
from ostiary.console import home_views as console_home
from ostiary.console import invitation_views as console_invitations
from ostiary.console import mail_views as console_mail
from ostiary.console import oauth_views as console_oauth
from ostiary.console import people_views as console_people
from ostiary.console import review_views as console_review
from ostiary.console import runtime_views as console_runtime
from ostiary.console import security_views as console_security
from ostiary.console import technical_views as console_technical
from ostiary.console import tenancy_views as console_tenancy
from ostiary.console import trust_views as console_trust
from ostiary.console import views as console
from ostiary.context import AppContext, build_context
from ostiary.db import transaction
from ostiary.gate.proxies import ProxyHeadersMiddleware, TrustedProxies
from ostiary.hot_paths import HotPaths
from ostiary.oauth.endpoints import OAuthServer
from ostiary.oauth.keys import ensure_key
from ostiary.ops import BodyLimitMiddleware, Metrics, ObservabilityMiddleware
from ostiary.ops import routes as ops_routes
from ostiary.runtime.endpoint import Runtime
from ostiary.runtime.maintenance import flush_last_use, maintenance
from ostiary.scheduler.jobs import standard_scheduler
from ostiary.settings import Settings
from ostiary.tls.serving import use_grants

DESCRIPTION = """Ostiary's admin API: the identity directory, sub-accounts, access and credentials.

Authenticate with HTTP Basic (user ID or e-mail and password), a Bearer access token, or
the console session cookie plus `X-CSRF-Token` for unsafe methods (the *Authorize* button
takes each; every operation lists those it accepts). Errors are JSON `{error, detail}`."""


def create_app(settings: Settings, *, ctx: AppContext | None = None) -> FastAPI:
    """Build the ASGI application; the schema must already be migrated."""
    ctx = ctx or build_context(settings)

    runtime = Runtime(ctx)
    oauth = OAuthServer(ctx, runtime)
    scheduler = standard_scheduler(ctx)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The one place the first signing key is made (every worker; idempotent, locked).
        with transaction(ctx.sessions) as session:
            ensure_key(session, secret_key=ctx.secret_key, clock=ctx.clock)
        ctx.grants.start()
        # The TLS handshake's trust anchors come from this snapshot (ostiary.tls.serving);
        # load it now so the first client certificate is not refused for want of one.
        use_grants(ctx.grants)
        await anyio.to_thread.run_sync(ctx.grants.get)
        ctx.throttle.start()
        await runtime.writer.start()
        housekeeping = asyncio.create_task(maintenance(ctx, runtime), name="ostiary-maintenance")
        scheduled = None
        if scheduler.interval > 0:
            scheduled = asyncio.create_task(scheduler.loop(), name="ostiary-scheduler")
        try:
            yield
        finally:
            if scheduled is not None:
                scheduled.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scheduled
                await anyio.to_thread.run_sync(scheduler.stop)
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
            flush_last_use(runtime)
            await runtime.close()
            ctx.throttle.stop()
            ctx.grants.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="Ostiary",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served offline by ostiary.api.docs
        redoc_url=None,
        openapi_url="/openapi.json",
        # Ostiary exports Prometheus metrics (ostiary.ops), not OpenTelemetry. Left on,
        # FastAPI asked OpenTelemetry for its providers on every request: ~10 µs of each
        # token request's ~110 µs in-process (benchmarks/README.md).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.ctx = ctx
    app.state.runtime = runtime
    app.state.scheduler = scheduler
    metrics = Metrics()
    errors.install(app)
    console_guard.install(app)
    docs_api.install(app)
    app.include_router(identity_api.router)
    app.include_router(tenancy_api.router)
    app.include_router(access_api.router)
    app.include_router(users_api.router)
    app.include_router(people_api.router)
    app.include_router(runtime_api.router)
    app.include_router(oauth_clients_api.router)
    app.include_router(certificates_api.router)
    app.include_router(credentials_api.router)
    app.include_router(scim_tokens_api.router)
    app.include_router(groups_api.router)
    app.include_router(invitations_api.router)
    app.include_router(audit_api.router)
    app.include_router(transfer_api.router)
    app.include_router(console_home.router)
    app.include_router(console.router)
    app.include_router(console_tenancy.router)
    app.include_router(console_security.router)
    app.include_router(console_oauth.router)
    app.include_router(console_certificates.router)
    app.include_router(console_trust.router)
    app.include_router(console_technical.router)
    app.include_router(console_runtime.router)
    app.include_router(findings_api.router)
    app.include_router(console_review.router)
    app.mount("/scim/v2", scim_api.app(ctx))
    app.include_router(console_groups.router)
    app.include_router(console_invitations.router)
    app.include_router(console_people.router)
    app.include_router(console_audit.router)
    app.include_router(console_mail.router)
    app.mount("/static", StaticFiles(packages=[("ostiary.console", "static")]), name="static")
    # The plain Starlette routes go first: the router tries routes in order, and walking
    # the ~110 API routes first cost ~0.3 ms per request (benchmarks/README.md). The
    # runtime and token endpoints are the hot paths (see ostiary/runtime/endpoint.py).
    hot = [
        Route("/t/{subdomain}/http/{path:path}", runtime.handle, methods=["POST", "PUT"]),
        *oauth.hot_routes(),
    ]
    app.router.routes[:0] = [
        *ops_routes(ctx, metrics, writer_alive=runtime.writer.alive),
        *hot,  # also in the router, which answers their wrong methods (405)
        *oauth.routes(),
    ]

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=303)

    # Order matters: the body limit sits inside observability so refusals are counted too.
    # The runtime (each flow's max_bytes) and the OAuth endpoints (64 KiB, oauth/endpoints.py)
    # limit their bodies themselves, as they read them.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        exempt_prefixes=("/t/", "/oauth/"),
    )
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    trusted = TrustedProxies(settings.trusted_proxies) if settings.trusted_proxies else None
    header = settings.client_cert_header
    cert_header = None if header is None else header.value.encode()
    framework_stack = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        # The runtime and token endpoints skip the framework's layers (ostiary/hot_paths.py).
        stack: ASGIApp = HotPaths(framework_stack(), hot, metrics=metrics)
        if trusted is not None:
            # Outermost, so metrics, logs, every route and the hot paths see the real
            # caller. Not installed without trusted proxies: nothing then pays for it.
            stack = ProxyHeadersMiddleware(stack, trusted=trusted, cert_header=cert_header)
        return stack

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    return app
