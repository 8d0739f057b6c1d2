"""OAuth clients per sub-account, each acting as one technical user: create, rotate secrets
with overlap, retire, disable. Secrets are 256-bit, stored as keyed hashes, shown once.

Clients of the RFC 8705 methods (``create_mtls``) have no secret: their certificate is the
credential (``ostiary.oauth.rfc8705_mtls``)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.context import AppContext
from ostiary.crypto import generate_secret
from ostiary.errors import InvalidClientMetadata, InvalidInput, NotFound
from ostiary.identity.models import User, UserKind, UserStatus
from ostiary.oauth import rfc8705_mtls
from ostiary.oauth.models import AuthMethod, ClientSecret, ClientStatus, OAuthClient
from ostiary.tenancy.models import Subaccount


@dataclass(frozen=True)
class IssuedClientSecret:
    """A client and a new secret, to be shown exactly once."""

    client: OAuthClient
    secret: str
    secret_id: uuid.UUID


#: The longest overlap rotation: enough for any real switch-over (API, console and CLI).
MAX_OVERLAP = timedelta(days=366)


def _check_jwks(jwks: dict[str, Any] | None, jwks_uri: str | None) -> None:
    if jwks is not None:
        keys = jwks.get("keys")
        if (
            not isinstance(keys, list)
            or not keys
            or not all(isinstance(k, dict) and "kty" in k for k in keys)
        ):
            raise InvalidInput('jwks must be a JWK Set: {"keys": [{"kty": …}, …]}')
        if any("d" in k for k in keys):
            raise InvalidInput("jwks must hold public keys only (a key has a private 'd')")
    if jwks_uri is not None:
        parts = urlsplit(jwks_uri)
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            raise InvalidInput("jwks_uri must be an http(s) URL")


def _add_secret(session: Session, ctx: AppContext, client: OAuthClient) -> tuple[str, uuid.UUID]:
    secret = generate_secret(32)
    row = ClientSecret(
        id=uuid.uuid4(),
        client_id=client.id,
        secret_hash=ctx.secret_hasher.hash(secret),
        created_at=ctx.clock.now(),
        expires_at=None,
    )
    session.add(row)
    return secret, row.id


def _check_acting_user(ctx: AppContext, user: User, expires_at: datetime | None) -> None:
    if user.kind is not UserKind.technical:
        raise InvalidInput(
            f"{user.user_id} is not a technical user; OAuth clients act as technical users"
        )
    if user.status is not UserStatus.active:
        raise InvalidInput(f"{user.user_id} is {user.status.value}")
    if expires_at is not None and expires_at <= ctx.clock.now():
        raise InvalidInput("expires_at must be in the future")


def _new_client(
    session: Session,
    ctx: AppContext,
    *,
    subaccount: Subaccount,
    user: User,
    description: str,
    expires_at: datetime | None,
    method: AuthMethod | None,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    mtls: rfc8705_mtls.Registration | None = None,
) -> OAuthClient:
    now = ctx.clock.now()
    client = OAuthClient(
        id=uuid.uuid4(),
        client_id=f"oc-{secrets.token_hex(12)}",
        subaccount_id=subaccount.id,
        user_id=user.id,
        description=description,
        status=ClientStatus.active,
        jwks=jwks,
        jwks_uri=jwks_uri,
        token_endpoint_auth_method=method,
        tls_client_auth_subject_dn=mtls.subject_dn if mtls else None,
        certificate_pem=mtls.certificate_pem if mtls else None,
        certificate_fingerprint=mtls.certificate_fingerprint if mtls else None,
        expires_at=expires_at,
        created_at=now,
        updated_at=now,
    )
    session.add(client)
    session.flush()
    return client


def create(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    user: User,
    description: str = "",
    expires_at: datetime | None = None,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    method: AuthMethod | None = None,
    subject_dn: str | None = None,
    certificate_pem: str | None = None,
) -> IssuedClientSecret:
    """Create a client with a secret acting as technical user ``user`` in ``subaccount``
    (``method``: one of the secret methods, or ``None`` as before RFC 8705; the mTLS
    fields ``subject_dn`` and ``certificate_pem`` are refused here)."""
    if method is not None and method.mutual_tls:
        raise InvalidClientMetadata(f"a {method.value} client has no secret; use create_mtls")
    rfc8705_mtls.registration(
        method,
        subject_dn=subject_dn,
        certificate_pem=certificate_pem,
        jwks=False,
        at=ctx.clock.now(),
    )
    if method is AuthMethod.private_key_jwt and not (jwks or jwks_uri):
        raise InvalidClientMetadata("private_key_jwt needs jwks or jwks_uri")
    _check_acting_user(ctx, user, expires_at)
    _check_jwks(jwks, jwks_uri)
    client = _new_client(
        session,
        ctx,
        subaccount=subaccount,
        user=user,
        description=description,
        expires_at=expires_at,
        method=method,
        jwks=jwks,
        jwks_uri=jwks_uri,
    )
    secret, secret_id = _add_secret(session, ctx, client)
    if jwks is not None:  # each key's validity and last use (ostiary.credentials)
        from ostiary.credentials.client_keys import register

        register(session, client=client, now=ctx.clock.now())
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.oauth_client_created,
        target=client.client_id,
        subdomain=subaccount.subdomain,
        after={
            "acts_as": user.user_id,
            "description": description,
            "expires_at": expires_at,
            "private_key_jwt": bool(jwks or jwks_uri),
            **({"token_endpoint_auth_method": method.value} if method else {}),
        },
    )
    return IssuedClientSecret(client, secret, secret_id)


def create_mtls(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    user: User,
    method: AuthMethod,
    subject_dn: str | None = None,
    certificate_pem: str | None = None,
    description: str = "",
    expires_at: datetime | None = None,
    jwks: bool = False,
) -> OAuthClient:
    """Create a client that authenticates by its TLS client certificate (RFC 8705 §2):
    ``tls_client_auth`` with ``subject_dn``, or ``self_signed_tls_client_auth`` with
    ``certificate_pem``. It gets no secret; ``jwks`` (a key was sent too) is refused."""
    _check_acting_user(ctx, user, expires_at)
    mtls = rfc8705_mtls.registration(
        method,
        subject_dn=subject_dn,
        certificate_pem=certificate_pem,
        jwks=jwks,
        at=ctx.clock.now(),
    )
    if mtls is None:
        raise InvalidClientMetadata(f"{method.value} is not a mutual-TLS method")
    client = _new_client(
        session,
        ctx,
        subaccount=subaccount,
        user=user,
        description=description,
        expires_at=expires_at,
        method=method,
        mtls=mtls,
    )
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.oauth_client_created,
        target=client.client_id,
        subdomain=subaccount.subdomain,
        after={
            "acts_as": user.user_id,
            "description": description,
            "expires_at": expires_at,
            "token_endpoint_auth_method": method.value,
            "tls_client_auth_subject_dn": mtls.subject_dn,
            "certificate_fingerprint": mtls.certificate_fingerprint,
        },
    )
    return client


def get(session: Session, *, subaccount: Subaccount, client_id: str) -> OAuthClient:
    """The client ``client_id`` of the sub-account, or ``NotFound``."""
    client = session.scalar(
        select(OAuthClient).where(
            OAuthClient.client_id == client_id, OAuthClient.subaccount_id == subaccount.id
        )
    )
    if client is None:
        raise NotFound(f"no OAuth client {client_id} in {subaccount.subdomain}")
    return client


def rotate(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    client: OAuthClient,
    old_valid_until: datetime,
) -> IssuedClientSecret:
    """Add a new secret; the current ones keep working until ``old_valid_until`` (overlap)."""
    if (
        client.token_endpoint_auth_method is not None
        and client.token_endpoint_auth_method.mutual_tls
    ):
        raise InvalidInput(
            f"{client.client_id} authenticates by certificate "
            f"({client.token_endpoint_auth_method.value}) and has no secret to rotate"
        )
    now = ctx.clock.now()
    if old_valid_until < now:
        raise InvalidInput("old_valid_until must not be in the past")
    if old_valid_until > now + MAX_OVERLAP:
        raise InvalidInput(
            f"old_valid_until may be at most {MAX_OVERLAP.days} days ahead: an overlap is a "
            "grace period for switching senders, not a second lifetime"
        )
    for row in secrets_of(session, client=client):
        if row.expires_at is None or row.expires_at > old_valid_until:
            row.expires_at = old_valid_until
    secret, secret_id = _add_secret(session, ctx, client)
    client.updated_at = now
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.oauth_client_rotated,
        target=client.client_id,
        subdomain=subaccount.subdomain,
        after={"new_secret": str(secret_id), "old_valid_until": old_valid_until},
    )
    return IssuedClientSecret(client, secret, secret_id)


def retire(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    client: OAuthClient,
    secret_id: uuid.UUID,
) -> None:
    """End one secret now."""
    row = session.get(ClientSecret, secret_id)
    if row is None or row.client_id != client.id:
        raise NotFound(f"no secret {secret_id} of {client.client_id}")
    remaining = [
        s
        for s in secrets_of(session, client=client)
        if s.id != secret_id and (s.expires_at is None or s.expires_at > ctx.clock.now())
    ]
    if not remaining and not (client.jwks or client.jwks_uri):
        raise InvalidInput(
            "this is the client's last working secret; rotate first, or disable the client"
        )
    row.expires_at = ctx.clock.now()
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.oauth_client_retired,
        target=client.client_id,
        subdomain=subaccount.subdomain,
        after={"secret": str(secret_id)},
    )


def set_status(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    client: OAuthClient,
    status: ClientStatus,
) -> None:
    """Disable or re-enable a client; live tokens stop working within a second."""
    before = client.status
    client.status = status
    client.updated_at = ctx.clock.now()
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.oauth_client_status,
        target=client.client_id,
        subdomain=subaccount.subdomain,
        before={"status": before.value},
        after={"status": status.value},
    )


def delete(
    session: Session, ctx: AppContext, *, actor: str, subaccount: Subaccount, client: OAuthClient
) -> None:
    """Delete a client and its secrets."""
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.oauth_client_deleted,
        target=client.client_id,
        subdomain=subaccount.subdomain,
    )
    session.delete(client)


def secrets_of(session: Session, *, client: OAuthClient) -> list[ClientSecret]:
    """The client's secrets, oldest first."""
    return list(
        session.scalars(
            select(ClientSecret)
            .where(ClientSecret.client_id == client.id)
            .order_by(ClientSecret.created_at)
        )
    )


def list_clients(session: Session, *, subaccount: Subaccount) -> list[tuple[OAuthClient, User]]:
    """Clients of a sub-account with the technical users they act as."""
    rows = session.execute(
        select(OAuthClient, User)
        .join(User, User.id == OAuthClient.user_id)
        .where(OAuthClient.subaccount_id == subaccount.id)
        .order_by(OAuthClient.created_at)
    )
    return [(c, u) for c, u in rows]
