"""Console page of a sub-account's own audit events, for its Administrators: filters by
action, actor and time, a Next page link and a JSON-lines download (issue 11 item 7)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ostiary.access.permissions import Permission
from ostiary.api.deps import context
from ostiary.audit import service as audit
from ostiary.audit.models import AuditEvent
from ostiary.console.guard import authorized, problem, signed_in
from ostiary.console.web import render
from ostiary.context import AppContext
from ostiary.errors import InvalidInput, OstiaryError

router = APIRouter(prefix="/console/subaccounts/{subdomain}", include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
Filter = Annotated[str, Query(max_length=200)]
PAGE_SIZE = 50


def _moment(value: str, *, label: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInput(f"{label} must be a date and time like 2024-05-31T13:45") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # the form says UTC


@router.get("/audit")
def audit_events(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    action: Filter = "",
    actor: Filter = "",
    since: Filter = "",
    until: Filter = "",
    cursor: Filter = "",
) -> Response:
    """The sub-account's audit events, newest first."""
    seen = signed_in(request, ctx)
    filters = {"action": action, "actor": actor, "since": since, "until": until}
    error: InvalidInput | None = None
    events: list[AuditEvent] = []
    try:
        with authorized(ctx, seen, subdomain, Permission.audit_read) as here:
            try:
                events = audit.list_events(
                    here.session,
                    limit=PAGE_SIZE + 1,
                    before_id=int(cursor) if cursor.isdigit() else None,
                    subdomain=here.subaccount.subdomain,
                    action=action.strip() or None,
                    actor=actor.strip() or None,
                    since=_moment(since, label="From"),
                    until=_moment(until, label="To"),
                )
            except InvalidInput as exc:
                error = exc
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    kept = {k: v for k, v in filters.items() if v}
    more = len(events) > PAGE_SIZE
    events = events[:PAGE_SIZE]
    api = f"/api/v1/subaccounts/{here.subaccount.subdomain}/audit-events/export"
    return render(
        request,
        ctx,
        seen,
        "subaccounts/audit.html",
        status=error.status_code if error else 200,
        error=error.detail if error else None,
        subaccount=here.subaccount,
        events=events,
        filters=filters,
        filtered=bool(kept),
        paged=bool(cursor),
        first_query=f"?{urlencode(kept)}" if kept else "",
        next_url=f"?{urlencode({**kept, 'cursor': events[-1].id})}" if more else None,
        export_url=f"{api}?{urlencode(kept)}" if kept else api,
        section="audit",
    )
