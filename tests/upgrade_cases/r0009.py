"""Revision 0009: the scheduler's leases and job runs, credential reminders, mail retries."""

from __future__ import annotations

from sqlalchemy import Connection

from tests.upgrade_cases._checks import all_null, count
from tests.upgrade_cases._rows import ROWS, fill


def seed(conn: Connection) -> None:
    """Every table of 0009, ``ROWS`` rows each."""
    fill(conn)


def check(conn: Connection) -> None:
    """Reminders already sent stay recorded, so nobody is mailed twice after an upgrade."""
    assert count(conn, "credential_reminders") == ROWS


def crossed(conn: Connection) -> None:
    """Mail queued before 0009 is due at once (no retry time)."""
    all_null(conn, "mail_outbox", "next_attempt_at")
