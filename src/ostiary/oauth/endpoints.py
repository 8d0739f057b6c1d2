"""The OAuth endpoints as plain Starlette routes (the token endpoint is a hot path).

``/oauth/token``, ``/oauth/jwks``, ``/oauth/introspect``, ``/oauth/revoke`` and the
metadata at ``/.well-known/openid-configuration`` and
``/.well-known/oauth-authorization-server``. Protocol logic lives in the ``rfc*`` modules;
these handlers parse, throttle, audit and render.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from urllib.parse import parse_qsl

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ostiary.access.snapshot import GrantSnapshot
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.context import AppContext
from ostiary.db import store_wide
from ostiary.errors import Throttled
from ostiary.gate import throttling
from ostiary.gate.client_certs import PresentedCertificate, presented
from ostiary.gate.principal import Failure, Refusal
from ostiary.oauth import rfc7009_revocation, rfc8414_metadata
from ostiary.oauth.client_auth import AuthenticatedClient, ClientAuthenticator, _basic
from ostiary.oauth.errors import (
    NO_STORE,
    InvalidClient,
    InvalidRequest,
    OAuthError,
    SlowDown,
    TemporarilyUnavailable,
)
from ostiary.oauth.rfc6749_token import check_grant, client_credentials
from ostiary.oauth.rfc7662_introspection import introspect
from ostiary.oauth.rfc8705_mtls import confirmation
from ostiary.oauth.rfc9068_jwt import published
from ostiary.runtime.endpoint import Runtime
from ostiary.runtime.writer import StoreUnavailable

MAX_FORM_BYTES = 64 * 1024
JSON_TYPE = "application/json"
_JSON = json.JSONEncoder(separators=(",", ":"))


async def _body(request: Request) -> bytes:
    """The request body, refused as soon as it grows past ``MAX_FORM_BYTES``.

    Read from ``receive`` directly: Starlette's ``Request.body`` (a stream of chunks
    gathered into a list) cost the token endpoint ~5 µs for a body that comes in one
    message."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise InvalidRequest("request too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


#: RFC 6749 §5.1's headers of a successful token answer, encoded once.
_TOKEN_HEADERS = [
    (b"content-type", JSON_TYPE.encode()),
    *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in NO_STORE.items()),
]


class _TokenAnswer(Response):
    """200 with a token's JSON body (plain ASCII) and ``_TOKEN_HEADERS``: JSONResponse
    made a JSON encoder per call, and ``Response`` turns its headers into bytes per call."""

    def __init__(self, body: bytes) -> None:
        self.status_code = 200
        self.body = body
        self.background = None
        self.raw_headers = [(b"content-length", b"%d" % len(body)), *_TOKEN_HEADERS]


