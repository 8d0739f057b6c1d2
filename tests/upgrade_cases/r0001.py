"""Revision 0001: users (persons and technical), their sessions, tokens, password history."""

from __future__ import annotations

from sqlalchemy import Connection

from tests.upgrade_cases._checks import count, rows
from tests.upgrade_cases._rows import ROWS, fill


def seed(conn: Connection) -> None:
    """Every table of 0001, ``ROWS`` rows each."""
    fill(conn)


def check(conn: Connection) -> None:
    """Each user keeps their own session, one-time token and old password.

    SQLite recreates ``users`` in 0002; with foreign keys on, that cascaded into these."""
    for table in ("console_sessions", "one_time_tokens", "password_history"):
        assert count(conn, table) == ROWS, table
        owned = rows(conn, f'SELECT count(*) FROM "{table}" t JOIN users u ON u.id = t.user_id')
        assert owned[0][0] == ROWS, table
    owners = rows(conn, "SELECT count(*) FROM users WHERE owner_id IS NOT NULL")
    assert owners[0][0] == ROWS - 1
