"""Credentials of technical users (issue 11): every kind listed the same way, overlap
rotation of secrets, and a sub-account's maximum validity. Thin: parse, call
``ostiary.credentials``, render."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ostiary.access.permissions import Permission
from ostiary.api.authn import Principal, authenticated
from ostiary.api.deps import Cursor, Limit, Page, authorized, context, paginate
from ostiary.api.users import _managed as managed
from ostiary.context import AppContext
from ostiary.credentials import client_keys, rotation
from ostiary.credentials.service import listing
from ostiary.db import transaction
from ostiary.oauth import clients

router = APIRouter(prefix="/api/v1", tags=["credentials"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]


class RotateIn(BaseModel):
    """A rotation: until when the current secrets keep working (default: they stop now),
    and when the new one ends (default: no end, or the sub-account's maximum validity)."""

    old_valid_until: datetime | None = None
    expires_at: datetime | None = None


class RotatedOut(BaseModel):
    """The new secret. The password is shown this once and never again."""

    user_id: str
    secret_id: str
    password: str
    expires_at: datetime | None
    old_valid_until: datetime


class CredentialOut(BaseModel):
    """One credential of a technical user, whatever its kind."""

    credential_id: str
    kind: str
    user_id: str
    subaccount: str | None
    client_id: str | None
    owner: str | None
    created_at: datetime
    expires_at: datetime | None
    status: str
    last_used_at: datetime | None
    last_address: str | None


class KeyRotateIn(BaseModel):
    """A new public key for ``private_key_jwt``; the current keys work until
    ``old_valid_until`` (default: they stop now)."""

    jwk: dict[str, Any]
    old_valid_until: datetime | None = None


class KeyRotatedOut(BaseModel):
    """The new key's credential ID and the end of the earlier keys."""

    client_id: str
    credential_id: str
    kid: str
    old_valid_until: datetime


class PolicyIn(BaseModel):
    """The longest validity of new technical-user secrets in a sub-account (``null``: none)."""

    max_validity_days: Annotated[int, Field(ge=1, le=rotation.MAX_VALIDITY.days)] | None = None


class PolicyOut(BaseModel):
    """A sub-account's credential policy."""

    subdomain: str
    max_validity_days: int | None


@router.get("/technical-users/{user_id}/credentials", response_model=Page[CredentialOut])
def list_credentials(
    user_id: str, ctx: Ctx, principal: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[CredentialOut]:
    """Every credential of the technical user: its secrets, its OAuth clients' secrets and
    keys, its certificates, with validity, status and last use (owners and administrators)."""
    with transaction(ctx.read_sessions) as session:
        _, user = managed(session, principal, user_id)
        found = listing(session, now=ctx.clock.now(), user=user)
    items = [CredentialOut.model_validate(c.to_json()) for c in found]
    return paginate(items, key=lambda c: c.credential_id, limit=limit, cursor=cursor)


@router.post("/technical-users/{user_id}/secrets", status_code=201, response_model=RotatedOut)
def rotate_secret(user_id: str, body: RotateIn, ctx: Ctx, principal: Caller) -> RotatedOut:
    """A new secret (in this answer only); the current ones work until ``old_valid_until``."""
    with transaction(ctx.sessions) as session:
        actor, user = managed(session, principal, user_id)
        made = rotation.rotate(
            session,
            ctx,
            actor=actor,
            user=user,
            old_valid_until=body.old_valid_until,
            expires_at=body.expires_at,
        )
    return RotatedOut(
        user_id=user.user_id,
        secret_id=made.secret_id,
        password=made.password,
        expires_at=made.expires_at,
        old_valid_until=made.old_valid_until,
    )


@router.delete("/technical-users/{user_id}/secrets/{secret_id}", status_code=204)
def revoke_secret(user_id: str, secret_id: str, ctx: Ctx, principal: Caller) -> None:
    """Stop one secret at once."""
    with transaction(ctx.sessions) as session:
        actor, user = managed(session, principal, user_id)
        rotation.revoke(session, ctx, actor=actor, user=user, secret_id=secret_id)


@router.post(
    "/subaccounts/{subdomain}/oauth-clients/{client_id}/keys",
    status_code=201,
    response_model=KeyRotatedOut,
)
def rotate_client_key(
    subdomain: str, client_id: str, body: KeyRotateIn, ctx: Ctx, principal: Caller
) -> KeyRotatedOut:
    """Overlap rotation of a client's JWK set: the new key now, the old ones until
    ``old_valid_until``."""
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        actor,
    ):
        client = clients.get(session, subaccount=subaccount, client_id=client_id)
        made = client_keys.rotate(
            session,
            ctx,
            actor=actor.user_id,
            subaccount=subaccount,
            client=client,
            jwk=body.jwk,
            old_valid_until=body.old_valid_until,
        )
    return KeyRotatedOut(
        client_id=client_id,
        credential_id=made.credential_id,
        kid=made.kid,
        old_valid_until=made.old_valid_until,
    )


@router.get("/subaccounts/{subdomain}/credential-policy", response_model=PolicyOut)
def get_policy(subdomain: str, ctx: Ctx, principal: Caller) -> PolicyOut:
    """The sub-account's maximum validity of technical users' secrets."""
    with authorized(ctx, principal, subdomain, Permission.credentials_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        days = rotation.policy_of(session, subaccount=subaccount)
    return PolicyOut(subdomain=subdomain, max_validity_days=days)


@router.put("/subaccounts/{subdomain}/credential-policy", response_model=PolicyOut)
def set_policy(subdomain: str, body: PolicyIn, ctx: Ctx, principal: Caller) -> PolicyOut:
    """Set or lift the maximum validity (Administrators); existing secrets keep theirs."""
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        actor,
    ):
        rotation.set_max_validity(
            session, ctx, actor=actor.user_id, subaccount=subaccount, days=body.max_validity_days
        )
    return PolicyOut(subdomain=subdomain, max_validity_days=body.max_validity_days)
