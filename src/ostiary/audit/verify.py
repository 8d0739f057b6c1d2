"""Check the keyed chain from its first event, optionally against a signed checkpoint.

What each kind of tampering looks like to ``verify_chain``:

- an edited event: its content no longer matches its ``content_mac`` (nor a keyed
  ``redacted_mac``) — that event is named;
- a deleted event in the middle: the next event's ``prev_hash`` does not follow — the next
  event is named, with the last good one;
- a forged event, even with every later hash recomputed: without the key its MACs cannot
  be right — the forged event is named;
- a cut tail: the checkpoint's head event is gone, or the chain is shorter than the count
  it signed — the checkpoint's head is named, with the last event still there;
- a re-chain by someone holding the key: the event at the checkpoint's position is not the
  one it signed — that event is named.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.audit.chain import GENESIS, keys_of
from ostiary.audit.models import AuditEvent
from ostiary.audit.service import content_of


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint whose signature verified: the chain had ``event_count`` events, the
    last being ``head_event_id`` with ``head_hash``."""

    created_at: datetime
    event_count: int
    head_event_id: int | None
    head_hash: str

    def describe(self) -> str:
        """How messages name it."""
        return f"of {self.created_at.isoformat(timespec='seconds')}"


@dataclass(frozen=True)
class ChainCheck:
    """The result of verifying the chain: ``first_broken_id`` names the first bad event."""

    ok: bool
    events: int
    first_broken_id: int | None = None
    reason: str = ""
    #: The checkpoint the chain was held against, if any.
    checkpoint: Checkpoint | None = None


def verify_chain(session: Session, *, checkpoint: Checkpoint | None = None) -> ChainCheck:
    """Recompute every MAC in order and hold the chain against ``checkpoint``."""
    return verify_from(session, anchor=None, checkpoint=checkpoint)


def verify_from(
    session: Session, *, anchor: Checkpoint | None, checkpoint: Checkpoint | None = None
) -> ChainCheck:
    """Like ``verify_chain``, but trust the chain up to ``anchor`` (an earlier checkpoint
    whose head must still be there) and check only the events after it."""
    keys = keys_of(session)
    prev, count, last_id = GENESIS, 0, None
    query = select(AuditEvent).order_by(AuditEvent.id)
    if anchor is not None and anchor.head_event_id is not None:
        head = session.get(AuditEvent, anchor.head_event_id)
        if head is None or not hmac.compare_digest(head.hash, anchor.head_hash):
            return ChainCheck(
                ok=False,
                events=0,
                first_broken_id=anchor.head_event_id,
                reason=f"event {anchor.head_event_id}, the head of checkpoint "
                f"{anchor.describe()}, is missing or changed",
                checkpoint=anchor,
            )
        prev, count, last_id = head.hash, anchor.event_count, head.id
        query = query.where(AuditEvent.id > head.id)

    def broken(event_id: int | None, reason: str) -> ChainCheck:
        return ChainCheck(
            ok=False, events=count, first_broken_id=event_id, reason=reason, checkpoint=checkpoint
        )

    for event in session.scalars(query).yield_per(500):
        if not keys.content_holds(
            content_of(event), content_mac=event.content_mac, redacted_mac=event.redacted_mac
        ):
            return broken(event.id, f"event {event.id} was changed: its content fails its MAC")
        if not hmac.compare_digest(event.prev_hash, prev):
            after = f"event {last_id}" if last_id is not None else "the start of the chain"
            return broken(
                event.id,
                f"event {event.id} does not follow {after}: an event between them is missing",
            )
        if not hmac.compare_digest(event.hash, keys.link(prev, event.content_mac)):
            return broken(event.id, f"event {event.id} is forged: its chain MAC is wrong")
        count += 1
        if (
            checkpoint is not None
            and count == checkpoint.event_count
            and (
                event.id != checkpoint.head_event_id
                or not hmac.compare_digest(event.hash, checkpoint.head_hash)
            )
        ):
            return broken(
                event.id,
                f"event {event.id} is not the one checkpoint {checkpoint.describe()} "
                "signed at this position: the chain up to it was rewritten",
            )
        prev, last_id = event.hash, event.id
    if checkpoint is not None and count < checkpoint.event_count:
        return broken(
            checkpoint.head_event_id,
            f"events after event {last_id} are missing: checkpoint {checkpoint.describe()} "
            f"signed {checkpoint.event_count} events up to event {checkpoint.head_event_id}, "
            f"the chain has {count}",
        )
    return ChainCheck(ok=True, events=count, checkpoint=checkpoint)
