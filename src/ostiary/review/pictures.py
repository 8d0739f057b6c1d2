"""The numbers behind the console's pictures (issue 11 item 6): credential ends within the
next days, and messages per sender per day. Only reads; the caller owns the transaction."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ostiary.credentials.service import listing
from ostiary.identity.models import User
from ostiary.pictures.svg import ExpiryMark, VolumeSeries
from ostiary.review import scope
from ostiary.runtime.models import Message
from ostiary.tenancy.models import Subaccount

TIMELINE_DAYS = 90
VOLUME_DAYS = 7


def _ending(marks: list[ExpiryMark], *, now: datetime, days: int) -> list[ExpiryMark]:
    horizon = now + timedelta(days=days)
    return [m for m in marks if now < m.expires_at <= horizon]


def subaccount_expiries(
    session: Session, *, subaccount: Subaccount, now: datetime, days: int = TIMELINE_DAYS
) -> list[ExpiryMark]:
    """Active credentials working in ``subaccount`` that end within ``days``, one lane per
    technical user."""
    users = scope.technical_users(session, subaccount=subaccount)
    held = scope.credentials(session, subaccount=subaccount, users=users, now=now)
    return _ending(
        [
            ExpiryMark(c.user_id, c.credential_id, c.kind.value, c.expires_at)
            for c in held
            if c.status == "active" and c.expires_at is not None
        ],
        now=now,
        days=days,
    )


def user_expiries(
    session: Session, *, user: User, now: datetime, days: int = TIMELINE_DAYS
) -> list[ExpiryMark]:
    """Active credentials of ``user`` that end within ``days``, one lane per kind."""
    return _ending(
        [
            ExpiryMark(c.kind.value.replace("_", " "), c.credential_id, c.kind.value, c.expires_at)
            for c in listing(session, now=now, user=user)
            if c.status == "active" and c.expires_at is not None
        ],
        now=now,
        days=days,
    )


def volume_days(now: datetime, days: int = VOLUME_DAYS) -> list[date]:
    """The ``days`` calendar days (UTC) ending with today."""
    today = now.date()
    return [today - timedelta(days=back) for back in range(days - 1, -1, -1)]


def _windows(now: datetime, days: int) -> list[tuple[datetime, datetime]]:
    return [
        (start, start + timedelta(days=1))
        for start in (datetime.combine(d, time(), now.tzinfo) for d in volume_days(now, days))
    ]


def subaccount_volume(
    session: Session, *, subaccount: Subaccount, now: datetime, days: int = VOLUME_DAYS
) -> list[VolumeSeries]:
    """Messages per sender per day in ``subaccount``; senders without messages are left out.

    One grouped count per day (portable across SQLite and PostgreSQL, and each served by the
    (sub-account, received_at) index) rather than date arithmetic in SQL.
    """
    counts: dict[str, list[int]] = {}
    for index, (start, end) in enumerate(_windows(now, days)):
        for sender, count in session.execute(
            select(Message.sender, func.count())
            .where(
                Message.subaccount_id == subaccount.id,
                Message.received_at >= start,
                Message.received_at < end,
            )
            .group_by(Message.sender)
        ):
            counts.setdefault(sender, [0] * days)[index] = count
    return [VolumeSeries(sender, tuple(row)) for sender, row in sorted(counts.items())]


def user_volume(
    session: Session, *, user: User, now: datetime, days: int = VOLUME_DAYS
) -> list[VolumeSeries]:
    """Messages ``user`` sent per day, one row per sub-account it sent to."""
    by_sub: dict[uuid.UUID, list[int]] = {}
    for index, (start, end) in enumerate(_windows(now, days)):
        for sub_id, count in session.execute(
            select(Message.subaccount_id, func.count())
            .where(
                Message.sender == user.user_id,
                Message.received_at >= start,
                Message.received_at < end,
            )
            .group_by(Message.subaccount_id)
        ):
            by_sub.setdefault(sub_id, [0] * days)[index] = count
    names = {
        row.id: row.subdomain
        for row in session.execute(
            select(Subaccount.id, Subaccount.subdomain).where(Subaccount.id.in_(by_sub))
        )
    }
    return sorted(
        (
            VolumeSeries(names.get(sub_id, str(sub_id)), tuple(row))
            for sub_id, row in by_sub.items()
        ),
        key=lambda s: s.label,
    )
