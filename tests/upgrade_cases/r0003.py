"""Revision 0003: flows and stored messages (with binary payloads), sub-account runtime settings."""

from __future__ import annotations

from sqlalchemy import Connection

from tests.upgrade_cases._checks import all_null, rows
from tests.upgrade_cases._rows import MEANINGFUL, ROWS, fill


def seed(conn: Connection) -> None:
    """Every table of 0003, ``ROWS`` rows each."""
    fill(conn)


def check(conn: Connection) -> None:
    """Messages keep their flow and their payload byte for byte."""
    found = rows(
        conn,
        "SELECT m.payload FROM messages m JOIN flows f ON f.id = m.flow_id"
        " JOIN subaccounts s ON s.id = m.subaccount_id ORDER BY m.size",
    )
    assert len(found) == ROWS
    expected = {MEANINGFUL[("messages", "payload")](i) for i in range(ROWS)}
    assert {bytes(row[0]) for row in found} == expected


def crossed(conn: Connection) -> None:
    """Sub-accounts from before 0003 allow Basic auth and keep messages 30 days."""
    found = rows(conn, "SELECT basic_auth_allowed, message_retention_days FROM subaccounts")
    assert all(bool(basic) and days == 30 for basic, days in found), found
    all_null(conn, "users", "last_used_at")
