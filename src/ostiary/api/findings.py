"""Findings of a sub-account's access review (issue 11 item 5): GET only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from ostiary.access.permissions import Permission
from ostiary.api.authn import Principal, authenticated
from ostiary.api.deps import authorized, context
from ostiary.context import AppContext
from ostiary.review.findings import EXPIRING_DAYS, MAX_DAYS, UNUSED_DAYS, FindingKind, findings

router = APIRouter(prefix="/api/v1/subaccounts", tags=["findings"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]
Days = Query(ge=1, le=MAX_DAYS)


class FindingOut(BaseModel):
    """One finding."""

    kind: FindingKind
    user_id: str
    detail: str
    credential_id: str | None
    credential_kind: str | None
    role_collection: str | None
    role: str | None
    at: datetime | None


class FindingsOut(BaseModel):
    """Every finding of the sub-account at ``generated_at``, with the thresholds used."""

    subdomain: str
    generated_at: datetime
    unused_days: int
    expiring_days: int
    items: list[FindingOut]


@router.get("/{subdomain}/findings", response_model=FindingsOut)
def list_findings(
    subdomain: str,
    ctx: Ctx,
    principal: Caller,
    unused_days: Annotated[int, Days] = UNUSED_DAYS,
    expiring_days: Annotated[int, Days] = EXPIRING_DAYS,
) -> FindingsOut:
    """Unused, never-ending and soon-ending credentials, roles never exercised, ownerless
    technical users and technical users without a working credential."""
    now = ctx.clock.now()
    with authorized(ctx, principal, subdomain, Permission.credentials_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        found = findings(
            session,
            subaccount=subaccount,
            now=now,
            unused_days=unused_days,
            expiring_days=expiring_days,
        )
    return FindingsOut(
        subdomain=subdomain,
        generated_at=now,
        unused_days=unused_days,
        expiring_days=expiring_days,
        items=[FindingOut.model_validate(f.to_json()) for f in found],
    )
