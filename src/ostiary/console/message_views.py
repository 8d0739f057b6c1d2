"""Console pages of the message processing log: a sub-account's messages, newest first,
filtered by flow, sender (the per-technical-user view, contract C5), status and time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ostiary.access.permissions import Permission
from ostiary.api.deps import context
from ostiary.console.guard import authorized, problem, signed_in
from ostiary.console.web import render
from ostiary.context import AppContext
from ostiary.errors import InvalidInput, OstiaryError
from ostiary.runtime import flows, mpl
from ostiary.runtime.models import MessageStatus

# Mounted under /console by ``runtime_views.router``.
router = APIRouter(prefix="/subaccounts/{subdomain}", include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
Filter = Annotated[str, Query(max_length=200)]
PAGE_SIZE = 50


def _moment(value: str, *, label: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInput(f"{label} must be a date and time like 2024-05-31T13:45") from exc


@router.get("/messages")
def messages(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    flow: Filter = "",
    sender: Filter = "",
    status: Filter = "",
    since: Filter = "",
    until: Filter = "",
    cursor: Filter = "",
) -> Response:
    """The message processing log, newest first, with filters and a Next page link."""
    seen = signed_in(request, ctx)
    filters = {"flow": flow, "sender": sender, "status": status, "since": since, "until": until}
    error: InvalidInput | None = None
    page = mpl.MessagePage(items=[], next_cursor=None)
    try:
        with authorized(ctx, seen, subdomain, Permission.messages_read) as here:
            paths = [f.path for f in flows.list_flows(here.session, subaccount=here.subaccount)]
            try:
                if status and status not in {s.value for s in MessageStatus}:
                    raise InvalidInput("choose the status stored, forwarded or failed")
                page = mpl.list_messages(
                    here.session,
                    subaccount=here.subaccount,
                    flow=flow or None,
                    sender=sender or None,
                    status=MessageStatus(status) if status else None,
                    since=_moment(since, label="From"),
                    until=_moment(until, label="To"),
                    limit=PAGE_SIZE,
                    cursor=cursor or None,
                )
            except InvalidInput as exc:
                error = exc
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    if flow and flow not in paths:
        paths.append(flow)  # messages outlive deleted flows
    kept = {k: v for k, v in filters.items() if v}
    return render(
        request,
        ctx,
        seen,
        "subaccounts/messages.html",
        status=error.status_code if error else 200,
        error=error.detail if error else None,
        subaccount=here.subaccount,
        messages=page.items,
        filters=filters,
        filtered=bool(kept),
        flow_paths=paths,
        statuses=[s.value for s in MessageStatus],
        paged=bool(cursor),
        first_query=f"?{urlencode(kept)}" if kept else "",
        next_url=f"?{urlencode({**kept, 'cursor': page.next_cursor})}"
        if page.next_cursor
        else None,
        section="messages",
    )


@router.get("/messages/{message_id}")
def message(request: Request, ctx: Ctx, subdomain: str, message_id: str) -> Response:
    """One MPL entry: who sent it with which credential, and a link to the stored payload."""
    seen = signed_in(request, ctx)
    try:
        with authorized(ctx, seen, subdomain, Permission.messages_read) as here:
            found = mpl.get_message(here.session, subaccount=here.subaccount, message_id=message_id)
            flow_exists = found.flow_path in {
                f.path for f in flows.list_flows(here.session, subaccount=here.subaccount)
            }
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return render(
        request,
        ctx,
        seen,
        "subaccounts/message.html",
        subaccount=here.subaccount,
        message=found,
        flow_exists=flow_exists,
        payload_url=f"/api/v1/subaccounts/{here.subaccount.subdomain}/messages/{found.id}/payload",
        stored=found.status is MessageStatus.stored,
        section="messages",
    )
