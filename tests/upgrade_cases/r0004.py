"""Revision 0004: OAuth clients with secrets, signing keys, revoked tokens."""

from __future__ import annotations

from sqlalchemy import Connection

from tests.upgrade_cases._checks import rows
from tests.upgrade_cases._rows import ROWS, fill


def seed(conn: Connection) -> None:
    """Every table of 0004, ``ROWS`` rows each."""
    fill(conn)


def check(conn: Connection) -> None:
    """Client secrets still belong to clients of a technical user in a sub-account."""
    found = rows(
        conn,
        "SELECT count(*) FROM oauth_client_secrets x JOIN oauth_clients c ON c.id = x.client_id"
        " JOIN users u ON u.id = c.user_id JOIN subaccounts s ON s.id = c.subaccount_id",
    )
    assert found[0][0] == ROWS
