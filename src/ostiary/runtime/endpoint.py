"""``POST|PUT /t/{subdomain}/http/{path}``: the runtime endpoint, a plain Starlette route.

It is the hot path, so it skips FastAPI's dependency injection (a measured 3-4x cost on
this route, see README's benchmark section) and reads only the in-memory grants snapshot.
Answers follow contract §2 step 9: one identical 401 for every authentication failure, 403 for
a missing role, 404 for an unknown flow only after authentication, 413 for oversize, 503
when the store is down. Denials become audit events with their reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import cast

import httpx
from sqlalchemy import Table
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from ostiary.access.snapshot import FlowFacts, GrantSnapshot
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.context import AppContext
from ostiary.db import WriteGate
from ostiary.errors import AuthenticationFailed, Throttled
from ostiary.gate import authenticators, throttling
from ostiary.gate.admission import Admitted, CallFlow, admit
from ostiary.gate.audit import denial_action
from ostiary.gate.client_certs import presented
from ostiary.gate.principal import Method, Principal, Refusal
from ostiary.gate.rfc7617_basic import parse_basic
from ostiary.oauth.rfc9068_jwt import audience
from ostiary.runtime.certificate_use import certificate_caller, record_first_use
from ostiary.runtime.models import Message, MessageStatus
from ostiary.runtime.relay import Relay, Relayed, RelayFailed
from ostiary.runtime.service import Accepted, new_message_id
from ostiary.runtime.usage import LastUse
from ostiary.runtime.writer import BatchWriter, Row, StoreUnavailable
from ostiary.textsafe import clean, clean_optional, column_length

CHALLENGE = {"WWW-Authenticate": 'Basic realm="ostiary", charset="UTF-8"'}
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ostiary", error="invalid_token"'}
ANY_CHALLENGE = {
    "WWW-Authenticate": 'Basic realm="ostiary", charset="UTF-8", Bearer realm="ostiary"'
}
INVALID_TOKEN = b'{"error":"invalid_token","detail":"the access token is not valid here"}'
UNAUTHORIZED = b'{"error":"unauthorized","detail":"authentication required"}'
FORBIDDEN = b'{"error":"forbidden","detail":"not allowed to call this flow"}'
NOT_FOUND = b'{"error":"not_found","detail":"no such flow"}'
TOO_LARGE = b'{"error":"payload_too_large","detail":"message too large"}'
MESSAGES = cast(Table, Message.__table__)
BUSINESS_ID_HEADERS = ("sap_applicationid", "x-business-id")
STORE_UNAVAILABLE = b'{"error":"store_unavailable","detail":"try again later"}'
_CONTENT_TYPE_MAX = column_length(MESSAGES, "content_type")
_BUSINESS_ID_MAX = column_length(MESSAGES, "business_id")
_ADDRESS_MAX = column_length(MESSAGES, "client_address")
log = logging.getLogger("ostiary.runtime")


def _json(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _too_many(throttled: Throttled) -> Response:
    return _json(
        429,
        b'{"error":"too_many_requests","detail":"try again later"}',
        {"Retry-After": str(throttled.retry_after)},
    )


class Runtime:
    """The runtime of one process: its writer, outbound HTTP pools and last-use counter."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.gate = WriteGate(ctx.settings.resolved_database_url)
        self.writer = BatchWriter(ctx.sessions, gate=self.gate)
        self.last_use = LastUse()
        self.relay = Relay()
        # For fetching OAuth clients' ``jwks_uri`` (ostiary.oauth.client_auth).
        self.http = httpx.AsyncClient(follow_redirects=False)

    async def close(self) -> None:
        """Drain the writer and close the HTTP pools."""
        await self.writer.stop()
        await self.relay.close()
        await self.http.aclose()
        if not self.writer.alive():  # a writer still stuck at the gate holds it
            self.gate.close()

    # ------------------------------------------------------------ the endpoint

    async def handle(self, request: Request) -> Response:
        """Authenticate, authorise, then store or forward."""
        started = time.perf_counter()
        subdomain = request.path_params["subdomain"]
        path = request.path_params["path"].strip("/")
        address = request.client.host if request.client else "unknown"
        header = request.headers.get("authorization", "")
        arrived = time.monotonic()
        try:
            snapshot = self.ctx.grants.get()
        except Exception:  # stale after a local change, and the database cannot be read
            log.warning("no current grants snapshot", exc_info=True)
            return _json(503, STORE_UNAVAILABLE, {"Retry-After": "1"})
        scope = request.scope
        outcome = await self._authorize(snapshot, header, scope, subdomain, path, address)
        if isinstance(outcome, _Refused):
            # Before refusing, look at the current state: another process may have just
            # created the user, reset the secret, added the flow or assigned the role, and
            # this process's snapshot may be up to one poll interval old. Allowing stays
            # query-free; a refusal waits for a version read begun after it arrived.
            try:
                fresh = await self.ctx.recheck.since(arrived, snapshot)
            except Exception:  # the store is unreachable (Recheck raises only then)
                return _json(503, STORE_UNAVAILABLE, {"Retry-After": "1"})
            if fresh is not snapshot:
                snapshot = fresh
                outcome = await self._authorize(snapshot, header, scope, subdomain, path, address)
        if isinstance(outcome, Response):
            return outcome
        if not isinstance(outcome, _Refused) and outcome[0].certificate_first_use is not None:
            try:
                first = await record_first_use(self.ctx, self.writer, outcome[0], address=address)
            except StoreUnavailable:
                return _json(503, STORE_UNAVAILABLE, {"Retry-After": "1"})
            outcome = (
                _Refused(first, authenticated=False, bearer=False)
                if isinstance(first, Refusal)
                else (first, outcome[1])
            )
        if isinstance(outcome, _Refused):
            return self._refuse(outcome, subdomain, path, address)
        caller, flow = outcome
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > flow.max_bytes:
            return _json(413, TOO_LARGE)
        try:
            payload = await _read(request, flow.max_bytes)
        except _TooLarge:
            return _json(413, TOO_LARGE)
        except ClientDisconnect:
            return Response(status_code=400)
        now = self.ctx.clock.now()
        self.last_use.touch_principal(caller, now, address)
        accepted = Accepted(
            message_id=new_message_id(),
            subaccount_id=snapshot.subaccounts[subdomain],
            flow=flow,
            caller=caller,
            size=len(payload),
            content_type=request.headers.get("content-type", "")[:200],
            business_id=_business_id(request),
            client_address=address,
            received_at=now,
        )
        if flow.mode == "forward":
            return await self._forward(accepted, payload, started)
        return await self._store(accepted, payload, started)

    async def _authorize(
        self,
        snapshot: GrantSnapshot,
        header: str,
        scope: Scope,
        subdomain: str,
        path: str,
        address: str,
    ) -> tuple[Principal, FlowFacts] | _Refused | Response:
        """Who calls and which flow they may call, per ``snapshot``; a ``Response`` for a
        malformed header or a throttled caller (answered at once, nothing to re-check).
        An ``Authorization`` header decides; a client certificate counts only without one
        (``runtime.certificate_use``)."""
        caller: Principal | Refusal | None
        try:
            if not header:
                caller = certificate_caller(
                    snapshot, scope, subdomain=subdomain, now=self.ctx.clock.now(), address=address
                )
                if caller is None:
                    return _json(401, UNAUTHORIZED, ANY_CHALLENGE)
            elif header[:7].lower() == "bearer ":
                caller = authenticators.bearer(
                    self.ctx,
                    snapshot,
                    token=header[7:].strip(),
                    now=self.ctx.clock.now(),
                    audience=audience(self.ctx.settings.public_url, subdomain),
                    certificate=presented(scope),
                )
            else:
                try:
                    identifier, secret = parse_basic(header)
                except AuthenticationFailed:
                    return _json(401, UNAUTHORIZED, ANY_CHALLENGE)
                caller = await authenticators.password(
                    self.ctx, snapshot, identifier=identifier, secret=secret, address=address
                )
        except Throttled as exc:
            return _too_many(exc)
        if isinstance(caller, Refusal):
            return _Refused(caller, authenticated=False, bearer=header[:7].lower() == "bearer ")
        admitted = admit(snapshot, caller, CallFlow(subdomain, path))
        if isinstance(admitted, Refusal):
            return _Refused(admitted, authenticated=True, bearer=caller.method is Method.oauth)
        assert isinstance(admitted, Admitted) and admitted.flow is not None
        return caller, admitted.flow

    def _refuse(self, refused: _Refused, subdomain: str, path: str, address: str) -> Response:
        """Audit and answer a refusal (contract §2 step 9: the caller sees only 401/403/404).
        Failed authentications were counted by the gate's authenticators."""
        refusal = refused.refusal
        challenge = BEARER_CHALLENGE if refused.bearer else CHALLENGE
        try:
            throttling.count(self.ctx, refusal, address)
        except Throttled as exc:
            self._deny(refusal, subdomain, path, address)
            return _too_many(exc)
        if not refused.authenticated:
            self._deny(refusal, subdomain, path, address)
            return _json(401, INVALID_TOKEN if refused.bearer else UNAUTHORIZED, challenge)
        if refusal.status != 404:  # an unknown flow after authentication is not a denial
            self._deny(refusal, subdomain, path, address)
        body = {401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND}[refusal.status]
        return _json(refusal.status, body, challenge if refusal.status == 401 else None)

    # ------------------------------------------------------------ modes

    async def _store(self, accepted: Accepted, payload: bytes, started: float) -> Response:
        try:
            await self.writer.write(_message(accepted, MessageStatus.stored, payload, started))
        except StoreUnavailable:
            return _json(503, STORE_UNAVAILABLE, {"Retry-After": "1"})
        message_id = accepted.message_id  # a UUID: safe to put into JSON as it is
        return _json(
            200, b'{"message_id":"%s"}' % message_id.encode(), {"X-Message-Id": message_id}
        )

    async def _forward(self, accepted: Accepted, payload: bytes, started: float) -> Response:
        flow = accepted.flow
        headers = {
            "X-Ostiary-Message-Id": accepted.message_id,
            "X-Ostiary-Sender": accepted.caller.user_id,
        }
        if accepted.content_type:
            headers["Content-Type"] = accepted.content_type
        answer: Relayed | None = None
        detail: str | None = None
        try:
            answer = await self.relay.post(
                flow.receiver_url or "",
                payload,
                headers=headers,
                timeout=flow.timeout_seconds,
                max_answer_bytes=flow.max_bytes,  # the flow's size limit, both ways
            )
            if answer.status >= 500:
                detail = f"receiver answered {answer.status}"
        except RelayFailed as exc:
            detail = exc.detail
        status = MessageStatus.failed if detail else MessageStatus.forwarded
        try:
            await self.writer.write(_message(accepted, status, None, started, detail=detail))
        except StoreUnavailable:
            # The receiver has (or has not) had the message already: answer what it said,
            # so the sender does not retry a delivery that happened; only the MPL misses it.
            log.warning("MPL entry of forwarded message %s not stored", accepted.message_id)
        if answer is None or detail:
            return JSONResponse(
                {"error": "bad_gateway", "detail": detail, "message_id": accepted.message_id},
                status_code=502,
                headers={"X-Message-Id": accepted.message_id},
            )
        relay = {"X-Message-Id": accepted.message_id}
        if answer.content_type:
            relay["Content-Type"] = answer.content_type
        return Response(answer.body, status_code=answer.status, headers=relay)

    # ------------------------------------------------------------ denials

    def _deny(self, refusal: Refusal, subdomain: str, path: str, address: str) -> None:
        """The denial as an audit event with its reason, written in the background."""
        self.writer.submit(
            partial(
                record,
                clock=self.ctx.clock,
                actor=refusal.user_id or "anonymous",
                action=denial_action(refusal, AuditAction.runtime_denied),
                target=f"/t/{subdomain}/http/{path}",
                subdomain=subdomain,
                reason=refusal.reason,
                after={"status": refusal.status, "client_address": address},
            )
        )


