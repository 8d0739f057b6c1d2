"""Schema migrations under a lock, so several processes starting at once are safe.

PostgreSQL: a session-level advisory lock. SQLite: an exclusive ``flock`` on a file
beside the database (SQLite is always on one machine).

All pending migrations run in one transaction: a failed upgrade leaves the database at the
revision it started from. On SQLite they run with foreign keys off. Alembic's batch mode
rebuilds a table to alter it (copy, ``DROP TABLE``, rename), and with foreign keys on that
``DROP`` fires every ``ON DELETE CASCADE`` / ``SET NULL`` pointing at the table: 0002
rebuilding ``users`` deleted every session, one-time token and password history row.
``PRAGMA foreign_key_check`` then runs before the commit, and any row whose parent is
missing fails the upgrade instead of being committed. See docs/upgrades.md.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from ostiary.db import make_engine
from ostiary.files import create_private_file, private_dir

#: An arbitrary, fixed key for ``pg_advisory_lock``.
_PG_LOCK_KEY = 7_407_421_873


class MigrationFailed(RuntimeError):
    """The migrations ran but left the data inconsistent; nothing was committed."""


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        lock_path = Path(f"{database}.migrate.lock") if database not in {"", ":memory:"} else None
        if lock_path is not None:
            create_private_file(lock_path)
        with _file_lock(lock_path), engine.connect() as connection:
            yield connection
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
        connection.commit()
        try:
            yield connection
        finally:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
            connection.commit()


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(url: str, revision: str = "head", *, secret_key: bytes | None = None) -> None:
    """Bring the database at ``url`` to ``revision``, waiting for any other migrator.

    ``secret_key`` is for migrations that re-key data (0010 re-chains the audit trail)."""
    if make_url(url).get_backend_name() == "sqlite":
        database = make_url(url).database
        if database and database != ":memory:":
            private_dir(Path(database).parent)
    engine = make_engine(url, pool=False)
    try:
        with _locked(engine) as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            config.attributes["secret_key"] = secret_key
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                _sqlite_foreign_keys(connection, on=False)
            try:
                # Alembic joins a transaction that is already open instead of starting its own.
                with connection.begin():
                    command.upgrade(config, revision)
                    if sqlite:
                        _fail_on_orphans(connection)
            finally:
                if sqlite:
                    _sqlite_foreign_keys(connection, on=True)
    finally:
        engine.dispose()


def _sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    """Switch enforcement; SQLite ignores this pragma inside a transaction, so it goes
    straight to the driver (SQLAlchemy would open one first)."""
    if connection.in_transaction():
        raise RuntimeError("PRAGMA foreign_keys has no effect inside a transaction")
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    state = driver.execute("PRAGMA foreign_keys").fetchone()
    if state is None or bool(state[0]) != on:
        raise RuntimeError(f"could not switch SQLite foreign keys {'on' if on else 'off'}")


def _fail_on_orphans(connection: Connection) -> None:
    """Raise (so the transaction rolls back) if any row's parent row is missing."""
    orphans = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if orphans:
        shown = ", ".join(f"{t} rowid {r} -> {p}" for t, r, p, _ in orphans[:10])
        raise MigrationFailed(
            f"after migrating, {len(orphans)} rows have no parent row ({shown}); nothing was"
            " committed: repair or delete those rows, then upgrade again"
        )


def check(url: str) -> None:
    """Raise if the models and the migrations differ (``alembic check``)."""
    command.check(alembic_config(url))
