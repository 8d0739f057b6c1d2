"""Upgrading a database that holds data, from every earlier revision to head (SQLite and PostgreSQL).

For each revision NNNN: a database migrated to NNNN (copied from a per-revision template)
is filled by ``tests/upgrade_cases/rNNNN.py`` through the tables NNNN has, upgraded to head
with ``ostiary.migrate.upgrade``, and then every row written before must still be there with
the same values, the foreign keys must hold and match a fresh head schema, and the case's own
``check`` must pass, and so must ``crossed`` of every later revision's case (what that
migration does to rows that were there before it). See docs/upgrades.md.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, inspect, text

from ostiary.db import make_engine
from ostiary.migrate import MigrationFailed, alembic_config, upgrade
from tests.conftest import (
    PG_ADMIN_URL,
    create_postgres_database,
    drop_postgres_database,
    postgres_admin,
)
from tests.upgrade_cases import discover
from tests.upgrade_cases._rows import lost_or_changed, snapshot

SECRET_KEY = b"upgrade-path-secret-key-0123456789"
#: Base to head, as Alembic orders them.
REVISIONS = [
    rev.revision
    for rev in reversed(list(ScriptDirectory.from_config(alembic_config("")).walk_revisions()))
]
CASES = discover()


class Templates:
    """Databases at each revision, migrated once per test session.

    SQLite: one walk from base to head, copying the file at every revision; each test gets
    a copy. PostgreSQL: one database for this module, one schema per revision (reached via
    ``search_path``), since a ``DROP DATABASE`` per test costs a checkpoint (over a second).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sqlite: dict[str, Path] = {}
        self.pg_database: str | None = None
        self.admin: Engine | None = None
        self.head_constraints: dict[str, dict[str, list[tuple[Any, ...]]]] = {}

    def _pg_base_url(self) -> str:
        if self.pg_database is None:
            admin = postgres_admin()
            name, _ = create_postgres_database(admin, "ostiary_upgrade")
            self.admin, self.pg_database = admin, name
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{self.pg_database}"

    def _pg_schema(self, schema: str, revision: str) -> str:
        """A new schema of the module's database, migrated to ``revision``."""
        base = self._pg_base_url()
        engine = create_engine(base)
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        url = f"{base}?options=-csearch_path%3D{schema}"
        upgrade(url, revision, secret_key=SECRET_KEY)
        return url

    def _sqlite_chain(self) -> dict[str, Path]:
        if not self.sqlite:
            work = self.root / "work.db"
            for revision in REVISIONS:
                upgrade(f"sqlite:///{work}", revision, secret_key=SECRET_KEY)
                self.sqlite[revision] = self.root / f"r{revision}.db"
                shutil.copy(work, self.sqlite[revision])
        return self.sqlite

    def at(self, backend: str, revision: str, tmp_path: Path) -> str:
        """A private database at ``revision``."""
        if backend == "sqlite":
            target = tmp_path / f"r{revision}.db"
            shutil.copy(self._sqlite_chain()[revision], target)
            return f"sqlite:///{target}"
        return self._pg_schema(f"r{revision}_{uuid.uuid4().hex[:6]}", revision)

    def constraints_at_head(self, backend: str, tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
        """The foreign keys of a database migrated from empty to head."""
        if backend not in self.head_constraints:
            _, found, _ = _read(self.at(backend, REVISIONS[-1], tmp_path))
            self.head_constraints[backend] = found
        return self.head_constraints[backend]

    def close(self) -> None:
        """Drop the PostgreSQL database made here."""
        if self.admin is None or self.pg_database is None:
            return
        drop_postgres_database(self.admin, self.pg_database)
        self.admin.dispose()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    """The per-revision template databases of this test session."""
    found = Templates(tmp_path_factory.mktemp("upgrade-templates"))
    yield found
    found.close()


def _rewritten_after(revision: str) -> dict[str, set[str]]:
    """Columns the migrations after ``revision`` rewrite on purpose (their cases' ``REWRITES``)."""
    rewritten: dict[str, set[str]] = {}
    for later in REVISIONS[REVISIONS.index(revision) + 1 :]:
        for table, columns in getattr(CASES.get(later), "REWRITES", {}).items():
            rewritten.setdefault(table, set()).update(columns)
    return rewritten


def _constraints(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's constraints and indexes as the database states them, to compare schemas."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    if conn.dialect.name == "postgresql":
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        rows = conn.execute(
            text(
                "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)"
                " FROM pg_constraint c WHERE c.connamespace = current_schema()::regnamespace"
                " UNION ALL SELECT tablename, indexname, replace(indexdef, :prefix, '')"
                " FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1, 2, 3"
            ),
            {"prefix": f"{schema}."},
        )
        for table, name, definition in rows:
            found.setdefault(table, []).append((name, definition))
        return found
    inspector = inspect(conn)
    for table in inspector.get_table_names():
        found[table] = sorted(
            (
                tuple(fk["constrained_columns"]),
                fk["referred_table"],
                tuple(fk["referred_columns"]),
                (fk.get("options") or {}).get("ondelete"),
            )
            for fk in inspector.get_foreign_keys(table)
        )
    for table, name, sql in conn.exec_driver_sql(
        "SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " ORDER BY 1, 2"
    ):
        found.setdefault(table, []).append((name, " ".join(sql.split())))
    return found


def _read(url: str) -> tuple[dict[str, Any], dict[str, list[tuple[Any, ...]]], list[Any]]:
    """Every row, the constraints, and SQLite's list of rows whose parent is missing."""
    engine = make_engine(url, pool=False)
    try:
        with engine.connect() as conn:
            orphans: list[Any] = []
            if conn.dialect.name == "sqlite":
                orphans = list(conn.exec_driver_sql("PRAGMA foreign_key_check"))
            return snapshot(conn), _constraints(conn), orphans
    finally:
        engine.dispose()


@pytest.mark.parametrize("revision", REVISIONS)
def test_rows_written_at_a_revision_survive_the_upgrade_to_head(
    backend: str, revision: str, templates: Templates, tmp_path: Path
) -> None:
    case = CASES.get(revision)
    if case is None:
        pytest.fail(f"no tests/upgrade_cases/r{revision}.py", pytrace=False)
    url = templates.at(backend, revision, tmp_path)
    engine = make_engine(url, pool=False)
    with engine.begin() as conn:
        case.seed(conn)
    engine.dispose()
    before, _, _ = _read(url)
    assert sum(len(rows) for rows in before.values()) > 0

    upgrade(url, secret_key=SECRET_KEY)

    after, constraints, orphans = _read(url)
    problems = lost_or_changed(before, after, _rewritten_after(revision))
    assert not problems, "\n".join(problems)
    assert orphans == []
    assert constraints == templates.constraints_at_head(backend, tmp_path)
    engine = make_engine(url, pool=False)
    with engine.begin() as conn:
        case.check(conn)
        for later in REVISIONS[REVISIONS.index(revision) + 1 :]:
            crossed = getattr(CASES.get(later), "crossed", None)
            if crossed is not None:
                crossed(conn)
    engine.dispose()


def test_every_migration_has_an_upgrade_case() -> None:
    """A new migration in versions/ fails here until tests/upgrade_cases/ has its case."""
    missing = [f"tests/upgrade_cases/r{r}.py" for r in REVISIONS if r not in CASES]
    assert not missing, f"add an upgrade case (docs/upgrades.md): {missing}"
    stray = sorted(set(CASES) - set(REVISIONS))
    assert not stray, f"upgrade cases for revisions that do not exist: {stray}"
    for revision, case in CASES.items():
        assert callable(getattr(case, "seed", None)), f"r{revision}.py has no seed(conn)"
        assert callable(getattr(case, "check", None)), f"r{revision}.py has no check(conn)"


def test_an_upgrade_that_would_leave_rows_without_parent_fails_and_commits_nothing(
    templates: Templates, tmp_path: Path
) -> None:
    """SQLite migrates with foreign keys off, so it checks them itself before committing."""
    start = REVISIONS[-2]
    url = templates.at("sqlite", start, tmp_path)
    raw = sqlite3.connect(url.removeprefix("sqlite:///"))  # foreign keys are off by default
    with raw:
        raw.execute(
            "INSERT INTO console_sessions (token_hash, user_id, csrf_token, created_at,"
            " expires_at, must_change_password) VALUES ('t', :nobody, 'c', '2026-01-01',"
            " '2026-01-02', 0)",
            {"nobody": uuid.uuid4().hex},
        )
    raw.close()

    with pytest.raises(
        MigrationFailed, match=r"1 rows have no parent row \(console_sessions rowid"
    ):
        upgrade(url, secret_key=SECRET_KEY)

    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == start
        assert "scim_tokens" not in inspect(conn).get_table_names()
    engine.dispose()
