"""Revision 0002: sub-accounts, members, roles, role collections and the (unkeyed) audit chain."""

from __future__ import annotations

from sqlalchemy import Connection

from tests.upgrade_cases._checks import all_null, rows
from tests.upgrade_cases._rows import ROWS, fill


def seed(conn: Connection) -> None:
    """Every table of 0002, ``ROWS`` rows each; audit events as an intact SHA-256 chain."""
    fill(conn)


def check(conn: Connection) -> None:
    """Members and role collections still hang off their sub-accounts and users.

    SQLite recreates ``subaccounts`` in 0003; with foreign keys on, that cascaded into these."""
    for table in ("members", "roles", "role_collections"):
        found = rows(
            conn, f'SELECT count(*) FROM "{table}" t JOIN subaccounts s ON s.id = t.subaccount_id'
        )
        assert found[0][0] == ROWS, table
    found = rows(
        conn,
        "SELECT count(*) FROM role_collection_assignments a"
        " JOIN role_collections c ON c.id = a.collection_id JOIN users u ON u.id = a.user_id",
    )
    assert found[0][0] == ROWS
    homes = rows(conn, "SELECT count(*) FROM users WHERE home_subaccount_id IS NOT NULL")
    assert homes[0][0] == ROWS


def crossed(conn: Connection) -> None:
    """Users from before 0002 have no home sub-account."""
    all_null(conn, "users", "home_subaccount_id")
