"""Small SVG charts: a credential expiry timeline, message volume per sender and per flow.

Pure functions from plain data to SVG markup. Every text from outside (user IDs, names,
credential IDs) is escaped here, once; colours are presentation attributes, not ``style``,
so the console's Content-Security-Policy (``default-src 'self'``) allows them inline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape

__all__ = ["ExpiryMark", "VolumeSeries", "expiry_timeline", "flow_volume", "message_volume"]

WIDTH = 720
LABEL_WIDTH = 150
LANE = 26
TOP = 30
#: Urgency colours (days left, colour), nearest first; readable on white and in greyscale.
URGENCY = ((7, "#b3261e"), (30, "#b26a00"), (None, "#1f5fa8"))
BAR_COLOUR = "#1f5fa8"


@dataclass(frozen=True)
class ExpiryMark:
    """One credential ending: on whose lane, which credential, when."""

    lane: str
    credential_id: str
    kind: str
    expires_at: datetime


@dataclass(frozen=True)
class VolumeSeries:
    """One sender's message counts, one per day of the chart."""

    label: str
    counts: tuple[int, ...]


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _colour(days_left: float) -> str:
    for limit, colour in URGENCY:
        if limit is None or days_left <= limit:
            return colour
    raise AssertionError("URGENCY ends with a catch-all")  # pragma: no cover


def _open(element_id: str, title: str, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{_e(element_id)}" class="picture" '
        f'role="img" aria-labelledby="{_e(element_id)}-title" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" '
        'font-size="12">',
        f'<title id="{_e(element_id)}-title">{_e(title)}</title>',
    ]