@dataclass(frozen=True)
class _Refused:
    """A refusal: of the credentials (``authenticated`` false) or of an authenticated
    caller at the flow; ``bearer`` picks the challenge."""

    refusal: Refusal
    authenticated: bool
    bearer: bool


class _TooLarge(Exception):
    pass


async def _read(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _business_id(request: Request) -> str | None:
    for name in BUSINESS_ID_HEADERS:
        value = request.headers.get(name)
        if value:
            return clean(value, _BUSINESS_ID_MAX)
    return None


def _message(
    accepted: Accepted,
    status: MessageStatus,
    payload: bytes | None,
    started: float,
    *,
    detail: str | None = None,
) -> Row:
    """The MPL row of ``accepted``: a plain row, not an ORM object (see runtime/writer.py).
    Text from the request is cleaned here (``ostiary.textsafe``): a NUL or an over-long
    value would make PostgreSQL refuse the row and the sender get 503 for a stored call."""
    return Row(
        MESSAGES,
        dict(
            id=accepted.message_id,
            subaccount_id=accepted.subaccount_id,
            flow_id=accepted.flow.id,
            flow_path=accepted.flow.path,
            sender=accepted.caller.user_id,
            credential_id=accepted.caller.credential_id,
            auth_method=accepted.caller.method.value,
            status=status,
            size=accepted.size,
            content_type=clean(accepted.content_type, _CONTENT_TYPE_MAX),
            business_id=accepted.business_id,  # cleaned by _business_id
            client_address=clean(accepted.client_address, _ADDRESS_MAX),
            received_at=accepted.received_at,
            duration_ms=(time.perf_counter() - started) * 1000,
            detail=clean_optional(detail),
            payload=payload,
        ),
    )
