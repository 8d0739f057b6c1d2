"""Text from requests made safe to store: no control characters, no more than fits.

It lives next to ``clock`` and ``crypto``, below every domain: the audit trail and the
runtime's message log both store text a caller chose (paths, header values, user names),
and neither may import the other. PostgreSQL refuses a NUL character in any text column
and a value longer than a ``VARCHAR(n)``; SQLite stores both, so without cleaning the same
request is logged on one backend and lost on the other.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Table

#: C0 controls except tab and newline, DEL, and the C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: Lone surrogates (from JSON escapes like ``"\\ud800"``) cannot be encoded as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(value: str, limit: int | None = None) -> str:
    """``value`` without control characters (tab and newline stay), lone surrogates
    replaced by U+FFFD, cut to ``limit`` characters (a column's length)."""
    if not value.isprintable():  # the common case, printable text, skips both scans
        value = _SURROGATE.sub("\ufffd", _CONTROL.sub("", value))
    return value if limit is None or len(value) <= limit else value[:limit]


def clean_optional(value: str | None, limit: int | None = None) -> str | None:
    """``clean`` for a value that may be missing."""
    return None if value is None else clean(value, limit)


def clean_json(value: Any) -> Any:
    """``value`` with every string in it (keys too) cleaned, for JSON columns: lengths are
    not limited there, and values that are not strings stay as they are."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(k) if isinstance(k, str) else k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(item) for item in value]
    return value


def column_length(table: Table, column: str) -> int | None:
    """The declared length of a ``String(n)`` column of ``table`` (``None`` if unlimited)."""
    length = getattr(table.c[column].type, "length", None)
    return int(length) if length is not None else None
