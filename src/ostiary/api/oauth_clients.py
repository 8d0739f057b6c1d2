"""Security → OAuth clients: clients acting as technical users, with overlap rotation.

A client authenticates with a secret (the default), a registered key (``private_key_jwt``)
or, per RFC 8705, its TLS client certificate (``tls_client_auth`` with the certificate's
subject DN, ``self_signed_tls_client_auth`` with the certificate itself): those get no
secret."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ostiary.access.permissions import Permission
from ostiary.api.authn import Principal, authenticated
from ostiary.api.deps import Cursor, Limit, Page, authorized, context, paginate
from ostiary.context import AppContext
from ostiary.identity import service as identity
from ostiary.identity.models import User
from ostiary.oauth import clients
from ostiary.oauth.models import AuthMethod, ClientStatus, OAuthClient

router = APIRouter(prefix="/api/v1/subaccounts/{subdomain}/oauth-clients", tags=["oauth"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]


class ClientIn(BaseModel):
    """A new OAuth client acting as a technical user in this sub-account."""

    user_id: Annotated[str, Field(min_length=1, max_length=32)]
    description: Annotated[str, Field(max_length=2000)] = ""
    expires_at: datetime | None = None
    jwks: dict[str, Any] | None = Field(
        default=None, description="Public JWK Set for private_key_jwt (RFC 7523)."
    )
    jwks_uri: Annotated[str, Field(max_length=2000)] | None = None
    token_endpoint_auth_method: AuthMethod | None = Field(
        default=None,
        description="RFC 7591 §2; default: a secret (client_secret_basic or _post, and "
        "private_key_jwt with jwks). tls_client_auth and self_signed_tls_client_auth "
        "(RFC 8705) authenticate by the TLS client certificate and get no secret.",
    )
    tls_client_auth_subject_dn: Annotated[str, Field(max_length=2000)] | None = Field(
        default=None,
        description="tls_client_auth: the certificate's subject DN (RFC 4514, e.g. "
        "CN=sender,O=Acme); the certificate must chain to a CA this sub-account trusts.",
    )
    certificate_pem: Annotated[str, Field(max_length=20000)] | None = Field(
        default=None,
        description="self_signed_tls_client_auth: the client's certificate (PEM), pinned "
        "by its SHA-256.",
    )


class ClientPatch(BaseModel):
    """Disable or re-enable a client."""

    status: ClientStatus


class RotateIn(BaseModel):
    """Add a secret; the current ones keep working until ``old_valid_until``."""

    old_valid_until: datetime | None = Field(
        default=None, description="Default: 24 hours from now."
    )


class SecretOut(BaseModel):
    """One secret's metadata (never the secret itself)."""

    id: uuid.UUID
    created_at: datetime
    expires_at: datetime | None
    active: bool


class ClientOut(BaseModel):
    """An OAuth client."""

    client_id: str
    user_id: str
    description: str
    status: ClientStatus
    expires_at: datetime | None
    private_key_jwt: bool
    #: ``client_secret_basic`` also stands for ``client_secret_post`` and, with a key,
    #: ``private_key_jwt``: a client with a secret may use any of them.
    token_endpoint_auth_method: AuthMethod
    tls_client_auth_subject_dn: str | None
    certificate_fingerprint_sha256: str | None
    created_at: datetime
    last_used_at: datetime | None
    secrets: list[SecretOut]
    token_endpoint: str


class IssuedOut(ClientOut):
    """A client with a new secret, shown this once (``null`` for the mTLS methods)."""

    client_secret: str | None
    secret_id: uuid.UUID | None


def client_out(session: Session, ctx: AppContext, client: OAuthClient, user: User) -> ClientOut:
    """A client as the API shows it."""
    now = ctx.clock.now()
    return ClientOut(
        client_id=client.client_id,
        user_id=user.user_id,
        description=client.description,
        status=client.status,
        expires_at=client.expires_at,
        private_key_jwt=bool(client.jwks or client.jwks_uri),
        token_endpoint_auth_method=client.token_endpoint_auth_method
        or AuthMethod.client_secret_basic,
        tls_client_auth_subject_dn=client.tls_client_auth_subject_dn,
        certificate_fingerprint_sha256=client.certificate_fingerprint,
        created_at=client.created_at,
        last_used_at=client.last_used_at,
        secrets=[
            SecretOut(
                id=s.id,
                created_at=s.created_at,
                expires_at=s.expires_at,
                active=s.expires_at is None or s.expires_at > now,
            )
            for s in clients.secrets_of(session, client=client)
        ],
        token_endpoint=f"{ctx.settings.public_url}/oauth/token",
    )