def expiry_timeline(
    marks: Sequence[ExpiryMark],
    *,
    now: datetime,
    days: int = 90,
    element_id: str = "expiry-timeline",
) -> str:
    """A lane per technical user, a dot per credential at its end within ``days`` of ``now``.

    Marks outside ``(now, now + days]`` are left out: the picture shows what is coming.
    """
    horizon = now + timedelta(days=days)
    shown = sorted(
        (m for m in marks if now < m.expires_at <= horizon),
        key=lambda m: (m.lane, m.expires_at, m.credential_id),
    )
    lanes = sorted({m.lane for m in shown})
    count = len(shown)
    title = (
        f"{count} credential{'s' if count != 1 else ''} expire in the next {days} days"
        if count
        else f"No credential expires in the next {days} days"
    )
    height = TOP + LANE * max(len(lanes), 1) + 30
    plot = WIDTH - LABEL_WIDTH - 45  # room for the last date label
    parts = _open(element_id, title, height)
    axis_y = TOP + LANE * max(len(lanes), 1)
    for step in range(0, days + 1, 30 if days >= 60 else max(days // 3, 1)):
        x = LABEL_WIDTH + plot * step / days
        label = (now + timedelta(days=step)).date().isoformat()
        parts.append(
            f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{axis_y}" stroke="#d0d4da"/>'
        )
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle" '
            f'fill="#4a5260">{_e(label)}</text>'
        )
    if not shown:
        parts.append(
            f'<text x="{LABEL_WIDTH + plot / 2:.1f}" y="{TOP + LANE / 2 + 4:.1f}" '
            f'text-anchor="middle" fill="#4a5260">{_e(title)}</text>'
        )
    for index, lane in enumerate(lanes):
        y = TOP + LANE * index + LANE / 2
        parts.append(
            f'<text class="lane" x="{LABEL_WIDTH - 10}" y="{y + 4:.1f}" text-anchor="end" '
            f'fill="#1b1f24">{_e(lane)}</text>'
        )
        parts.append(
            f'<line x1="{LABEL_WIDTH}" y1="{y:.1f}" x2="{LABEL_WIDTH + plot}" y2="{y:.1f}" '
            'stroke="#e6e8eb"/>'
        )
        for mark in (m for m in shown if m.lane == lane):
            left = (mark.expires_at - now) / timedelta(days=1)
            x = LABEL_WIDTH + plot * left / days
            kind = mark.kind.replace("_", " ")
            parts.append(
                f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="6" '
                f'fill="{_colour(left)}" data-credential="{_e(mark.credential_id)}">'
                f"<title>{_e(lane)}: {_e(kind)} {_e(mark.credential_id)} expires "
                f"{_e(mark.expires_at.date().isoformat())} (in {left:.0f} days)</title>"
                "</circle>"
            )
    parts.append("</svg>")
    return "\n".join(parts)


def message_volume(
    series: Sequence[VolumeSeries],
    *,
    days: Sequence[date],
    element_id: str = "message-volume",
) -> str:
    """A row of daily bars per sender, all on one scale, with the row's total at the end."""
    for one in series:
        if len(one.counts) != len(days):
            raise ValueError(f"{one.label}: {len(one.counts)} counts for {len(days)} days")
    rows = sorted(series, key=lambda s: (-sum(s.counts), s.label))
    senders = len(rows)
    return _bars(
        rows,
        ticks=[day.strftime("%a %d") for day in days],
        tips=[f"on {day.isoformat()}" for day in days],
        span=f"in the last {len(days)} days",
        whose=f"from {senders} technical user{'s' if senders != 1 else ''}",
        element_id=element_id,
    )


def flow_volume(
    series: Sequence[VolumeSeries],
    *,
    hours: Sequence[datetime],
    element_id: str = "flow-volume",
) -> str:
    """A row of hourly bars per flow over the window that starts at ``hours[0]`` and ends one
    hour after ``hours[-1]``, in the order given (the caller ranks and groups the lanes)."""
    for one in series:
        if len(one.counts) != len(hours):
            raise ValueError(f"{one.label}: {len(one.counts)} counts for {len(hours)} hours")
    count = len(hours)
    ticks = [
        "now" if index == count - 1 else f"-{count - index} h" if index % 6 == 0 else ""
        for index in range(count)
    ]
    tips = [f"from {start:%H:%M} to {start + timedelta(hours=1):%H:%M} UTC" for start in hours]
    flows = len(series)
    return _bars(
        series,
        ticks=ticks,
        tips=tips,
        span=f"in the last {count} hours",
        whose=f"in {flows} flow{'s' if flows != 1 else ''}",
        element_id=element_id,
        shorten=22,  # flow paths run to 200 characters; the bars' titles carry them whole
    )


def _short(label: str, limit: int | None) -> str:
    """A lane label cut to ``limit`` characters, to fit left of the plot."""
    return label if limit is None or len(label) <= limit else label[: limit - 1] + "\u2026"


def _bars(
    rows: Sequence[VolumeSeries],
    *,
    ticks: Sequence[str],
    tips: Sequence[str],
    span: str,
    whose: str,
    element_id: str,
    shorten: int | None = None,
) -> str:
    """Rows of bars on one scale, a tick label under each slot, the row's total at the end."""
    peak = max((c for s in rows for c in s.counts), default=0)
    total = sum(sum(s.counts) for s in rows)
    title = (
        f"{total} message{'s' if total != 1 else ''} {span} {whose}"
        if total
        else f"No messages {span}"
    )
    height = TOP + LANE * max(len(rows), 1) + 30
    plot = WIDTH - LABEL_WIDTH - 80
    slot = plot / max(len(ticks), 1)
    parts = _open(element_id, title, height)
    axis_y = TOP + LANE * max(len(rows), 1)
    for index, tick in enumerate(ticks):
        if not tick:
            continue
        x = LABEL_WIDTH + slot * index + slot / 2
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle" '
            f'fill="#4a5260">{_e(tick)}</text>'
        )
    if not total:
        parts.append(
            f'<text x="{LABEL_WIDTH + plot / 2:.1f}" y="{TOP + LANE / 2 + 4:.1f}" '
            f'text-anchor="middle" fill="#4a5260">{_e(title)}</text>'
        )
    for row, one in enumerate(rows if total else []):
        top = TOP + LANE * row
        short = _short(one.label, shorten)
        whole = f"<title>{_e(one.label)}</title>" if short != one.label else ""
        parts.append(
            f'<text class="lane" x="{LABEL_WIDTH - 10}" y="{top + LANE / 2 + 4:.1f}" '
            f'text-anchor="end" fill="#1b1f24">{_e(short)}{whole}</text>'
        )
        for index, (tip, count) in enumerate(zip(tips, one.counts, strict=True)):
            tall = (LANE - 6) * count / peak
            x = LABEL_WIDTH + slot * index + slot * 0.15
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{top + LANE - 3 - tall:.1f}" '
                f'width="{slot * 0.7:.1f}" height="{tall:.1f}" fill="{BAR_COLOUR}" '
                f'data-count="{count}"><title>{_e(one.label)}: {count} '
                f"{_e(tip)}</title></rect>"
            )
        parts.append(
            f'<text class="total" x="{LABEL_WIDTH + plot + 10}" y="{top + LANE / 2 + 4:.1f}" '
            f'fill="#1b1f24">{sum(one.counts)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
