"""Column values as JSON and back, decided by the column's type (not by the database).

What each model type becomes: ``UTCDateTime`` an ISO 8601 string with microseconds and
``+00:00``; ``Uuid`` its canonical string; ``LargeBinary`` base64; ``Enum`` its stored value;
``JSON`` itself; ``Double`` a float (``repr`` round-trips exactly); strings, integers and
booleans as they are. The same table definitions decode them on any database.
"""

from __future__ import annotations

import base64
import enum
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Column, LargeBinary, Table, Uuid
from sqlalchemy import Enum as SAEnum

from ostiary.db import UTCDateTime

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _same(value: Any) -> Any:
    return value


def _enum_out(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _enum_in(column: Column[Any]) -> Callable[[Any], Any]:
    enum_class = getattr(column.type, "enum_class", None)
    if enum_class is None:
        return _same
    return lambda value: enum_class(value)


def _codec(column: Column[Any]) -> Codec:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return (lambda v: v.isoformat()), datetime.fromisoformat
    if isinstance(kind, Uuid):
        return str, uuid.UUID
    if isinstance(kind, LargeBinary):
        return (lambda v: base64.b64encode(v).decode()), base64.b64decode
    if isinstance(kind, SAEnum):
        return _enum_out, _enum_in(column)
    return _same, _same


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
        return {
            name: None if value is None else self._codecs[name][1](value)
            for name, value in record.items()
        }
