"""What the console home shows the person signed in (issue 13 item 5, docs/console-home.md).

Per sub-account they may see (members: theirs; platform administrators: all): the message
volume of the last 24 hours per flow, in hourly buckets of a window that ends now; the
denials of that window (only for those who may read the audit trail, as the audit page);
credentials that reach a reminder threshold (the reminders' own test, ``due`` and
``replaced``); and the access review's findings. Only reads; the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from ostiary.access.decision import Allow, Grants, decide
from ostiary.access.permissions import Permission
from ostiary.access.service import load_grants
from ostiary.audit.actions import AuditAction
from ostiary.audit.models import AuditEvent
from ostiary.credentials.service import CredentialInfo
from ostiary.identity.models import User, UserStatus
from ostiary.pictures.svg import VolumeSeries
from ostiary.reminders.service import due, replaced
from ostiary.review import scope
from ostiary.review.findings import EXPIRING_DAYS, Finding, findings
from ostiary.runtime.models import Flow, Message
from ostiary.tenancy.models import Subaccount
from ostiary.tenancy.service import count_visible, list_visible

__all__ = [
    "DENIAL_ACTIONS",
    "Denial",
    "Home",
    "SubaccountHome",
    "home",
    "lanes_of",
    "recent_messages",
    "window",
]

HOURS = 24
#: Flows drawn as their own lane; the rest share one "other" lane (so at most this many).
MAX_LANES = 8
#: Sub-accounts shown in full; the home links to the list for the rest.
MAX_SUBACCOUNTS = 12
#: How many of the latest denials and expiring credentials each sub-account lists.
LATEST = 5
#: Audit actions that record a refusal.
DENIAL_ACTIONS = frozenset(
    {
        AuditAction.runtime_denied,
        AuditAction.access_denied,
        AuditAction.token_denied,
        AuditAction.authentication_failed,
        AuditAction.credential_expired,
    }
)


@dataclass(frozen=True)
class Denial:
    """One refusal from the audit trail."""

    occurred_at: datetime
    action: str
    actor: str
    target: str


@dataclass(frozen=True)
class SubaccountHome:
    """One sub-account's part of the home."""

    subaccount: Subaccount
    flows: int
    #: Lanes of the volume picture, busiest first, ``other`` (if any) last.
    lanes: list[VolumeSeries]
    messages: int
    #: ``None`` when the viewer may not read the audit trail here.
    denials: int | None
    latest_denials: list[Denial]
    #: Credentials inside a reminder threshold and not rotated already, soonest first.
    expiring: list[CredentialInfo]
    #: ``None`` when the viewer may not read credentials here.
    findings: list[Finding] | None


@dataclass(frozen=True)
class Home:
    """The home of one user at one moment."""

    now: datetime
    #: The start of each hourly bucket, oldest first; the last ends at ``now``.
    hours: list[datetime]
    subaccounts: list[SubaccountHome]
    #: Sub-accounts the user may see beyond those shown.
    more: int


def window(now: datetime, hours: int = HOURS) -> list[datetime]:
    """The starts of the ``hours`` one-hour buckets of the window ending at ``now``."""
    return [now - timedelta(hours=hours - index) for index in range(hours)]


def home(
    session: Session,
    *,
    user: User,
    now: datetime,
    reminder_days: Sequence[int],
    limit: int = MAX_SUBACCOUNTS,
) -> Home:
    """The home of ``user`` at ``now``; ``reminder_days`` are the reminder thresholds.

    Each part needs what its own page needs, decided by ``decide`` as ``authorize`` does:
    the sub-account and its flow count the overview's ``subaccount_read``, the volume
    ``messages_read``, denials ``audit_read``, credentials and findings
    ``credentials_read``. A user no longer active is shown no sub-account."""
    if user.status is not UserStatus.active:
        return Home(now=now, hours=window(now), subaccounts=[], more=0)
    shown = list_visible(session, user=user, limit=limit)
    more = count_visible(session, user=user) - len(shown) if len(shown) == limit else 0
    hours = window(now)
    volume = _volume(session, subaccounts=shown, hours=hours, now=now)
    flows = _flow_counts(session, subaccounts=shown)
    parts = []
    for sub in shown:
        grants = load_grants(session, user=user, subaccount=sub)
        if not _may(grants, Permission.subaccount_read):
            continue  # as the overview would refuse it
        may_audit = _may(grants, Permission.audit_read)
        may_credentials = _may(grants, Permission.credentials_read)
        lanes = lanes_of(volume.get(sub.id, {})) if _may(grants, Permission.messages_read) else []
        parts.append(
            SubaccountHome(
                subaccount=sub,
                flows=flows.get(sub.id, 0),
                lanes=lanes,
                messages=sum(sum(lane.counts) for lane in lanes),
                denials=_denial_count(session, sub, now) if may_audit else None,
                latest_denials=_latest_denials(session, sub, now) if may_audit else [],
                expiring=(_expiring(session, sub, now, reminder_days) if may_credentials else []),
                findings=findings(session, subaccount=sub, now=now) if may_credentials else None,
            )
        )
    return Home(now=now, hours=hours, subaccounts=parts, more=more)


