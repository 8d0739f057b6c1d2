"""``ostiary backup``: every table read in one transaction, written as a backup file.

SQLite (WAL): one read transaction sees one snapshot of the database while the server
keeps writing; nothing waits for it. PostgreSQL: ``SERIALIZABLE READ ONLY DEFERRABLE``
waits, if it must, for a moment when the snapshot cannot be part of a serialization
anomaly and then reads without taking locks that writers wait for. Either way the file is a
transactionally consistent copy: every message acknowledged before the backup began is in
it, and nothing in it is half of a transaction.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from sqlalchemy import Connection, Table, inspect, select, text

from ostiary.backup.archive import Writer
from ostiary.backup.codec import TableCodec
from ostiary.backup.errors import BackupError
from ostiary.backup.keycheck import key_check, keys_open
from ostiary.db import make_engine
from ostiary.files import sqlite_database_path
from ostiary.models import Base

#: Rows fetched from the database at a time (payloads can be large).
_BATCH = 500


@dataclass(frozen=True)
class BackupSummary:
    """What ``make_backup`` wrote."""

    path: Path
    revision: str
    tables: dict[str, int]
    key_included: bool

    @property
    def rows(self) -> int:
        """Rows over all tables."""
        return sum(self.tables.values())


def tables() -> list[Table]:
    """The tables of the code's schema, parents before children."""
    return list(Base.metadata.sorted_tables)


def _lines(connection: Connection, table: Table) -> Iterator[str]:
    codec = TableCodec(table)
    order = list(table.primary_key.columns) or list(table.columns)
    result = connection.execution_options(stream_results=True, yield_per=_BATCH).execute(
        select(table).order_by(*order)
    )
    for row in result:
        yield json.dumps(codec.encode(row), separators=(",", ":"), ensure_ascii=False) + "\n"


def _revision(connection: Connection) -> str:
    if not inspect(connection).has_table("alembic_version"):
        raise BackupError("the database has no schema yet (run `ostiary serve` or `db upgrade`)")
    revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if revision is None:
        raise BackupError("the database has no Alembic revision")
    return str(revision)


def _begin_snapshot(connection: Connection) -> Connection:
    if connection.dialect.name == "postgresql":
        connection = connection.execution_options(
            isolation_level="SERIALIZABLE", postgresql_readonly=True, postgresql_deferrable=True
        )
    connection.begin()
    return connection


def make_backup(
    *, url: str, target: Path, secret_key: bytes, include_secret_key: bool
) -> BackupSummary:
    """Write a consistent backup of the database at ``url`` to ``target`` (created 0600)."""
    if target.exists():
        raise BackupError(f"{target} exists already; choose a new file name")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory")
    database = sqlite_database_path(url)
    if database is not None and not database.is_file():
        raise BackupError(f"there is no database at {database} (check OSTIARY_DATA_DIR)")
    engine = make_engine(url, pool=False)
    counts: dict[str, int] = {}
    try:
        with (
            tempfile.TemporaryDirectory(prefix=".ostiary-backup-", dir=target.parent) as work,
            engine.connect() as plain,
        ):
            connection = _begin_snapshot(plain)
            revision = _revision(connection)
            keys_open(
                connection,
                secret_key,
                then="run the backup with the server's OSTIARY_SECRET_KEY (or its key file)",
            )
            writer = Writer(Path(work))
            if include_secret_key:
                writer.secret_key_part(secret_key)
            known = set(inspect(connection).get_table_names())
            missing = [t.name for t in tables() if t.name not in known]
            if missing:
                raise BackupError(
                    f"the database lacks tables {', '.join(missing)}: it is not at this "
                    "Ostiary's schema (run `ostiary db upgrade` first)"
                )
            for table in tables():
                part = writer.table_part(
                    table.name, [c.name for c in table.columns], _lines(connection, table)
                )
                counts[table.name] = part.rows or 0
            connection.rollback()  # read only: nothing to commit
            writer.finish(
                target,
                {
                    "created_at": datetime.now(UTC).isoformat(),
                    "ostiary_version": _version(),
                    "alembic_revision": revision,
                    "source_dialect": engine.dialect.name,
                    "secret_key_included": include_secret_key,
                    "key_check": key_check(secret_key),
                    "tables": counts,
                },
            )
    finally:
        engine.dispose()
    return BackupSummary(target, revision, counts, include_secret_key)


def _version() -> str:
    try:
        return metadata.version("ostiary")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "unknown"
