"""Revision 0012: groups, their members and role collections, invitations, group owners."""

from __future__ import annotations

from sqlalchemy import Connection

from tests.upgrade_cases._checks import rows
from tests.upgrade_cases._rows import ROWS, fill


def seed(conn: Connection) -> None:
    """Every table of 0012, ``ROWS`` rows each."""
    fill(conn)


def check(conn: Connection) -> None:
    """Group membership and a technical user's owning group survive."""
    for table in ("group_members", "group_role_collection_assignments"):
        found = rows(conn, f'SELECT count(*) FROM "{table}" t JOIN groups g ON g.id = t.group_id')
        assert found[0][0] == ROWS, table
    owners = rows(
        conn,
        "SELECT count(*) FROM technical_user_group_owners o JOIN users u ON u.id = o.user_id"
        " JOIN groups g ON g.id = o.group_id",
    )
    assert owners[0][0] == ROWS