def _may(grants: Grants, permission: Permission) -> bool:
    return isinstance(decide(grants, permission), Allow)


def recent_messages(session: Session, *, subaccount: Subaccount, now: datetime) -> int:
    """How many messages ``subaccount`` received in the 24 hours up to ``now``."""
    query = (
        select(func.count())
        .select_from(Message)
        .where(
            Message.subaccount_id == subaccount.id,
            Message.received_at > now - timedelta(hours=HOURS),
            Message.received_at <= now,
        )
    )
    return int(session.scalar(query) or 0)


def lanes_of(per_flow: dict[str, list[int]], max_lanes: int = MAX_LANES) -> list[VolumeSeries]:
    """Lanes busiest first; past ``max_lanes``, the quietest flows share one lane."""
    ranked = sorted(per_flow.items(), key=lambda item: (-sum(item[1]), item[0]))
    if len(ranked) <= max_lanes:
        return [VolumeSeries(path, tuple(counts)) for path, counts in ranked]
    kept, rest = ranked[: max_lanes - 1], ranked[max_lanes - 1 :]
    other = tuple(sum(column) for column in zip(*(counts for _, counts in rest), strict=True))
    return [VolumeSeries(path, tuple(counts)) for path, counts in kept] + [
        VolumeSeries(f"other ({len(rest)} flows)", other)
    ]


def _volume(
    session: Session, *, subaccounts: list[Subaccount], hours: list[datetime], now: datetime
) -> dict[uuid.UUID, dict[str, list[int]]]:
    """Counts per sub-account, flow and hour, in one grouped query: one ``CASE`` sum per
    bucket is portable across SQLite and PostgreSQL (no date arithmetic in SQL) and the
    range on ``received_at`` is served by the (sub-account, received_at) index."""
    if not subaccounts:
        return {}
    edges = [*hours, now]
    buckets = [
        func.sum(case((and_(Message.received_at > lo, Message.received_at <= hi), 1), else_=0))
        for lo, hi in pairwise(edges)
    ]
    rows = session.execute(
        select(Message.subaccount_id, Message.flow_path, *buckets)
        .where(
            Message.subaccount_id.in_([s.id for s in subaccounts]),
            Message.received_at > edges[0],
            Message.received_at <= now,
        )
        .group_by(Message.subaccount_id, Message.flow_path)
    )
    found: dict[uuid.UUID, dict[str, list[int]]] = {}
    for sub_id, path, *counts in rows:
        found.setdefault(sub_id, {})[path] = [int(c or 0) for c in counts]
    return found


def _flow_counts(session: Session, *, subaccounts: list[Subaccount]) -> dict[uuid.UUID, int]:
    if not subaccounts:
        return {}
    rows = session.execute(
        select(Flow.subaccount_id, func.count())
        .where(Flow.subaccount_id.in_([s.id for s in subaccounts]))
        .group_by(Flow.subaccount_id)
    )
    return {sub_id: int(count) for sub_id, count in rows}


def _denials(sub: Subaccount, now: datetime) -> list[ColumnElement[bool]]:
    return [
        AuditEvent.subdomain == sub.subdomain,
        AuditEvent.action.in_([a.value for a in DENIAL_ACTIONS]),
        AuditEvent.occurred_at > now - timedelta(hours=HOURS),
        AuditEvent.occurred_at <= now,
    ]


def _denial_count(session: Session, sub: Subaccount, now: datetime) -> int:
    query = select(func.count()).select_from(AuditEvent).where(*_denials(sub, now))
    return int(session.scalar(query) or 0)


def _latest_denials(session: Session, sub: Subaccount, now: datetime) -> list[Denial]:
    rows = session.scalars(
        select(AuditEvent).where(*_denials(sub, now)).order_by(AuditEvent.id.desc()).limit(LATEST)
    )
    return [Denial(e.occurred_at, e.action, e.actor, e.target) for e in rows]


def _expiring(
    session: Session, sub: Subaccount, now: datetime, reminder_days: Sequence[int]
) -> list[CredentialInfo]:
    """What the reminders would mail about (or have): inside a threshold, not replaced.
    With reminders off (no thresholds), the findings' horizon stands in."""
    thresholds = reminder_days or (EXPIRING_DAYS,)
    users = scope.technical_users(session, subaccount=sub)
    held = scope.credentials(session, subaccount=sub, users=users, now=now)
    coming = [c for c in held if due(c, now=now, thresholds=thresholds) and not replaced(c, held)]
    return sorted(coming, key=lambda c: (c.expires_at or now, c.credential_id))
