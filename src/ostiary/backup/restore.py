"""``ostiary restore``: a backup file into an empty database, all or nothing.

In order, and refusing at the first problem with the reason: the file is read and every
part checked against its SHA-256 (nothing is loaded before); its schema revision must be
this code's (a newer one is refused, an older one is restored by the release that made it
and then upgraded); the secret key must be the one the backup was made with. Then, under
the migration lock (so a server starting now waits instead of migrating or bootstrapping
in between): the database must hold no rows, the schema is migrated, every table is loaded
in one transaction with PostgreSQL's sequences moved past the loaded IDs, and the sealed
signing and CA keys must open with the key, or the transaction is rolled back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Insert,
    Integer,
    MetaData,
    Table,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from ostiary.backup.archive import Reader
from ostiary.backup.codec import TableCodec
from ostiary.backup.errors import BackupError
from ostiary.backup.keycheck import keys_open, same_key
from ostiary.db import make_engine
from ostiary.files import create_private_file
from ostiary.migrate import _locked, alembic_config  # the lock migrations take, on purpose
from ostiary.models import Base

_BATCH = 500


@dataclass(frozen=True)
class RestoreSummary:
    """What ``restore`` loaded."""

    revision: str
    tables: dict[str, int]
    key_file: Path | None

    @property
    def rows(self) -> int:
        """Rows over all tables."""
        return sum(self.tables.values())


def configured_key(secret_key: str | None, data_dir: Path) -> bytes | None:
    """The key this installation would use, without generating one."""
    if secret_key:
        return secret_key.encode()
    path = data_dir / "secret_key"
    return path.read_text().strip().encode() if path.is_file() else None


def check_revision(url: str, revision: str) -> None:
    """Refuse a backup from another schema revision than this code's newest."""
    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_current_head()
    if revision == head:
        return
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", revision):  # Alembic asserts on "" or "@"
        raise BackupError(f"the backup's schema revision {revision[:80]!r} is not a revision")
    try:
        known = script.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise BackupError(
            f"the backup is at schema revision {revision}, which this Ostiary does not know "
            f"(its newest is {head}): it was made by a newer release; restore it with that "
            "release or a later one"
        )
    raise BackupError(
        f"the backup is at schema revision {revision}, older than this Ostiary's {head}: "
        "restore it with the release that made it, then upgrade (ostiary serve migrates)"
    )


def _choose_key(reader: Reader, configured: bytes | None) -> tuple[bytes, bool]:
    """The key to restore with, and whether it must be written to the data directory."""
    check = str(reader.manifest.get("key_check", ""))
    if reader.key_included:
        included = reader.secret_key()
        if not included or not same_key(included, check):
            raise BackupError("the secret key in the backup does not match its manifest")
        if configured is not None and configured != included:
            raise BackupError(
                "the backup holds its secret key, and the configured one (OSTIARY_SECRET_KEY "
                "or the key file in the data directory) is another; unset or remove it"
            )
        return included, configured is None
    if configured is None:
        raise BackupError(
            "the backup does not hold the secret key: set OSTIARY_SECRET_KEY to the key of "
            "the installation it was made from (or put its key file into the data directory)"
        )
    if not same_key(configured, check):
        raise BackupError(
            "the configured secret key is not the one this backup was made with: keyed "
            "hashes and encrypted signing keys would be unusable; set OSTIARY_SECRET_KEY "
            "to the original key"
        )
    return configured, False


def _refuse_if_not_empty(connection: Connection) -> None:
    names = set(inspect(connection).get_table_names())
    ours = {t.name for t in Base.metadata.sorted_tables}
    if foreign := sorted(names - ours - {"alembic_version"}):
        raise BackupError(
            f"the target database is not empty: it holds tables {', '.join(foreign[:5])}; "
            "restore into an empty database"
        )
    for table in Base.metadata.sorted_tables:
        if (
            table.name in names
            and connection.execute(select(1).select_from(table).limit(1)).first()
        ):
            raise BackupError(
                f"the target database is not empty (table {table.name} has rows); restore "
                "only into an empty data directory or database"
            )


