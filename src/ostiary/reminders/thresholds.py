"""``OSTIARY_EXPIRY_REMINDER_DAYS``: parsed without importing any domain (settings use it)."""

from __future__ import annotations


def parse_thresholds(text: str) -> tuple[int, ...]:
    """``"30,7,1"`` as (30, 7, 1): distinct positive days, farthest first."""
    days: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 3650:
            raise ValueError(
                f"OSTIARY_EXPIRY_REMINDER_DAYS: {part!r} is not a number of days "
                "between 1 and 3650; use e.g. 30,7,1"
            )
        days.add(int(part))
    return tuple(sorted(days, reverse=True))