def _pairs(body: bytes) -> list[tuple[str, str]]:
    """``parse_qsl`` of the body, with a shortcut for bodies with nothing to unescape."""
    text = body.decode("utf-8")
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False)
    # What parse_qsl does without escapes: empty fields dropped, "name" means "name=".
    return [(name, value) for name, _, value in (f.partition("=") for f in text.split("&") if f)]


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body; each parameter at most once (RFC 6749 §3.2)."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != (
        "application/x-www-form-urlencoded"
    ):
        raise InvalidRequest("send parameters as application/x-www-form-urlencoded")
    body = await _body(request)
    try:
        pairs = _pairs(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("the body is not valid form data") from exc
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise InvalidRequest(f"parameter {key} is repeated")
        form[key] = value
    return form


def _claimed_client(header: str, form: dict[str, str]) -> str:
    if header.lower().startswith("basic "):
        try:
            return _basic(header)[0]
        except InvalidClient:
            return ""
    return form.get("client_id", "")


log = logging.getLogger("ostiary.oauth")

_Handler = Callable[["OAuthServer", Request], Awaitable[Response]]


def _unavailable_without_store(handler: _Handler) -> _Handler:
    """Answer 503 ``temporarily_unavailable`` with ``Retry-After`` (RFC 6749 shape) when
    the handler fails because the database cannot be reached, wherever it read it."""

    @functools.wraps(handler)
    async def handle(server: OAuthServer, request: Request) -> Response:
        try:
            return await handler(server, request)
        except (DBAPIError, PoolTimeoutError) as exc:
            if not store_wide(exc):
                raise
            log.warning("store unavailable on %s: %s", request.url.path, exc)
            return TemporarilyUnavailable("the store cannot be reached; try again later").response()

    return handle


class OAuthServer:
    """The authorization server of one process."""

    def __init__(self, ctx: AppContext, runtime: Runtime) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self.issuer = ctx.settings.public_url
        self.clients = ClientAuthenticator(
            ctx, token_endpoint=f"{self.issuer}/oauth/token", issuer=self.issuer, http=runtime.http
        )

    def hot_routes(self) -> list[Route]:
        """The measured hot path among them: the token endpoint (``ostiary.hot_paths``)."""
        return [Route("/oauth/token", self.token, methods=["POST"])]

    def routes(self) -> list[Route]:
        """The Starlette routes of the other OAuth endpoints."""
        return [
            Route("/oauth/jwks", self.jwks, methods=["GET"]),
            Route("/oauth/introspect", self.introspect, methods=["POST"]),
            Route("/oauth/revoke", self.revoke, methods=["POST"]),
            Route("/.well-known/openid-configuration", self.metadata, methods=["GET"]),
            Route("/.well-known/oauth-authorization-server", self.metadata, methods=["GET"]),
        ]

    async def _authenticate(
        self,
        request: Request,
        form: dict[str, str],
        snapshot: GrantSnapshot,
        now: datetime,
        certificate: PresentedCertificate | None,
    ) -> tuple[AuthenticatedClient, GrantSnapshot]:
        """The client behind the request, and the snapshot it was found in.

        Like the runtime, a refusal is re-checked against a grants version read begun after
        the request arrived (a client just created or rotated on another worker is not
        refused), then counted and audited once. Client credentials are machine secrets:
        never refused because of anyone's failures, throttled only per address and only
        after failing (``ostiary.gate.throttling``)."""
        arrived = time.monotonic()
        header = request.headers.get("authorization", "")
        authenticate = partial(
            self.clients.authenticate, header=header, form=form, now=now, certificate=certificate
        )
        try:
            return await authenticate(snapshot), snapshot
        except InvalidClient as exc:
            failed = exc
        fresh = await self.ctx.recheck.since(arrived, snapshot)
        if fresh is not snapshot:
            try:
                return await authenticate(fresh), fresh
            except InvalidClient as exc:
                failed = exc
        claimed = _claimed_client(header, form)[:64] or "anonymous"
        address = _address(request)
        self._audit_denial(
            claimed, failed.reason, address, expired=failed.expired_credential is not None
        )
        account = throttling.client_account(claimed)
        refusal = Refusal(401, failed.reason, failure=Failure(account))
        try:
            throttling.count(self.ctx, refusal, address)
        except Throttled as exc:
            raise SlowDown("too many failed client authentications; try again later") from exc
        raise failed

    def _audit_denial(
        self, client_id: str, reason: str, address: str, *, expired: bool = False
    ) -> None:
        self.runtime.writer.submit(
            partial(
                record,
                clock=self.ctx.clock,
                actor=client_id[:32],
                action=AuditAction.credential_expired if expired else AuditAction.token_denied,
                target="/oauth/token",
                reason=reason,
                after={"client_address": address},
            )
        )

    def _snapshot(self) -> GrantSnapshot:
        """The grants snapshot, or a 503 if it is stale and cannot be reloaded."""
        try:
            return self.ctx.grants.get()
        except Exception as exc:
            log.warning("no current grants snapshot", exc_info=True)
            raise TemporarilyUnavailable("try again later") from exc

    @_unavailable_without_store
    async def token(self, request: Request) -> Response:
        """RFC 6749 §3.2; with a client certificate presented (by the TLS layer or a trusted
        proxy), whatever the client authentication, the token is bound to it (RFC 8705 §3)."""
        try:
            form = await _form(request)
            check_grant(form)
            snapshot, now = self._snapshot(), self.ctx.clock.now()
            certificate = presented(request.scope)
            client, snapshot = await self._authenticate(request, form, snapshot, now, certificate)
            body = client_credentials(
                snapshot,
                self.ctx.keyring,
                client=client,
                issuer=self.issuer,
                lifetime=self.ctx.settings.token_lifetime_seconds,
                form=form,
                now=now,
                cnf=confirmation(certificate),
            )
            uses = self.runtime.last_use
            uses.touch(f"client:{client.client.client_id}", now)
            if client.credential_id in client.client.secret_ids:
                uses.touch_client_secret(client.credential_id, now, _address(request))
            elif client.method == "private_key_jwt":
                uses.touch_client_key(client.credential_id, now, _address(request))
        except OAuthError as exc:
            return exc.response()
        return _TokenAnswer(_JSON.encode(body).encode())

    @_unavailable_without_store
    async def jwks(self, request: Request) -> Response:
        """The published public keys (RFC 7517), cacheable for five minutes."""
        try:
            snapshot = self._snapshot()
        except OAuthError as exc:
            return exc.response()
        keys = [k.public_jwk for k in published(snapshot, self.ctx.clock.now())]
        return JSONResponse({"keys": keys}, headers={"Cache-Control": "public, max-age=300"})

    async def metadata(self, request: Request) -> Response:
        """RFC 8414 §3."""
        return JSONResponse(
            rfc8414_metadata.metadata(self.issuer),
            headers={"Cache-Control": "public, max-age=3600"},
        )

    @_unavailable_without_store
    async def introspect(self, request: Request) -> Response:
        """RFC 7662 §2."""
        try:
            form = await _form(request)
            snapshot, now = self._snapshot(), self.ctx.clock.now()
            client, snapshot = await self._authenticate(
                request, form, snapshot, now, presented(request.scope)
            )
            body = introspect(snapshot, self.ctx.tokens, client=client, form=form, now=now)
        except OAuthError as exc:
            return exc.response()
        return JSONResponse(body, headers=NO_STORE)

    @_unavailable_without_store
    async def revoke(self, request: Request) -> Response:
        """RFC 7009 §2."""
        try:
            form = await _form(request)
            snapshot, now = self._snapshot(), self.ctx.clock.now()
            client, snapshot = await self._authenticate(
                request, form, snapshot, now, presented(request.scope)
            )
            access = rfc7009_revocation.to_revoke(
                snapshot, self.ctx.tokens, client=client, form=form, now=now
            )
        except OAuthError as exc:
            return exc.response()
        if access is not None:
            clock = self.ctx.clock
            # The commit bumps the grants version, which marks this process's snapshot stale.
            try:
                await self.runtime.writer.write(
                    lambda session: rfc7009_revocation.revoke(session, clock=clock, access=access)
                )
            except StoreUnavailable:  # not revoked: the client must be able to tell
                return TemporarilyUnavailable("the revocation could not be stored").response()
        return Response(status_code=200, headers=NO_STORE)


def _address(request: Request) -> str:
    """The caller's address (after ``OSTIARY_TRUSTED_PROXIES``)."""
    return request.client.host if request.client else "unknown"
