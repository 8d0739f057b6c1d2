"""``/api/v1/scim-tokens``: platform administrators make, list and revoke SCIM tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ostiary.api.authn import Principal, platform_admin
from ostiary.api.deps import context
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.scim import tokens
from ostiary.scim.models import ScimToken

router = APIRouter(prefix="/api/v1", tags=["scim"])
Ctx = Annotated[AppContext, Depends(context)]
Admin = Annotated[Principal, Depends(platform_admin)]


class ScimTokenIn(BaseModel):
    """A new SCIM token."""

    description: Annotated[str, Field(max_length=2000)] = ""


class IssuedOut(BaseModel):
    """A new SCIM token; ``token`` is shown this once and never again."""

    token_id: str
    token: str


class ScimTokenOut(BaseModel):
    """A SCIM token as lists show it (its hash stays inside)."""

    token_id: str
    description: str
    created_by: str
    created_at: datetime
    status: str
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_address: str | None


def _out(row: ScimToken) -> ScimTokenOut:
    return ScimTokenOut(
        token_id=row.token_id,
        description=row.description,
        created_by=row.created_by,
        created_at=row.created_at,
        status="revoked" if row.revoked_at else "active",
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        last_address=row.last_address,
    )


@router.post("/scim-tokens", status_code=201, response_model=IssuedOut)
def create_scim_token(body: ScimTokenIn, ctx: Ctx, admin: Admin) -> IssuedOut:
    """Create a bearer token for ``/scim/v2``; the token is in this answer only."""
    with transaction(ctx.sessions) as session:
        issued = tokens.create(session, ctx, actor=admin.user_id, description=body.description)
    return IssuedOut(token_id=issued.token_id, token=issued.token)


@router.get("/scim-tokens", response_model=list[ScimTokenOut])
def list_scim_tokens(ctx: Ctx, admin: Admin) -> list[ScimTokenOut]:
    """Every SCIM token with its status and last use, newest first."""
    with transaction(ctx.read_sessions) as session:
        return [_out(r) for r in tokens.listing(session)]


@router.delete("/scim-tokens/{token_id}", response_model=ScimTokenOut)
def revoke_scim_token(token_id: str, ctx: Ctx, admin: Admin) -> ScimTokenOut:
    """Revoke a SCIM token; the next SCIM request with it is refused."""
    with transaction(ctx.sessions) as session:
        return _out(tokens.revoke(session, ctx, actor=admin.user_id, token_id=token_id))
