"""Authentication for the admin API: a list of small authenticators, each a Principal or None.

A route states what it accepts by depending on ``authenticated`` (or
``authenticated_allow_expired``, only for changing an expired password).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.context import AppContext
from ostiary.crypto import constant_time_equals
from ostiary.db import transaction
from ostiary.errors import AuthenticationFailed, PermissionDenied
from ostiary.identity import service as identity
from ostiary.identity import sessions
from ostiary.identity.models import User, UserKind, UserStatus
from ostiary.oauth.errors import InvalidToken

SESSION_COOKIE = "ostiary_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """Who is calling, and how they proved it."""

    id: uuid.UUID
    user_id: str
    kind: UserKind
    is_platform_admin: bool
    method: str

    @classmethod
    def of(cls, user: User, method: str) -> Principal:
        """The principal for an authenticated user."""
        return cls(
            id=user.id,
            user_id=user.user_id,
            kind=user.kind,
            is_platform_admin=user.is_platform_admin,
            method=method,
        )


class Authenticator(Protocol):
    """Turns a request into a principal, or ``None`` if its kind of credential is absent."""

    def authenticate(
        self, request: Request, session: Session, ctx: AppContext, *, allow_expired: bool
    ) -> Principal | None:
        """A principal, ``None``, or raise ``AuthenticationFailed`` for bad credentials."""
        ...


def client_address(request: Request) -> str:
    """The caller's address, for throttling and the log."""
    return request.client.host if request.client else "unknown"


def parse_basic(header: str) -> tuple[str, str]:
    """Split a ``Basic`` authorization header into identifier and password, or raise."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise AuthenticationFailed(reason="malformed basic header")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise AuthenticationFailed(reason="malformed basic header") from exc
    identifier, colon, password = decoded.partition(":")
    if not colon or not identifier or not password:
        raise AuthenticationFailed(reason="malformed basic header")
    return identifier, password


class BasicAuthenticator:
    """HTTP Basic with a user ID or e-mail and password (or generated secret)."""

    def authenticate(
        self, request: Request, session: Session, ctx: AppContext, *, allow_expired: bool
    ) -> Principal | None:
        """Verify the Basic credentials, if the request carries any."""
        header = request.headers.get("authorization")
        if not header or not header.lower().startswith("basic"):
            return None
        identifier, password = parse_basic(header)
        user = identity.authenticate(
            session,
            ctx,
            identifier=identifier,
            password=password,
            address=client_address(request),
            allow_expired=allow_expired,
        )
        if identity.needs_rehash(ctx, user):
            with transaction(ctx.sessions) as write:
                identity.rehash(write, ctx, user_id=user.user_id, password=password)
        return Principal.of(user, "basic")


class SessionAuthenticator:
    """The console's session cookie; unsafe methods must echo the session's CSRF token."""

    def authenticate(
        self, request: Request, session: Session, ctx: AppContext, *, allow_expired: bool
    ) -> Principal | None:
        """Resolve the session cookie, if present."""
        secret = request.cookies.get(SESSION_COOKIE)
        if not secret:
            return None
        signed_in = sessions.resolve(session, ctx, secret=secret)
        if signed_in is None:
            return None
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not constant_time_equals(sent, signed_in.csrf_token):
                raise PermissionDenied("missing or wrong CSRF token (send it in X-CSRF-Token)")
        if signed_in.must_change_password and not allow_expired:
            raise PermissionDenied("the password has expired; change it first")
        return Principal.of(signed_in.user, "session")


class BearerAuthenticator:
    """Access tokens issued by Ostiary; the principal is the client's technical user."""

    def authenticate(
        self, request: Request, session: Session, ctx: AppContext, *, allow_expired: bool
    ) -> Principal | None:
        """Validate a ``Bearer`` token, if the request carries one."""
        header = request.headers.get("authorization", "")
        if header[:7].lower() != "bearer ":
            return None
        snapshot = ctx.grants.get()
        try:
            access = ctx.tokens.validate(header[7:].strip(), snapshot, now=ctx.clock.now())
        except InvalidToken as exc:
            raise AuthenticationFailed(reason=f"bearer: {exc.reason}") from exc
        client = snapshot.clients.get(access.client_id)
        user = session.scalar(select(User).where(User.user_id == access.subject))
        if (
            client is None
            or not client.active
            or user is None
            or (user.status is not UserStatus.active)
        ):
            raise AuthenticationFailed(reason="bearer: client or user no longer active")
        return Principal.of(user, "bearer")


DEFAULT_AUTHENTICATORS: Sequence[Authenticator] = (
    BasicAuthenticator(),
    BearerAuthenticator(),
    SessionAuthenticator(),
)


def _authenticate(request: Request, *, allow_expired: bool) -> Principal:
    ctx: AppContext = request.app.state.ctx
    with transaction(ctx.read_sessions) as session:
        for authenticator in DEFAULT_AUTHENTICATORS:
            principal = authenticator.authenticate(
                request, session, ctx, allow_expired=allow_expired
            )
            if principal is not None:
                return principal
    raise AuthenticationFailed(reason="no credentials")


def authenticated(request: Request) -> Principal:
    """Dependency: the authenticated caller (401 otherwise)."""
    return _authenticate(request, allow_expired=False)


def authenticated_allow_expired(request: Request) -> Principal:
    """Dependency: the caller, even if their password expired (for changing it)."""
    return _authenticate(request, allow_expired=True)


def platform_admin(request: Request) -> Principal:
    """Dependency: a platform administrator (403 otherwise)."""
    principal = authenticated(request)
    if not principal.is_platform_admin:
        raise PermissionDenied("only platform administrators may do this")
    return principal
