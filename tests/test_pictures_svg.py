"""The SVG pictures are pure functions of their data: parseable XML, one mark per credential
ending in the window, one bar per sender and day on one scale, and names escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from ostiary.pictures.svg import ExpiryMark, VolumeSeries, expiry_timeline, message_volume

NS = {"svg": "http://www.w3.org/2000/svg"}
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DAYS = [date(2026, 11, 26) + timedelta(days=n) for n in range(7)]


def parsed(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def by_class(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iterfind(f".//svg:{tag}", NS) if e.get("class") == css]


def mark(lane: str, credential_id: str, days: float) -> ExpiryMark:
    return ExpiryMark(lane, credential_id, "certificate", NOW + timedelta(days=days))


def test_timeline_marks_only_credentials_ending_within_the_window() -> None:
    marks = [
        mark("T000002", "C1", 3),
        mark("T000002", "C2", 45),
        mark("T000001", "C3", 89.9),
        mark("T000001", "gone", -1),  # already over
        mark("T000003", "later", 91),  # beyond 90 days
    ]
    root = parsed(expiry_timeline(marks, now=NOW, days=90))

    dots = by_class(root, "circle", "mark")
    assert sorted(d.get("data-credential") or "" for d in dots) == ["C1", "C2", "C3"]
    assert [t.text for t in by_class(root, "text", "lane")] == ["T000001", "T000002"]
    assert root.findtext("svg:title", namespaces=NS) == "3 credentials expire in the next 90 days"
    # Nearer is further left, and urgency colours: red within 7 days, blue beyond 30.
    x = {d.get("data-credential"): float(d.get("cx") or 0) for d in dots}
    assert x["C1"] < x["C2"] < x["C3"]
    colour = {d.get("data-credential"): d.get("fill") for d in dots}
    assert colour["C1"] == "#b3261e" and colour["C2"] == "#1f5fa8"
    ticks = [t.text for t in by_class(root, "text", "tick")]
    assert ticks == ["2026-12-02", "2027-01-01", "2027-01-31", "2027-03-02"]


def test_empty_timeline_says_so() -> None:
    root = parsed(expiry_timeline([], now=NOW))
    assert root.findtext("svg:title", namespaces=NS) == "No credential expires in the next 90 days"
    assert by_class(root, "circle", "mark") == []


def test_names_are_escaped_in_labels_titles_and_attributes() -> None:
    nasty = '<script>alert("x")</script>&'
    markup = expiry_timeline([mark(nasty, f'"{nasty}', 5)], now=NOW)
    markup += message_volume([VolumeSeries(nasty, (1, 0, 0, 0, 0, 0, 2))], days=DAYS)
    assert "<script>" not in markup
    timeline, volume = markup.split("</svg>", 1)
    root = parsed(timeline + "</svg>")
    assert [t.text for t in by_class(root, "text", "lane")] == [nasty]
    assert by_class(root, "circle", "mark")[0].get("data-credential") == f'"{nasty}'
    assert [t.text for t in by_class(parsed(volume), "text", "lane")] == [nasty]


def test_volume_has_a_bar_per_sender_and_day_on_one_scale() -> None:
    series = [
        VolumeSeries("T000001", (0, 1, 2, 3, 4, 5, 10)),
        VolumeSeries("T000002", (5, 0, 0, 0, 0, 0, 0)),
    ]
    root = parsed(message_volume(series, days=DAYS))

    bars = by_class(root, "rect", "bar")
    assert len(bars) == 14
    # Busiest sender first; totals at the end of each row.
    assert [t.text for t in by_class(root, "text", "lane")] == ["T000001", "T000002"]
    assert [t.text for t in by_class(root, "text", "total")] == ["25", "5"]
    heights = {(b.get("data-count")): float(b.get("height") or 0) for b in bars[:7]}
    assert heights["10"] == pytest.approx(2 * heights["5"])
    assert heights["0"] == 0
    ticks = [t.text for t in by_class(root, "text", "tick")]
    assert ticks == ["Thu 26", "Fri 27", "Sat 28", "Sun 29", "Mon 30", "Tue 01", "Wed 02"]
    title = root.findtext("svg:title", namespaces=NS)
    assert title == "30 messages in the last 7 days from 2 technical users"


def test_volume_without_messages_says_so_and_refuses_misshapen_series() -> None:
    root = parsed(message_volume([], days=DAYS))
    assert root.findtext("svg:title", namespaces=NS) == "No messages in the last 7 days"
    assert by_class(root, "rect", "bar") == []
    with pytest.raises(ValueError, match="3 counts for 7 days"):
        message_volume([VolumeSeries("T000001", (1, 2, 3))], days=DAYS)
