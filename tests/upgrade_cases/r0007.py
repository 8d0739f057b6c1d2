"""Revision 0007: OAuth clients' token endpoint method and mutual-TLS certificate."""

from __future__ import annotations

from sqlalchemy import Connection

from tests.upgrade_cases._checks import all_null, rows
from tests.upgrade_cases._rows import ROWS, fill


def seed(conn: Connection) -> None:
    """Every table of 0007, ``ROWS`` rows each, clients with their mTLS columns set."""
    fill(conn)


def check(conn: Connection) -> None:
    """A client's mutual-TLS settings survive."""
    found = rows(
        conn,
        "SELECT count(*) FROM oauth_clients WHERE token_endpoint_auth_method IS NOT NULL"
        " AND certificate_pem IS NOT NULL AND certificate_fingerprint IS NOT NULL",
    )
    assert found[0][0] == ROWS


def crossed(conn: Connection) -> None:
    """Clients from before 0007 have no method or certificate of their own."""
    all_null(
        conn,
        "oauth_clients",
        "token_endpoint_auth_method",
        "tls_client_auth_subject_dn",
        "certificate_pem",
        "certificate_fingerprint",
    )
