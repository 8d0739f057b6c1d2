"""Small assertions the upgrade cases share, on the database at head (plain SQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text


def rows(conn: Connection, sql: str, **params: Any) -> list[Any]:
    """The rows of a query."""
    return list(conn.execute(text(sql), params))


def count(conn: Connection, table: str) -> int:
    """How many rows ``table`` has."""
    return int(conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())


def all_null(conn: Connection, table: str, *columns: str) -> None:
    """Columns a migration added hold nothing for rows that were there before it."""
    for column in columns:
        found = rows(conn, f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL')
        assert found == [], f"{table}.{column} of old rows: {found}"
