"""A sub-account's own audit events, for its Administrators: a page at a time or as JSON
lines (platform administrators read the whole trail at ``/api/v1/audit-events``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import StreamingResponse

from ostiary.access.permissions import Permission
from ostiary.api.authn import Principal, authenticated
from ostiary.api.deps import Cursor, Limit, Page, authorized, context
from ostiary.api.users import AuditEventOut
from ostiary.audit import service as audit
from ostiary.audit.export import json_lines
from ostiary.audit.models import AuditEvent
from ostiary.context import AppContext
from ostiary.db import transaction

router = APIRouter(prefix="/api/v1/subaccounts/{subdomain}", tags=["audit"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]
Action = Annotated[str | None, Query(max_length=64, description="e.g. `runtime:denied`.")]
Actor = Annotated[str | None, Query(max_length=32, description="User ID of who acted.")]
Since = Annotated[datetime | None, Query(description="From this time on (inclusive).")]
Until = Annotated[datetime | None, Query(description="Before this time.")]


def event_out(event: AuditEvent) -> AuditEventOut:
    """The wire form of an event."""
    return AuditEventOut(
        id=event.id,
        occurred_at=event.occurred_at,
        actor=event.actor,
        action=event.action,
        subdomain=event.subdomain,
        target=event.target,
        detail=event.detail,
        hash=event.hash,
    )


@router.get("/audit-events", response_model=Page[AuditEventOut])
def list_subaccount_events(
    subdomain: str,
    ctx: Ctx,
    principal: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
    action: Action = None,
    actor: Actor = None,
    since: Since = None,
    until: Until = None,
) -> Page[AuditEventOut]:
    """This sub-account's audit events, newest first (its Administrators)."""
    before = int(cursor) if cursor and cursor.isdigit() else None
    with authorized(ctx, principal, subdomain, Permission.audit_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        events = audit.list_events(
            session,
            limit=limit + 1,
            before_id=before,
            subdomain=subaccount.subdomain,
            action=action,
            actor=actor,
            since=since,
            until=until,
        )
    items = [event_out(e) for e in events]
    more = len(items) > limit
    return Page[AuditEventOut](
        items=items[:limit], next_cursor=str(items[limit - 1].id) if more else None
    )


@router.get(
    "/audit-events/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def export_subaccount_events(
    subdomain: str,
    ctx: Ctx,
    principal: Caller,
    action: Action = None,
    actor: Actor = None,
    since: Since = None,
    until: Until = None,
) -> StreamingResponse:
    """This sub-account's audit events, oldest first, one JSON object per line."""
    with authorized(ctx, principal, subdomain, Permission.audit_read, write=False) as (
        _,
        subaccount,
        _,
    ):
        chosen = subaccount.subdomain  # refused before the answer starts, never halfway

    def lines() -> Iterator[str]:
        with transaction(ctx.read_sessions) as session:
            yield from json_lines(
                audit.iter_events(
                    session, subdomain=chosen, action=action, actor=actor, since=since, until=until
                )
            )

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="audit-{chosen}.jsonl"'},
    )
