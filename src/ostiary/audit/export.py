"""Audit events as JSON lines: one self-contained object per event, oldest first."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from ostiary.audit.models import AuditEvent


def event_line(event: AuditEvent) -> dict[str, Any]:
    """An event as exported: its content and its MACs (to be checked against the chain)."""
    return {
        "id": event.id,
        "occurred_at": event.occurred_at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "subdomain": event.subdomain,
        "target": event.target,
        "detail": event.detail,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "redacted": event.redacted_mac is not None,
    }


def json_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    """Each event as one line of JSON, newline-terminated."""
    for event in events:
        yield json.dumps(event_line(event), separators=(",", ":"), ensure_ascii=False) + "\n"
