"""The grants version: one counter that moves in every transaction that changes the read model.

Every worker and node polls it (one indexed row) and reloads its snapshot when it moved,
so a change reaches all of them within the poll interval.

Nobody bumps it by hand: a forgotten call would be a silent security bug (a disabled user
still admitted until something else happened to bump). ``track`` hooks a session factory
instead, and ``db.make_session_factory`` tracks every factory it makes. Each flush and
each statement is checked against ``snapshot.READ_MODEL`` (the columns ``snapshot.load``
reads); a transaction that inserted or deleted a row of one of those tables, or changed
one of those columns, bumps the version once, in the same transaction, just before it
commits. Writes elsewhere (messages, audit events, the mail outbox, console sessions,
last-use times) leave it alone, so they reload nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import Column, Connection, Table, TextClause, event, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import (
    ORMExecuteState,
    Session,
    SessionTransaction,
    UOWTransaction,
    sessionmaker,
)
from sqlalchemy.sql.dml import UpdateBase

from ostiary.identity.models import IdCounter

GRANTS = "version:grants"
#: Set in ``session.info`` when a commit bumped the version (``AppContext`` reloads then).
CHANGED = "ostiary.grants_changed"
#: Set in ``session.info`` while the open transaction holds a change of the read model.
_PENDING = "ostiary.grants_pending"


def current(session: Session) -> int:
    """The current grants version (0 before the first change)."""
    return session.scalar(select(IdCounter.value).where(IdCounter.name == GRANTS)) or 0


def track(factory: sessionmaker[Session]) -> None:
    """Make every transaction of ``factory``'s sessions that changes the read model bump
    the grants version (idempotent)."""
    for name, listener in (
        ("before_flush", _before_flush),
        ("do_orm_execute", _on_execute),
        ("before_commit", _before_commit),
        ("after_transaction_end", _after_transaction_end),
    ):
        if not event.contains(factory, name, listener):
            event.listen(factory, name, listener)


def tracked(factory: sessionmaker[Session]) -> bool:
    """Whether ``track`` hooked ``factory``."""
    return event.contains(factory, "before_commit", _before_commit)


# ---------------------------------------------------------------- what counts as a change


@functools.cache
def _read_model() -> Mapping[str, frozenset[str]]:
    # Imported here: the snapshot module imports this one.
    from ostiary.access.snapshot import READ_MODEL

    return READ_MODEL


def changes_read_model(table: str, columns: Iterable[str] | None) -> bool:
    """Whether writing ``columns`` of a row of ``table`` changes what the snapshot holds.

    ``columns`` is ``None`` for a row inserted or deleted, or when the written columns
    cannot be told: either way, a read-model table counts as changed.
    """
    read = _read_model().get(table)
    if read is None:
        return False
    return columns is None or not read.isdisjoint(columns)


def _before_flush(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    if session.info.get(_PENDING):
        return
    for obj in (*session.new, *session.deleted):
        if any(changes_read_model(t.name, None) for t in inspect(obj).mapper.tables):
            session.info[_PENDING] = True
            return
    for obj in session.dirty:
        if not session.is_modified(obj, include_collections=False):
            continue
        state = inspect(obj)
        written = {
            column.name
            for attr in state.mapper.column_attrs
            if state.attrs[attr.key].history.has_changes()
            for column in attr.columns
            if isinstance(column, Column)
        }
        if any(changes_read_model(t.name, written) for t in state.mapper.tables):
            session.info[_PENDING] = True
            return


def _on_execute(state: ORMExecuteState) -> None:
    """Bulk ``insert``/``update``/``delete`` statements (ORM or Core) bypass the flush."""
    session = state.session
    statement = state.statement
    if session.info.get(_PENDING):
        return
    if isinstance(statement, TextClause):
        # No service writes the read model through raw SQL; should one ever, a statement
        # that is not a SELECT and names one of its tables counts as a change.
        sql = statement.text.lstrip()
        if sql[:6].upper() != "SELECT" and _names_read_model_table(sql):
            session.info[_PENDING] = True
        return
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    assert isinstance(statement, UpdateBase)
    table = getattr(statement.table, "name", None)
    if not isinstance(table, str):  # a join or alias we cannot name: assume the worst
        session.info[_PENDING] = True
        return
    written = _updated_columns(state) if state.is_update else None
    if changes_read_model(table, written):
        session.info[_PENDING] = True


def _names_read_model_table(sql: str) -> bool:
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql.lower()))
    return not words.isdisjoint(_read_model())


def _updated_columns(state: ORMExecuteState) -> set[str] | None:
    """The columns an ``UPDATE`` sets, or ``None`` if they cannot be told for sure."""
    statement = state.statement
    # SQLAlchemy keeps what ``.values()`` was given in ``_values`` (keys: column objects or
    # names); there is no public accessor. Anything else (ordered values, a bulk UPDATE by
    # primary key with per-row parameters) counts as writing every column.
    values = getattr(statement, "_values", None)
    if not values or getattr(statement, "_ordered_values", None) or state.parameters:
        return None
    names: set[str] = set()
    for key in values:
        name = getattr(key, "name", key)
        if not isinstance(name, str):
            return None
        names.add(name)
    return names


# ---------------------------------------------------------------- bumping at commit


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint is released: its changes are part of the outer transaction now
    session.flush()  # what is still pending must be seen before deciding
    if session.info.pop(_PENDING, False):
        _bump(session.connection())
        session.info[CHANGED] = True


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed or rolled back: the next one starts clean
        session.info.pop(_PENDING, None)


def _bump(connection: Connection) -> None:
    """Move the version by one (creating the row the first time), in one statement.

    Both stores have ``INSERT ... ON CONFLICT DO UPDATE``: no read-then-write race between
    two first bumps, and the counter row is locked only from here to the commit.
    """
    table = cast(Table, IdCounter.__table__)
    dialect = connection.dialect.name
    if dialect == "postgresql":
        upsert: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        upsert = sqlite.insert(table)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        moved = connection.execute(
            update(table).where(table.c.name == GRANTS).values(value=table.c.value + 1)
        )
        if moved.rowcount == 0:
            connection.execute(table.insert().values(name=GRANTS, value=1))
        return
    connection.execute(
        upsert.values(name=GRANTS, value=1).on_conflict_do_update(
            index_elements=[table.c.name], set_={"value": table.c.value + 1}
        )
    )
