"""Revision 0010: the keyed audit chain and its checkpoints."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from tests.upgrade_cases._checks import count
from tests.upgrade_cases._rows import ROWS, fill, reflect

#: 0010 re-chains every older event under the secret key (its content stays as it was).
REWRITES = {"audit_events": {"prev_hash", "hash"}}


def seed(conn: Connection) -> None:
    """Every table of 0010, ``ROWS`` rows each."""
    fill(conn)


def check(conn: Connection) -> None:
    """Events and checkpoints written at 0010 are left as they were (no second re-chain)."""
    assert count(conn, "audit_events") == ROWS
    assert count(conn, "audit_checkpoints") == ROWS


def crossed(conn: Connection) -> None:
    """0010 checked the old chain (intact), keyed every event and said so in a last event."""
    events = reflect(conn).tables["audit_events"]
    found: list[Any] = list(conn.execute(select(events).order_by(events.c.id)).mappings())
    if not found:
        return  # the trail was empty: nothing to re-chain
    *old, rekey = found
    assert rekey["action"] == "audit:chain:rekeyed"
    after = rekey["detail"]["after"]
    assert after["legacy_events"] == len(old) == ROWS
    assert after["legacy_intact"] is True, after
    assert all(event["content_mac"] for event in found)
    assert [e["prev_hash"] for e in found[1:]] == [e["hash"] for e in found[:-1]]
