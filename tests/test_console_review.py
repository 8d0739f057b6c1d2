"""The console's findings page and pictures in-process: the overview and the technical-user
page embed the SVG timeline and volume, the findings page lists what the API lists."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from tests import factories as f
from tests.review_world import World, build
from tests.test_console_tenancy import sign_in

NS = {"svg": "http://www.w3.org/2000/svg"}


@pytest.fixture
def world(ctx: AppContext, clock: FrozenClock) -> World:
    return build(ctx, clock)


def svg(html: str, element_id: str) -> ET.Element:
    start = html.index(f'<svg xmlns="http://www.w3.org/2000/svg" id="{element_id}"')
    return ET.fromstring(html[start : html.index("</svg>", start) + len("</svg>")])


def classed(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iterfind(f".//svg:{tag}", NS) if e.get("class") == css]


def test_overview_shows_the_expiry_timeline_and_message_volume(
    client: TestClient, ctx: AppContext, world: World
) -> None:
    sign_in(client, f.admin(ctx))
    page = client.get("/console/subaccounts/acme")
    assert page.status_code == 200
    timeline = svg(page.text, "expiry-timeline")
    marks = classed(timeline, "circle", "mark")
    assert len(marks) == 1  # the sender's certificate; the secrets never end
    assert [t.text for t in classed(timeline, "text", "lane")] == [world.sender.user_id]
    volume = svg(page.text, "message-volume")
    assert [t.text for t in classed(volume, "text", "lane")] == [world.sender.user_id]
    assert [t.text for t in classed(volume, "text", "total")] == ["4"]
    counts = [int(b.get("data-count") or 0) for b in classed(volume, "rect", "bar")]
    assert counts == [0, 0, 0, 1, 0, 2, 1]  # today, yesterday twice, three days ago
    pictures = page.text.split('id="pictures-heading"')[1].split("</section>")[0]
    assert "src=" not in pictures and "href=" not in pictures  # nothing fetched from elsewhere


def test_technical_user_page_shows_its_own_pictures(
    client: TestClient, ctx: AppContext, world: World
) -> None:
    sign_in(client, f.admin(ctx))  # the owner's password has expired by the world's "now"
    page = client.get(f"/console/technical-users/{world.sender.user_id}")
    assert page.status_code == 200
    timeline = svg(page.text, "expiry-timeline")
    assert [t.text for t in classed(timeline, "text", "lane")] == ["certificate"]
    volume = svg(page.text, "message-volume")
    assert [t.text for t in classed(volume, "text", "lane")] == ["acme"]
    quiet = client.get(f"/console/technical-users/{world.orphan.user_id}")
    assert quiet.status_code == 200
    assert svg(quiet.text, "message-volume").findtext("svg:title", namespaces=NS) == (
        "No messages in the last 7 days"
    )


def test_findings_page_lists_every_kind(client: TestClient, ctx: AppContext, world: World) -> None:
    sign_in(client, f.admin(ctx))
    page = client.get("/console/subaccounts/acme/findings")
    assert page.status_code == 200
    assert '<p id="findings-total">9 findings</p>' in page.text
    for table in (
        "credential_expiring",
        "unused_credential",
        "credential_without_expiry",
        "role_never_exercised",
        "ownerless_technical_user",
        "technical_user_without_credential",
    ):
        assert f'<table id="{table}"' in page.text
    assert "Invoices.send" in page.text and world.empty.user_id in page.text
    narrower = client.get("/console/subaccounts/acme/findings", params={"expiring_days": "9"})
    assert '<p id="findings-total">8 findings</p>' in narrower.text
    bad = client.get("/console/subaccounts/acme/findings", params={"unused_days": "x"})
    assert bad.status_code == 400 and "unused_days" in bad.text


def test_findings_page_refuses_outsiders(client: TestClient, ctx: AppContext, world: World) -> None:
    sign_in(client, f.person(ctx))
    page = client.get("/console/subaccounts/acme/findings")
    assert page.status_code == 403
    assert world.empty.user_id not in page.text
