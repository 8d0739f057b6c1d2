"""Write and read the hash-chained audit trail.

Each event's hash covers its content and the previous event's hash, so changing or
deleting any event breaks every hash after it (``verify_chain`` finds where). Text that may
come from a request (actor, target, sub-account, reason and the strings in ``before`` and
``after``) is cleaned before it is hashed, so what is stored is what was hashed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, text
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.models import AuditEvent
from ostiary.clock import Clock
from ostiary.textsafe import clean, clean_json, clean_optional, column_length

GENESIS = "0" * 64
_PG_CHAIN_LOCK = 7_407_421_874
_EVENTS = cast(Table, AuditEvent.__table__)
_ACTOR_MAX = column_length(_EVENTS, "actor")
_TARGET_MAX = column_length(_EVENTS, "target")
_SUBDOMAIN_MAX = column_length(_EVENTS, "subdomain")


def _digest(
    prev_hash: str,
    *,
    occurred_at: datetime,
    actor: str,
    action: str,
    subdomain: str | None,
    target: str,
    detail: dict[str, Any],
) -> str:
    canonical = json.dumps(
        [prev_hash, occurred_at.isoformat(), actor, action, subdomain, target, detail],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    action: AuditAction,
    target: str,
    subdomain: str | None = None,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> AuditEvent:
    """Append an event to the chain, in the caller's transaction."""
    detail: dict[str, Any] = {}
    if before is not None:
        detail["before"] = before
    if after is not None:
        detail["after"] = after
    if reason is not None:
        detail["reason"] = reason
    # Round-trip through JSON so the stored detail hashes the same when read back; clean
    # afterwards, as ``default=str`` may turn any object into text.
    detail = clean_json(json.loads(json.dumps(detail, default=str)))
    actor = clean(actor, _ACTOR_MAX)
    target = clean(target, _TARGET_MAX)
    subdomain = clean_optional(subdomain, _SUBDOMAIN_MAX)
    if session.get_bind().dialect.name == "postgresql":
        # Serialise writers of the chain; SQLite's write transactions already are.
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_CHAIN_LOCK})
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    occurred_at = clock.now()
    event = AuditEvent(
        occurred_at=occurred_at,
        actor=actor,
        action=action.value,
        subdomain=subdomain,
        target=target,
        detail=detail,
        prev_hash=prev or GENESIS,
        hash=_digest(
            prev or GENESIS,
            occurred_at=occurred_at,
            actor=actor,
            action=action.value,
            subdomain=subdomain,
            target=target,
            detail=detail,
        ),
    )
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainCheck:
    """The result of verifying the chain."""

    ok: bool
    events: int
    first_broken_id: int | None = None


def verify_chain(session: Session) -> ChainCheck:
    """Recompute every hash in order; report the first event that does not match."""
    prev = GENESIS
    count = 0
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(500):
        expected = _digest(
            prev,
            occurred_at=event.occurred_at,
            actor=event.actor,
            action=event.action,
            subdomain=event.subdomain,
            target=event.target,
            detail=event.detail,
        )
        if event.prev_hash != prev or event.hash != expected:
            return ChainCheck(ok=False, events=count, first_broken_id=event.id)
        prev = event.hash
        count += 1
    return ChainCheck(ok=True, events=count)


def list_events(
    session: Session,
    *,
    limit: int,
    before_id: int | None = None,
    subdomain: str | None = None,
    action: str | None = None,
    actor: str | None = None,
) -> list[AuditEvent]:
    """Events newest first, ``limit`` at a time, continuing below ``before_id``."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if subdomain is not None:
        query = query.where(AuditEvent.subdomain == subdomain)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    return list(session.scalars(query))
