"""Reading the message processing log: one filtered, newest-first page, and one entry.

The admin API and the console both page through the MPL here, with a keyset cursor
``received_at|message_id`` so a page stays stable while new messages arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from ostiary.errors import InvalidInput, NotFound
from ostiary.runtime.models import Message, MessageStatus
from ostiary.tenancy.models import Subaccount


@dataclass
class MessagePage:
    """One page of the MPL; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[Message]
    next_cursor: str | None


def _aware(value: datetime | None) -> datetime | None:
    # A time without a zone (a form's datetime-local, a bare ISO string) is read as UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _parse_cursor(value: str) -> tuple[datetime, str]:
    stamp, _, message_id = value.partition("|")
    try:
        moment = _aware(datetime.fromisoformat(stamp))
    except ValueError as exc:
        raise InvalidInput("cursor is not one this API handed out") from exc
    assert moment is not None
    return moment, message_id


def list_messages(
    session: Session,
    *,
    subaccount: Subaccount,
    flow: str | None = None,
    sender: str | None = None,
    status: MessageStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int,
    cursor: str | None,
) -> MessagePage:
    """Messages of ``subaccount``, newest first, filtered by flow, sender, status and time."""
    query = (
        select(Message)
        .where(Message.subaccount_id == subaccount.id)
        .order_by(Message.received_at.desc(), Message.id.desc())
        .limit(limit + 1)
    )
    if flow:
        query = query.where(Message.flow_path == flow.strip().strip("/"))
    if sender:
        query = query.where(Message.sender == sender.strip().upper())
    if status:
        query = query.where(Message.status == status)
    if since:
        query = query.where(Message.received_at >= _aware(since))
    if until:
        query = query.where(Message.received_at < _aware(until))
    if cursor:
        stamp, message_id = _parse_cursor(cursor)
        query = query.where(
            (Message.received_at < stamp)
            | ((Message.received_at == stamp) & (Message.id < message_id))
        )
    rows = list(session.scalars(query))
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return MessagePage(
        items=rows[:limit],
        next_cursor=f"{last.received_at.isoformat()}|{last.id}" if last else None,
    )


def get_message(
    session: Session, *, subaccount: Subaccount, message_id: str, payload: bool = False
) -> Message:
    """One message of ``subaccount`` (with its payload loaded if asked), or ``NotFound``."""
    query = select(Message).where(Message.id == message_id, Message.subaccount_id == subaccount.id)
    if payload:
        query = query.options(undefer(Message.payload))
    found = session.scalar(query)
    if found is None:
        raise NotFound(f"no message {message_id}")
    return found
