"""Column values as JSON and back, decided by the column's type (not by the database).

What each model type becomes: ``UTCDateTime`` an ISO 8601 string with microseconds and
``+00:00``; ``Uuid`` its canonical string; ``LargeBinary`` base64; ``Enum`` its stored value;
``JSON`` itself; ``Double`` a float (``repr`` round-trips exactly); strings, integers and
booleans as they are. The same table definitions decode them on any database, and a value
of another JSON type than its column's is refused (SQLite would store a number in a text
column without a word, and a forged file must not leave rows the code cannot read).
"""

from __future__ import annotations

import base64
import enum
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Float, Integer, LargeBinary, String, Table, Uuid
from sqlalchemy import Enum as SAEnum

from ostiary.db import UTCDateTime

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _same(value: Any) -> Any:
    return value


def _typed(name: str, *kinds: type, then: Callable[[Any], Any] = _same) -> Callable[[Any], Any]:
    """A decoder that accepts only JSON values of ``kinds`` (never a boolean for a number)."""

    def decode(value: Any) -> Any:
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise ValueError(f"expected {name}, got a JSON {type(value).__name__}")
        try:
            return then(value)
        except (ValueError, TypeError):  # their messages quote the value: row data
            raise ValueError(f"expected {name}; the value is not one") from None

    return decode


def _aware(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("expected a timestamp with its UTC offset")
    return moment


def _base64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _enum_out(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _enum_in(column: Column[Any]) -> Callable[[Any], Any]:
    enum_class = getattr(column.type, "enum_class", None)
    if enum_class is None:
        return _typed("text", str)
    return _typed(f"one of {enum_class.__name__}", str, then=enum_class)


def _codec(column: Column[Any]) -> Codec:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return (lambda v: v.isoformat()), _typed("a timestamp", str, then=_aware)
    if isinstance(kind, Uuid):
        return str, _typed("a UUID", str, then=uuid.UUID)
    if isinstance(kind, LargeBinary):
        return (lambda v: base64.b64encode(v).decode()), _typed("base64", str, then=_base64)
    if isinstance(kind, SAEnum):
        return _enum_out, _enum_in(column)
    if isinstance(kind, Boolean):
        return _same, _typed("a boolean", bool)
    if isinstance(kind, Integer):
        return _same, _typed("an integer", int)
    if isinstance(kind, Float):
        return _same, _typed("a number", int, float)
    if isinstance(kind, String):
        return _same, _typed("text", str)
    if isinstance(kind, JSON):
        return _same, _same
    raise TypeError(f"column {column.table.name}.{column.name}: no backup codec for {kind!r}")


class TableCodec:
    """Rows of one table as JSON objects (column name to encoded value) and back."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.columns = [column.name for column in table.columns]
        self._codecs = {column.name: _codec(column) for column in table.columns}

    def encode(self, row: Any) -> dict[str, Any]:
        """A result row as a JSON-able dict; ``None`` stays ``null``."""
        mapping = row._mapping
        out: dict[str, Any] = {}
        for name in self.columns:
            value = mapping[name]
            out[name] = None if value is None else self._codecs[name][0](value)
        return out

    def decode(self, record: dict[str, Any]) -> dict[str, Any]:
        """Parameters for an insert; unknown or missing columns are refused."""
        if set(record) != set(self.columns):
            extra, missing = set(record) - set(self.columns), set(self.columns) - set(record)
            raise ValueError(
                f"table {self.table.name}: columns differ (extra {sorted(extra)}, "
                f"missing {sorted(missing)})"
            )
        decoded: dict[str, Any] = {}
        for name, value in record.items():
            try:
                decoded[name] = None if value is None else self._codecs[name][1](value)
            except ValueError as exc:
                raise ValueError(f"table {self.table.name} column {name}: {exc}") from None
        return decoded
