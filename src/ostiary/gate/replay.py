"""Replay protection of client assertions (RFC 7523 §3 item 7), shared by every worker and
node: a ``jti`` is accepted once per client until its assertion expires.

The first use inserts ``(client_id, jti)`` into ``assertion_jtis`` in its own short
transaction; the primary key makes every later insert of the same pair fail, in whichever
process or node it happens (on PostgreSQL a concurrent second insert waits for the first
to commit, then fails; on SQLite write transactions begin IMMEDIATE, see ``ostiary.db``).
An expired row protects nothing any more and is replaced; ``cleanup`` deletes the rest.

``first_use`` blocks on the database, so async callers (the token endpoint) run it in a
worker thread: ``await anyio.to_thread.run_sync(partial(store.first_use, client_id=…,
jti=…, expires_at=…, now=…))``. Database errors other than the unique violation propagate
(the edge answers 503).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ostiary.db import transaction
from ostiary.gate.models import JTI_LENGTH, AssertionJti


def stored_jti(jti: str) -> str:
    """The ``jti`` as stored: itself if it is short plain text, else its SHA-256 digest (a
    ``jti`` is any string the client chose; the key must fit the column and every database)."""
    if len(jti) <= JTI_LENGTH and jti.isprintable():  # no NUL, controls or lone surrogates
        return jti
    return "sha256:" + hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest()


class ReplayStore:
    """Used ``jti``s of client assertions, in the database every process shares."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def first_use(self, *, client_id: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        """Record the client's ``jti`` until ``expires_at``; false if it is in use already."""
        key = stored_jti(jti)
        try:
            with transaction(self._sessions) as session:
                session.execute(
                    delete(AssertionJti).where(
                        AssertionJti.client_id == client_id,
                        AssertionJti.jti == key,
                        AssertionJti.expires_at <= now,
                    )
                )
                session.execute(
                    insert(AssertionJti).values(client_id=client_id, jti=key, expires_at=expires_at)
                )
        except IntegrityError:
            return False
        return True


def cleanup(session: Session, *, now: datetime) -> int:
    """Delete the ``jti``s of assertions that expired; how many were deleted."""
    removed = session.execute(delete(AssertionJti).where(AssertionJti.expires_at <= now))
    return int(getattr(removed, "rowcount", 0) or 0)
