"""Engine, session factory and the declarative base shared by every domain's models."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Engine, MetaData, Uuid, create_engine, event
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    NotSupportedError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

#: Stable constraint names so Alembic autogenerate and ``alembic check`` see no drift.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, also on SQLite (which drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base: timezone-aware timestamps and portable UUIDs."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the one writer; busy_timeout makes writers queue, not fail."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: an acknowledged message survives power loss too, not only a process crash;
    # group commit (ostiary.runtime.writer) keeps the fsync cost per request small.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, *, pool: bool = True, immediate: bool = False) -> Engine:
    """An engine for ``url`` with the pragmas and pool settings Ostiary relies on.

    On SQLite, ``immediate`` engines start every transaction with ``BEGIN IMMEDIATE``:
    a read-then-write transaction must hold the write lock from its first read, or a
    concurrent commit makes its later write fail with SQLITE_BUSY instead of waiting.
    """
    if url.startswith("sqlite"):
        from ostiary.files import create_private_file, sqlite_database_path

        database = sqlite_database_path(url)
        if database is not None:
            # Made 0600 before SQLite opens it; its -wal and -shm files inherit the mode.
            create_private_file(database)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            # As many pooled connections as the threadpool has threads (40): with fewer,
            # busy API workers opened and closed connections (and their PRAGMAs) per call.
            **({"pool_size": 40, "max_overflow": 10} if pool else {"poolclass": NullPool}),
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; issue it ourselves.
        event.listen(engine, "connect", _disable_pysqlite_begin)
        event.listen(engine, "begin", _emit_begin_immediate if immediate else _emit_begin)
        return engine
    if not pool:
        return create_engine(url, poolclass=NullPool)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _disable_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _emit_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def _emit_begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class WriteGate:
    """A lock every process writing one SQLite file takes before ``BEGIN IMMEDIATE``.

    SQLite makes a second writer poll with growing sleeps (1, 2, 5, 10 ... 100 ms) while
    another connection holds the write lock, and it is not fair: with two workers one
    group-committing writer could wait tens of milliseconds behind the other. A blocking
    ``flock`` on ``<database>.write-lock`` queues writers in the kernel instead, which
    wakes the next one as soon as the lock is released (benchmarks/README.md has the
    figures). On other databases, or where ``fcntl`` does not exist, it does nothing.

    A released ``flock`` goes to whoever asks first, and that is usually the writer that
    just released it and has its next batch ready. So a writer first takes a second lock,
    ``<database>.write-queue``, and lets go of it only once it holds the write lock: a
    writer waiting for the write lock holds the queue, and the one that just finished
    must wait behind it. Busy writers take turns.
    """

    def __init__(self, url: str) -> None:
        self._base: str | None = None
        self._queue: int | None = None
        self._write: int | None = None
        self._local = threading.Lock()
        if fcntl is not None and url.startswith("sqlite:///") and ":memory:" not in url:
            self._base = url.removeprefix("sqlite:///").split("?")[0]

    def __enter__(self) -> None:
        self._local.acquire()
        if self._base is None or fcntl is None:
            return
        try:
            if self._write is None or self._queue is None:
                flags = os.O_RDWR | os.O_CREAT
                queue = os.open(self._base + ".write-queue", flags, 0o600)
                try:
                    write = os.open(self._base + ".write-lock", flags, 0o600)
                except BaseException:
                    os.close(queue)
                    raise
                self._queue, self._write = queue, write
            fcntl.flock(self._queue, fcntl.LOCK_EX)
            try:
                fcntl.flock(self._write, fcntl.LOCK_EX)
            finally:
                fcntl.flock(self._queue, fcntl.LOCK_UN)
        except BaseException:
            self._local.release()
            raise

    def __exit__(self, *_: object) -> None:
        try:
            if self._write is not None and fcntl is not None:
                fcntl.flock(self._write, fcntl.LOCK_UN)
        finally:
            self._local.release()

    def close(self) -> None:
        """Close the lock files (the gate opens them again if used after this)."""
        with self._local:
            for fd in (self._queue, self._write):
                if fd is not None:
                    os.close(fd)
            self._queue = self._write = None


#: SQLSTATE classes that are about one statement, not the store: data exceptions,
#: integrity violations, deadlock or serialization victims, syntax or access rule errors.
_ONE_WRITE_SQLSTATE_CLASSES = ("22", "23", "40", "42")
#: SQLite result codes that are about the database as a whole.
_STORE_WIDE_SQLITE = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
)
#: DBAPI exception classes that are about one statement or its values when the driver
#: gives no code: psycopg refuses some values itself, before the server sees them (a NUL
#: character in a text parameter, a value it cannot adapt), with no SQLSTATE.
_ONE_WRITE_CLASSES = (DataError, IntegrityError, ProgrammingError, NotSupportedError)


def store_wide(exc: BaseException) -> bool:
    """Whether ``exc`` is about the store as a whole (unreachable, locked, full, read-only,
    out of pooled connections) rather than about one statement or its values.

    The group-commit writer uses it to tell a batch that must fail together from one bad
    write to leave out; the web layer to answer 503 instead of 500.
    """
    if isinstance(exc, PoolTimeoutError):  # no pooled connection came free
        return True
    if not isinstance(exc, DBAPIError):
        return False  # a bug or bad value in one write's own code
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    sqlite_code = getattr(exc.orig, "sqlite_errorname", None)
    if sqlite_code is not None:
        return str(sqlite_code).startswith(_STORE_WIDE_SQLITE)
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return not str(sqlstate).startswith(_ONE_WRITE_SQLSTATE_CLASSES)
    # No code to go by: an OperationalError (could not connect at all, the server went
    # away) or anything unknown counts as the store's, so a batch fails at once instead of
    # waiting for the same failure once per write.
    return not isinstance(exc, _ONE_WRITE_CLASSES)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit, and that move the grants
    version by themselves whenever they change what the grants snapshot holds."""
    # Imported here: the models the hook knows are built on this module's Base. Hooking
    # every factory here, rather than the ones a caller remembers, is the point: an
    # unhooked session writing grants would leave other workers deciding on stale ones.
    from ostiary.access import versions

    factory = sessionmaker(engine, expire_on_commit=False)
    versions.track(factory)
    return factory


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    with factory() as session, session.begin():
        yield session


def add_unique(session: Session, row: object, *, conflict: str) -> None:
    """Insert ``row`` in a savepoint; a uniqueness violation becomes ``Conflict(conflict)``
    and leaves the caller's transaction usable."""
    from ostiary.errors import Conflict

    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise Conflict(conflict) from exc


def purge_freed_space(engine: Engine) -> None:
    """After an erasure: rewrite SQLite's file so deleted and overwritten rows leave no
    bytes behind in free pages, then fold the write-ahead log in and truncate it.

    Outside a transaction (VACUUM cannot run in one); a no-op on PostgreSQL, whose dead
    row versions autovacuum reclaims (docs/people.md says what that means for erasure).
    """
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("VACUUM")
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        raw.close()
