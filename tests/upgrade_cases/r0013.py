"""Revision 0013: SCIM tokens and the SCIM view of users."""

from __future__ import annotations

from sqlalchemy import Connection

from tests.upgrade_cases._checks import rows
from tests.upgrade_cases._rows import ROWS, fill


def seed(conn: Connection) -> None:
    """Every table of 0013, ``ROWS`` rows each."""
    fill(conn)


def check(conn: Connection) -> None:
    """SCIM users still map to their users."""
    found = rows(conn, "SELECT count(*) FROM scim_users s JOIN users u ON u.id = s.user_id")
    assert found[0][0] == ROWS
