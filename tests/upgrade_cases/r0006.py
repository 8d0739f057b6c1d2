"""Revision 0006: certificate authorities, trusted CAs, mapping rules, certificates."""

from __future__ import annotations

from sqlalchemy import Connection

from tests.upgrade_cases._checks import rows
from tests.upgrade_cases._rows import ROWS, fill


def seed(conn: Connection) -> None:
    """Every table of 0006, ``ROWS`` rows each."""
    fill(conn)


def check(conn: Connection) -> None:
    """Certificates still point at their CA, trusted CA and user."""
    found = rows(
        conn,
        "SELECT count(*) FROM certificates c JOIN certificate_authorities a ON a.id = c.ca_id"
        " JOIN trusted_cas t ON t.id = c.trusted_ca_id JOIN users u ON u.id = c.user_id",
    )
    assert found[0][0] == ROWS
    rules = rows(
        conn,
        "SELECT count(*) FROM certificate_mapping_rules r"
        " JOIN trusted_cas t ON t.id = r.trusted_ca_id",
    )
    assert rules[0][0] == ROWS
