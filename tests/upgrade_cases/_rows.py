"""Rows for the upgrade cases, written and read through the schema *reflected* at a revision.

Nothing here imports the ORM models to write: a database at revision 0004 has the tables
of 0004, and the current models describe head. ``fill`` puts ``ROWS`` rows into every table
the database has (parents first, foreign keys pointing at real parent rows, every nullable
column set too, so a column that loses its value shows). ``snapshot`` and ``lost_or_changed``
compare what was there before the upgrade with what is there after it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, MetaData, Table

from ostiary.models import Base

#: Rows per table: enough for composite keys to differ, few enough to stay fast.
ROWS = 3
START = datetime(2026, 1, 5, 9, 30, 15, 123456, tzinfo=UTC)
#: Tables whose rows the application keys by a fixed set of values.
FIXED_KEYS: dict[str, list[dict[str, Any]]] = {
    "password_policies": [{"kind": "person"}, {"kind": "technical"}],
}
#: Values the application gives meaning to (the rest are generated from the column type).
MEANINGFUL: dict[tuple[str, str], Callable[[int], Any]] = {
    ("users", "user_id"): lambda i: f"{'PT'[i % 2]}{i + 1:06d}",
    ("users", "kind"): lambda i: ("person", "technical")[i % 2],
    ("users", "status"): lambda i: ("active", "active", "locked")[i % 3],
    ("users", "email"): lambda i: f"User.{i}@Example.org",
    ("users", "email_normalized"): lambda i: f"user.{i}@example.org",
    ("users", "password_hash"): lambda i: f"$argon2id$v=19$m=65536,t=3,p=4$salt{i}$hash{i}",
    ("subaccounts", "subdomain"): lambda i: f"acme-{i}",
    ("members", "roles"): lambda i: ["Viewer", f"Role-{i}"],
    ("invitations", "roles"): lambda i: ["Sender"],
    ("flows", "auth"): lambda i: {"basic": True, "oauth": i % 2 == 0},
    ("oauth_clients", "jwks"): lambda i: {"keys": [{"kty": "RSA", "kid": f"key-{i}"}]},
    ("oauth_client_secrets", "expires_at"): lambda i: None,
    ("signing_keys", "public_jwk"): lambda i: {"kty": "OKP", "crv": "Ed25519", "x": f"x{i}"},
    ("messages", "payload"): lambda i: bytes(range(256)) * (i + 1),
}


def ident(table: str, i: int) -> uuid.UUID:
    """A stable UUID for row ``i`` of ``table`` (the same in seed and check)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"ostiary-upgrade/{table}/{i}")


_REFLECTED: dict[tuple[str, str | None], MetaData] = {}


def reflect(conn: Connection) -> MetaData:
    """The schema the database has now (not the current models).

    Kept per backend and revision: every database at one revision has the same tables, and
    reflecting 40-odd tables on PostgreSQL is most of this test's time otherwise. (Whether an
    upgraded schema equals a fresh one is checked on its own, in tests/test_upgrade_path.py.)
    """
    version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    key = (conn.dialect.name, version)
    if key not in _REFLECTED:
        metadata = MetaData()
        metadata.reflect(conn)
        metadata.remove(metadata.tables["alembic_version"])
        _REFLECTED[key] = metadata
    return _REFLECTED[key]


def _enum_values() -> dict[tuple[str, str], list[str]]:
    """Allowed values of the enum columns (stored as plain strings, so reflection loses them)."""
    found: dict[tuple[str, str], list[str]] = {}
    for table in Base.metadata.tables.values():
        for column in table.columns:
            enums = getattr(column.type, "enums", None)
            if enums:
                found[(table.name, column.name)] = list(enums)
    return found


ENUMS = _enum_values()


def _is_uuid(conn: Connection, column: sa.Column[Any]) -> bool:
    if isinstance(column.type, sa.Uuid):
        return True
    # SQLite keeps sa.Uuid as CHAR(32): reflection sees only the CHAR.
    return isinstance(column.type, sa.CHAR) and column.type.length == 32


def stored(conn: Connection, value: Any) -> Any:
    """A Python value as the backend stores it for a reflected column."""
    if conn.dialect.name == "sqlite":
        if isinstance(value, uuid.UUID):
            return value.hex
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _value(conn: Connection, table: Table, column: sa.Column[Any], i: int) -> Any:
    key = (table.name, column.name)
    if key in MEANINGFUL:
        return MEANINGFUL[key](i)
    if key in ENUMS:
        return ENUMS[key][i % len(ENUMS[key])]
    kind = column.type
    if _is_uuid(conn, column):
        return ident(f"{table.name}.{column.name}", i)
    if isinstance(kind, sa.DateTime):
        return START + timedelta(days=i, minutes=len(column.name))
    if isinstance(kind, sa.Boolean):
        return i % 2 == 0
    if isinstance(kind, sa.Integer):
        return i + 7
    if isinstance(kind, (sa.Float, sa.Numeric)):
        return 1.25 + i
    if isinstance(kind, sa.JSON):
        return {"n": i, "text": "zwölf ✓"}
    if isinstance(kind, sa.LargeBinary):
        return bytes([i, 0, 255])
    text = f"{i}-{table.name}.{column.name} Grüße ✓"
    length = getattr(kind, "length", None)
    return text[:length] if length else text


