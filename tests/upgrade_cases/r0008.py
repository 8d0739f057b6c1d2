"""Revision 0008: technical users' secrets, credential policies, OAuth client keys."""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, inspect

from tests.upgrade_cases._checks import count, rows
from tests.upgrade_cases._rows import ROWS, fill


def seed(conn: Connection) -> None:
    """Every table of 0008, ``ROWS`` rows each."""
    fill(conn)


def check(conn: Connection) -> None:
    """Secrets and keys written at 0008 are there once each (no second copy at upgrade)."""
    assert count(conn, "technical_user_secrets") == ROWS
    assert count(conn, "oauth_client_keys") == ROWS


def crossed(conn: Connection) -> None:
    """0008 gives each technical user's password hash a secret row, each JWK a key row, and
    each open-ended client secret its client's last use."""
    users = rows(
        conn,
        "SELECT id, user_id, password_hash, last_used_at FROM users"
        " WHERE kind = 'technical' AND password_hash IS NOT NULL",
    )
    assert users, "no technical user to copy"
    for user_pk, user_id, password_hash, last_used_at in users:
        digest = hashlib.sha256(password_hash.encode()).hexdigest()[:10]
        found = rows(
            conn,
            "SELECT secret_id, secret_hash, status, last_used_at FROM technical_user_secrets"
            " WHERE user_id = :u",
            u=user_pk,
        )
        assert found == [(f"pwd-{user_id}-{digest}", password_hash, "active", last_used_at)]
    if "oauth_clients" not in inspect(conn).get_table_names():
        return
    clients = rows(conn, "SELECT id, last_used_at FROM oauth_clients")
    if not clients:
        return
    keys = rows(conn, "SELECT kid FROM oauth_client_keys ORDER BY kid")
    assert [k for (k,) in keys] == [f"key-{i}" for i in range(len(clients))]
    used = rows(
        conn,
        "SELECT x.last_used_at, c.last_used_at FROM oauth_client_secrets x"
        " JOIN oauth_clients c ON c.id = x.client_id WHERE x.expires_at IS NULL",
    )
    assert used and all(mine == theirs for mine, theirs in used), used
