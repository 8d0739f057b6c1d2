"""Revision 0011: where and with what a console session was last seen."""

from __future__ import annotations

from sqlalchemy import Connection

from tests.upgrade_cases._checks import all_null, rows
from tests.upgrade_cases._rows import ROWS, fill


def seed(conn: Connection) -> None:
    """Every table of 0011, ``ROWS`` rows each."""
    fill(conn)


def check(conn: Connection) -> None:
    """Session details survive."""
    found = rows(
        conn,
        "SELECT count(*) FROM console_sessions WHERE address IS NOT NULL"
        " AND user_agent IS NOT NULL AND last_seen_at IS NOT NULL",
    )
    assert found[0][0] == ROWS


def crossed(conn: Connection) -> None:
    """Sessions from before 0011 have no details yet."""
    all_null(conn, "console_sessions", "last_seen_at", "address", "user_agent")