@router.post("", status_code=201, response_model=IssuedOut)
def create_client(subdomain: str, body: ClientIn, ctx: Ctx, principal: Caller) -> IssuedOut:
    """Create a client for a technical user; the secret is in this answer only."""
    method = body.token_endpoint_auth_method
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        user = identity.get_user(session, user_id=body.user_id)
        if method is not None and method.mutual_tls:
            client = clients.create_mtls(
                session,
                ctx,
                actor=principal.user_id,
                subaccount=subaccount,
                user=user,
                method=method,
                subject_dn=body.tls_client_auth_subject_dn,
                certificate_pem=body.certificate_pem,
                description=body.description,
                expires_at=body.expires_at,
                jwks=body.jwks is not None or body.jwks_uri is not None,
            )
            out = client_out(session, ctx, client, user)
            return IssuedOut(**out.model_dump(), client_secret=None, secret_id=None)
        issued = clients.create(
            session,
            ctx,
            actor=principal.user_id,
            subaccount=subaccount,
            user=user,
            description=body.description,
            expires_at=body.expires_at,
            jwks=body.jwks,
            jwks_uri=body.jwks_uri,
            method=method,
            subject_dn=body.tls_client_auth_subject_dn,
            certificate_pem=body.certificate_pem,
        )
        out = client_out(session, ctx, issued.client, user)
    return IssuedOut(**out.model_dump(), client_secret=issued.secret, secret_id=issued.secret_id)


@router.get("", response_model=Page[ClientOut])
def list_clients(
    subdomain: str, ctx: Ctx, principal: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[ClientOut]:
    """The OAuth clients of a sub-account."""
    with authorized(ctx, principal, subdomain, Permission.credentials_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        items = [
            client_out(session, ctx, c, u)
            for c, u in clients.list_clients(session, subaccount=subaccount)
        ]
    return paginate(items, key=lambda c: c.client_id, limit=limit, cursor=cursor)


@router.get("/{client_id}", response_model=ClientOut)
def get_client(subdomain: str, client_id: str, ctx: Ctx, principal: Caller) -> ClientOut:
    """One client."""
    with authorized(ctx, principal, subdomain, Permission.credentials_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        client = clients.get(session, subaccount=subaccount, client_id=client_id)
        return client_out(session, ctx, client, _user(session, client))


def _user(session: Session, client: OAuthClient) -> User:
    user = session.get(User, client.user_id)
    assert user is not None  # the foreign key cascades
    return user


@router.post("/{client_id}/secrets", status_code=201, response_model=IssuedOut)
def rotate_secret(
    subdomain: str, client_id: str, body: RotateIn, ctx: Ctx, principal: Caller
) -> IssuedOut:
    """Overlap rotation: a new secret now, the old ones until ``old_valid_until``."""
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        client = clients.get(session, subaccount=subaccount, client_id=client_id)
        until = body.old_valid_until or ctx.clock.now() + timedelta(hours=24)
        issued = clients.rotate(
            session,
            ctx,
            actor=principal.user_id,
            subaccount=subaccount,
            client=client,
            old_valid_until=until,
        )
        out = client_out(session, ctx, client, _user(session, client))
    return IssuedOut(**out.model_dump(), client_secret=issued.secret, secret_id=issued.secret_id)


@router.delete("/{client_id}/secrets/{secret_id}", status_code=204)
def retire_secret(
    subdomain: str, client_id: str, secret_id: uuid.UUID, ctx: Ctx, principal: Caller
) -> None:
    """Retire one secret now."""
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        client = clients.get(session, subaccount=subaccount, client_id=client_id)
        clients.retire(
            session,
            ctx,
            actor=principal.user_id,
            subaccount=subaccount,
            client=client,
            secret_id=secret_id,
        )


@router.patch("/{client_id}", response_model=ClientOut)
def change_client(
    subdomain: str, client_id: str, body: ClientPatch, ctx: Ctx, principal: Caller
) -> ClientOut:
    """Disable or re-enable a client; its live tokens stop working within a second."""
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        client = clients.get(session, subaccount=subaccount, client_id=client_id)
        clients.set_status(
            session,
            ctx,
            actor=principal.user_id,
            subaccount=subaccount,
            client=client,
            status=body.status,
        )
        return client_out(session, ctx, client, _user(session, client))


@router.delete("/{client_id}", status_code=204)
def delete_client(subdomain: str, client_id: str, ctx: Ctx, principal: Caller) -> None:
    """Delete a client."""
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        client = clients.get(session, subaccount=subaccount, client_id=client_id)
        clients.delete(session, ctx, actor=principal.user_id, subaccount=subaccount, client=client)