def _hold_empty(connection: Connection) -> None:
    """Again, inside the load's transaction: a server already running on the target may
    have written (its scheduler lease, say) since the first look. PostgreSQL: the tables
    are locked against other writers until the commit; SQLite: a write committed after this
    read makes the first insert fail (the snapshot is stale), so nothing is merged."""
    if connection.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        connection.execute(text(f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE"))
    _refuse_if_not_empty(connection)


def _parents_first(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a table that refers to itself (a user's owner), each after the one it names."""
    refs = [
        (fk.parent.name, fk.column.name) for fk in table.foreign_keys if fk.column.table is table
    ]
    if not refs:
        return rows
    placed: set[tuple[str, Any]] = set()
    ordered: list[dict[str, Any]] = []
    waiting = rows
    while waiting:
        later = []
        for row in waiting:
            if all(
                row[col] is None or (target, row[col]) in placed or row[col] == row[target]
                for col, target in refs
            ):
                ordered.append(row)
                placed.update((target, row[target]) for _, target in refs)
            else:
                later.append(row)
        if len(later) == len(waiting):  # a cycle or a dangling reference: let the FK decide
            ordered.extend(later)
            break
        waiting = later
    return ordered


def _batches(items: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert(table: Table) -> Insert:
    """An insert of whole rows; ``None`` in a JSON column is SQL ``NULL`` (not JSON
    ``null``), as the ORM leaves a column it was given no value for."""
    if not any(isinstance(c.type, JSON) and c.nullable for c in table.columns):
        return table.insert()
    # The same table with NULL-keeping JSON columns, only to build this insert.
    twin = Table(
        table.name,
        MetaData(),
        *(
            Column(c.name, JSON(none_as_null=True) if isinstance(c.type, JSON) else c.type)
            for c in table.columns
        ),
    )
    return twin.insert()


def _load(connection: Connection, reader: Reader) -> dict[str, int]:
    counts: dict[str, int] = {}
    tables = Base.metadata.tables
    for part, records in reader.records():
        table = tables.get(part.table or "")
        if table is None:
            raise BackupError(f"the backup holds a table this Ostiary does not have: {part.table}")
        codec = TableCodec(table)
        decoded: Iterator[dict[str, Any]] = (codec.decode(r) for r in records)
        if any(fk.column.table is table for fk in table.foreign_keys):
            decoded = iter(_parents_first(table, list(decoded)))
        counts[table.name] = 0
        statement = _insert(table)
        for batch in _batches(decoded):
            connection.execute(statement, batch)
            counts[table.name] += len(batch)
    if missing := sorted(set(tables) - set(counts)):
        raise BackupError(f"the backup lacks tables {', '.join(missing)}")
    return counts


def _reset_sequences(connection: Connection) -> None:
    """Move PostgreSQL's sequences past the IDs just loaded (inserts gave them explicitly)."""
    if connection.dialect.name != "postgresql":
        return
    for table in Base.metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer):
            continue
        sequence = connection.execute(
            text("SELECT pg_get_serial_sequence(:table, :column)"),
            {"table": f'"{table.name}"', "column": keys[0].name},
        ).scalar()
        if sequence is not None:
            highest = connection.execute(select(func.max(keys[0]))).scalar() or 0
            connection.execute(
                text("SELECT setval(:seq, :next, false)"), {"seq": sequence, "next": highest + 1}
            )


def restore(*, url: str, source: Path, secret_key: str | None, data_dir: Path) -> RestoreSummary:
    """Restore ``source`` into the empty database at ``url``; see the module docstring."""
    reader = Reader(source)
    check_revision(url, reader.revision)
    reader.verify()
    key, write_key = _choose_key(reader, configured_key(secret_key, data_dir))
    key_file = data_dir / "secret_key" if write_key else None
    if key_file is not None:
        # Written first, so a server starting meanwhile uses it instead of generating one.
        if not create_private_file(key_file):
            raise BackupError(f"{key_file} appeared meanwhile; restore again")
        key_file.write_bytes(key + b"\n")
    engine = make_engine(url, pool=False)
    try:
        with _locked(engine) as connection:
            _refuse_if_not_empty(connection)
            connection.rollback()
            config = alembic_config(url)
            config.attributes["connection"] = connection
            config.attributes["secret_key"] = key
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                raise BackupError(f"the target database's schema: {exc}") from exc
            connection.commit()
            try:
                with connection.begin():
                    if connection.dialect.name == "sqlite":
                        connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
                    _hold_empty(connection)
                    counts = _load(connection, reader)
                    _reset_sequences(connection)
                    keys_open(connection, key, then="nothing was restored")
            except (SQLAlchemyError, ValueError, TypeError) as exc:
                # Only the driver's first line: the statement's parameters are row data.
                reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                raise BackupError(
                    f"loading the backup failed, nothing was restored: {reason}"
                ) from None
    except BaseException:
        if key_file is not None:
            key_file.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()
    return RestoreSummary(reader.revision, counts, key_file)
