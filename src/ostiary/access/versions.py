"""The grants version: one counter bumped in every transaction that changes who may do what.

Every worker and node polls it (one indexed row) and reloads its snapshot when it moved,
so a change reaches all of them within the poll interval.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ostiary.identity.models import IdCounter

GRANTS = "version:grants"
CHANGED = "ostiary.grants_changed"


def bump(session: Session) -> None:
    """Mark the grants as changed (in the caller's transaction).

    Other processes see the new version at their next poll; this process reloads at once
    after the commit (``AppContext`` listens for ``CHANGED`` in the session's info).
    """
    session.info[CHANGED] = True
    moved = session.execute(
        update(IdCounter)
        .where(IdCounter.name == GRANTS)
        .values(value=IdCounter.value + 1)
        .returning(IdCounter.value)
    ).scalar()
    if moved is None:
        try:
            with session.begin_nested():
                session.add(IdCounter(name=GRANTS, value=1))
        except IntegrityError:
            bump(session)


def current(session: Session) -> int:
    """The current grants version (0 before the first change)."""
    return session.scalar(select(IdCounter.value).where(IdCounter.name == GRANTS)) or 0