def fill(conn: Connection, *, skip: Iterable[str] = ()) -> MetaData:
    """``ROWS`` rows in every table of the reflected schema, parents before children."""
    metadata = reflect(conn)
    written: dict[str, list[dict[str, Any]]] = {}
    for table in metadata.sorted_tables:
        if table.name in skip:
            continue
        if table.name == "audit_events" and "content_mac" not in table.c:
            written[table.name] = legacy_audit_chain(conn, table)
            continue
        written[table.name] = _fill_table(conn, table, written)
    return metadata


def _fill_table(
    conn: Connection, table: Table, written: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    fixed = FIXED_KEYS.get(table.name)
    rows: list[dict[str, Any]] = []
    for i in range(len(fixed) if fixed else ROWS):
        row: dict[str, Any] = dict(fixed[i]) if fixed else {}
        for column in table.columns:
            if column.name in row:
                continue
            if column.primary_key and column.autoincrement is not False and _serial(column):
                continue  # the database numbers it (a PostgreSQL sequence must advance)
            parent = _parent(column)
            if parent is not None:
                parents = written.get(parent[0], [])
                if parent[0] == table.name:  # self-reference: the previous row, or none
                    row[column.name] = rows[i - 1][parent[1]] if i else None
                else:
                    row[column.name] = parents[i % len(parents)][parent[1]] if parents else None
                continue
            if column.name == "id" and _is_uuid(conn, column):
                row[column.name] = ident(table.name, i)
                continue
            row[column.name] = _value(conn, table, column, i)
        result = conn.execute(table.insert().values({k: stored(conn, v) for k, v in row.items()}))
        for column, value in zip(
            table.primary_key.columns, result.inserted_primary_key or (), strict=True
        ):
            row[column.name] = value
        rows.append(row)
    return rows


def _serial(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, sa.Integer) and len(column.table.primary_key.columns) == 1


def _parent(column: sa.Column[Any]) -> tuple[str, str] | None:
    for fk in column.foreign_keys:
        return fk.column.table.name, fk.column.name
    return None


def legacy_audit_chain(conn: Connection, table: Table) -> list[dict[str, Any]]:
    """Audit events as releases before 0010 wrote them: an intact, unkeyed SHA-256 chain."""
    prev = "0" * 64
    rows: list[dict[str, Any]] = []
    for n in range(ROWS):
        at = START + timedelta(minutes=n)
        row: dict[str, Any] = {
            "occurred_at": at,
            "actor": "P000001",
            "action": "subaccount:created",
            "subdomain": f"acme-{n}",
            "target": f"acme-{n}",
            "detail": {"after": {"n": n, "name": "Zürich ✓"}},
        }
        canonical = json.dumps(
            [
                prev,
                at.isoformat(),
                *(row[k] for k in ("actor", "action", "subdomain", "target", "detail")),
            ],
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        row |= {"prev_hash": prev, "hash": digest}
        result = conn.execute(table.insert().values({k: stored(conn, v) for k, v in row.items()}))
        row["id"] = (result.inserted_primary_key or (None,))[0]
        rows.append(row)
        prev = digest
    return rows


Snapshot = dict[str, dict[tuple[Any, ...], dict[str, Any]]]


def snapshot(conn: Connection) -> Snapshot:
    """Every row of every table, by primary key."""
    found: Snapshot = {}
    for table in reflect(conn).sorted_tables:
        keys = [c.name for c in table.primary_key.columns]
        found[table.name] = {
            tuple(row[k] for k in keys): dict(row)
            for row in conn.execute(sa.select(table)).mappings()
        }
    return found


def lost_or_changed(before: Snapshot, after: Snapshot, rewritten: dict[str, set[str]]) -> list[str]:
    """What of ``before`` is missing or different in ``after`` (``rewritten`` columns aside)."""
    problems: list[str] = []
    for name, rows in before.items():
        if name not in after:
            problems.append(f"table {name} is gone ({len(rows)} rows)")
            continue
        for key, row in rows.items():
            now = after[name].get(key)
            if now is None:
                problems.append(f"{name} {key}: row lost")
                continue
            for column, value in row.items():
                if column in rewritten.get(name, set()):
                    continue
                if column not in now:
                    problems.append(f"{name}.{column} is gone")
                    continue
                if now[column] != value:
                    problems.append(f"{name} {key}.{column}: {value!r} became {now[column]!r}")
    return problems
