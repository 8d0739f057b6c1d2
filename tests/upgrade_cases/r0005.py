"""Revision 0005: sign-in failures and their clears, used client-assertion JTIs."""

from __future__ import annotations

from sqlalchemy import Connection

from tests.upgrade_cases._checks import count
from tests.upgrade_cases._rows import ROWS, fill


def seed(conn: Connection) -> None:
    """Every table of 0005, ``ROWS`` rows each."""
    fill(conn)


def check(conn: Connection) -> None:
    """Lockout counters survive: an upgrade must not unlock an attacked account."""
    for table in ("auth_failures", "auth_failure_clears", "assertion_jtis"):
        assert count(conn, table) == ROWS, table
