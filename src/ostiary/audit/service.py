"""Write, read and erase personal data from the keyed audit chain (``chain`` explains it).

Changing or deleting any event is found by ``verify.verify_chain``; cutting the tail or
re-chaining with the key is found against a signed checkpoint (``checkpoints``). Text that
may come from a request (actor, target, sub-account, reason and the strings in ``before``
and ``after``) is cleaned before its MAC is taken, so what is stored is what was MACed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, select, text
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.chain import GENESIS, Content, keys_of
from ostiary.audit.models import AuditEvent
from ostiary.clock import Clock
from ostiary.errors import InvalidInput
from ostiary.textsafe import clean, clean_json, clean_optional, column_length

if TYPE_CHECKING:  # the context builds on domains that audit; only its type is needed
    from ostiary.context import AppContext

__all__ = [
    "GENESIS",
    "content_of",
    "iter_events",
    "list_events",
    "lock_chain",
    "pseudonymise",
    "record",
]

_PG_CHAIN_LOCK = 7_407_421_874
_EVENTS = cast(Table, AuditEvent.__table__)
_ACTOR_MAX = column_length(_EVENTS, "actor")
_TARGET_MAX = column_length(_EVENTS, "target")
_SUBDOMAIN_MAX = column_length(_EVENTS, "subdomain")


def content_of(event: AuditEvent) -> Content:
    """The MACed part of a stored event."""
    return Content(
        occurred_at=event.occurred_at,
        actor=event.actor,
        action=event.action,
        subdomain=event.subdomain,
        target=event.target,
        detail=event.detail,
    )


def lock_chain(session: Session) -> None:
    """Serialise the writers of the chain; SQLite's write transactions already are."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_CHAIN_LOCK})


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
    keys = keys_of(session)
    detail: dict[str, Any] = {}
    if before is not None:
        detail["before"] = before
    if after is not None:
        detail["after"] = after
    if reason is not None:
        detail["reason"] = reason
    # Round-trip through JSON so the stored detail MACs the same when read back; clean
    # afterwards, as ``default=str`` may turn any object into text.
    content = Content(
        occurred_at=clock.now(),
        actor=clean(actor, _ACTOR_MAX),
        action=action.value,
        subdomain=clean_optional(subdomain, _SUBDOMAIN_MAX),
        target=clean(target, _TARGET_MAX),
        detail=clean_json(json.loads(json.dumps(detail, default=str))),
    )
    lock_chain(session)
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    content_mac = keys.content_mac(content)
    event = AuditEvent(
        occurred_at=content.occurred_at,
        actor=content.actor,
        action=content.action,
        subdomain=content.subdomain,
        target=content.target,
        detail=content.detail,
        content_mac=content_mac,
        redacted_mac=None,
        prev_hash=prev or GENESIS,
        hash=keys.link(prev or GENESIS, content_mac),
    )
    session.add(event)
    session.flush()
    return event


def list_events(
    session: Session,
    *,
    limit: int,
    before_id: int | None = None,
    subdomain: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
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
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEvent.occurred_at < until)
    return list(session.scalars(query))


def iter_events(
    session: Session,
    *,
    subdomain: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[AuditEvent]:
    """Every matching event, oldest first, read in batches (for export)."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if subdomain is not None:
        query = query.where(AuditEvent.subdomain == subdomain)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEvent.occurred_at < until)
    yield from session.scalars(query).yield_per(500)


# ---------------------------------------------------------------- erasure


def _scrub(value: Any, pattern: re.Pattern[str], pseudonym: str) -> Any:
    if isinstance(value, str):
        return pattern.sub(pseudonym, value)
    if isinstance(value, list):
        return [_scrub(v, pattern, pseudonym) for v in value]
    if isinstance(value, dict):
        return {
            _scrub(k, pattern, pseudonym): _scrub(v, pattern, pseudonym) for k, v in value.items()
        }
    return value


def pseudonymise(session: Session, ctx: AppContext, *, user_id: str, personal: list[str]) -> int:
    """Replace every occurrence of ``personal`` (names, e-mail addresses; any case) in the
    audit trail by ``[erased USER_ID]``; returns how many events changed.

    The chain keeps verifying: each rewritten event keeps its ``content_mac`` and gets a
    ``redacted_mac`` that vouches for the new content (``chain``). The erasure itself is
    audited, naming the user ID and the count only.
    """
    needles = sorted({p.strip() for p in personal if p and p.strip()}, key=len, reverse=True)
    if not needles:
        return 0
    if any(len(n) < 2 for n in needles):
        raise InvalidInput("personal data to erase must be at least 2 characters each")
    pattern = re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE)
    pseudonym = clean(f"[erased {user_id}]", _TARGET_MAX)
    keys = keys_of(session)
    lock_chain(session)
    changed = 0
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(500):
        target = clean(_scrub(event.target, pattern, pseudonym), _TARGET_MAX)
        detail = _scrub(event.detail, pattern, pseudonym)
        if target == event.target and detail == event.detail:
            continue
        event.target, event.detail = target, detail
        event.redacted_mac = keys.redacted_mac(event.content_mac, content_of(event))
        changed += 1
    session.flush()
    record(
        session,
        clock=ctx.clock,
        actor="system",
        action=AuditAction.personal_data_pseudonymised,
        target=user_id,
        after={"events": changed},
    )
    return changed
