"""Retention: stored messages older than their sub-account's retention are deleted."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ostiary.clock import Clock
from ostiary.runtime.models import Message
from ostiary.tenancy.models import Subaccount


def cleanup(session: Session, *, clock: Clock) -> int:
    """Delete expired messages of every sub-account; returns how many went."""
    removed = 0
    now = clock.now()
    for sub_id, days in session.execute(select(Subaccount.id, Subaccount.message_retention_days)):
        result = session.execute(
            delete(Message).where(
                Message.subaccount_id == sub_id, Message.received_at < now - timedelta(days=days)
            )
        )
        removed += int(getattr(result, "rowcount", 0) or 0)
    return removed
