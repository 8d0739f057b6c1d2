"""The console home in-process, over SQLite and PostgreSQL: sign-in lands on it; per
sub-account the last 24 hours' messages per flow (a rolling window: moving the clock drops
old messages), denials only for those who may read the audit trail, expiring credentials
and findings; a member sees only their sub-accounts; names in the SVG are escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.identity.models import User
from ostiary.pictures.svg import VolumeSeries
from ostiary.review import home as homes
from ostiary.runtime.models import Message
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Subaccount
from tests import factories as f
from tests.review_world import ACTOR, World, build, send
from tests.test_console_review import NS, classed, svg
from tests.test_console_tenancy import sign_in

THRESHOLDS = (30, 7, 1)


@pytest.fixture
def world(ctx: AppContext, clock: FrozenClock) -> World:
    """The review world (acme: orders at now, 1 and 3 days ago, a certificate ending in 10
    days) plus, in acme, ``invoices`` calls 1 h and 23 h ago and an ``orders`` call 2 h ago."""
    built = build(ctx, clock)
    now = clock.now()
    with transaction(ctx.sessions) as s:
        sub = s.merge(built.sub)
        sender = s.merge(built.sender)
        for back, path in ((1, "invoices"), (23, "invoices"), (2, "orders")):
            send(s, sub=sub, sender=sender, path=path, at=now - timedelta(hours=back))
    return built


def viewer_of(ctx: AppContext, clock: FrozenClock, subdomain: str, role: str = "Viewer") -> User:
    """A person who is a member of ``subdomain`` only."""
    user = f.person(ctx, given_name="Vic", family_name="Viewer")
    with transaction(ctx.sessions) as s:
        sub = s.scalars(select(Subaccount).where(Subaccount.subdomain == subdomain)).one()
        tenancy.add_member(
            s, clock=clock, actor=ACTOR, subaccount=sub, user=s.merge(user), roles=[role]
        )
    return user


def deny(ctx: AppContext, clock: FrozenClock, subdomain: str) -> None:
    """One runtime denial in ``subdomain``'s audit trail, now."""
    with transaction(ctx.sessions) as s:
        record(
            s,
            clock=clock,
            actor="T000999",
            action=AuditAction.runtime_denied,
            target=f"/t/{subdomain}/http/orders",
            subdomain=subdomain,
            reason="no role",
        )


def home_of(ctx: AppContext, user: User) -> homes.Home:
    with transaction(ctx.read_sessions) as s:
        return homes.home(s, user=s.merge(user), now=ctx.clock.now(), reminder_days=THRESHOLDS)


def lanes(found: homes.Home, subdomain: str) -> dict[str, int]:
    (part,) = [p for p in found.subaccounts if p.subaccount.subdomain == subdomain]
    return {lane.label: sum(lane.counts) for lane in part.lanes}


def test_counts_per_flow_in_the_window_and_older_messages_drop_out(
    ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    admin = f.admin(ctx)
    found = home_of(ctx, admin)
    assert [p.subaccount.subdomain for p in found.subaccounts] == ["acme", "other"]
    # orders: now and 2 h ago (1 and 3 days ago are outside); invoices: 1 h and 23 h ago.
    assert lanes(found, "acme") == {"orders": 2, "invoices": 2}
    acme = found.subaccounts[0]
    assert acme.messages == 4 and acme.flows == 2
    assert len(found.hours) == 24 and found.hours[0] == clock.now() - timedelta(hours=24)
    by_lane = {lane.label: lane.counts for lane in acme.lanes}
    assert by_lane["invoices"][0] == 1 and by_lane["invoices"][22] == 1  # 23 h ago, 1 h ago
    assert by_lane["orders"][23] == 1 and by_lane["orders"][21] == 1  # now, 2 h ago
    assert lanes(found, "other") == {}

    clock.advance(timedelta(hours=2))  # the 23-hour-old call is now 25 hours old
    later = home_of(ctx, admin)
    assert lanes(later, "acme") == {"orders": 2, "invoices": 1}
    clock.advance(timedelta(hours=23))
    assert lanes(home_of(ctx, admin), "acme") == {}


def test_a_member_sees_only_their_subaccounts_and_a_viewer_no_denials(
    ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    deny(ctx, clock, "acme")
    deny(ctx, clock, "other")
    viewer = viewer_of(ctx, clock, "acme")
    mine = home_of(ctx, viewer)
    assert [p.subaccount.subdomain for p in mine.subaccounts] == ["acme"]
    (acme,) = mine.subaccounts
    assert acme.denials is None and acme.latest_denials == []
    assert lanes(mine, "acme") == {"orders": 2, "invoices": 2}  # Viewers read messages
    assert acme.findings is not None  # and credentials

    boss = viewer_of(ctx, clock, "acme", role="Administrator")
    (acme,) = home_of(ctx, boss).subaccounts
    assert acme.denials == 1
    assert [(d.actor, d.action) for d in acme.latest_denials] == [("T000999", "runtime:denied")]
    clock.advance(timedelta(hours=25))
    (acme,) = home_of(ctx, boss).subaccounts
    assert acme.denials == 0


def test_expiring_credentials_come_from_the_reminder_thresholds_and_findings_from_review(
    ctx: AppContext, world: World
) -> None:
    (acme, _) = home_of(ctx, f.admin(ctx)).subaccounts
    assert [(c.kind.value, c.user_id) for c in acme.expiring] == [
        ("certificate", world.sender.user_id)
    ]  # ends in 10 days: inside the 30-day reminder threshold
    assert acme.findings is not None
    assert {x.kind.value for x in acme.findings} >= {
        "credential_expiring",
        "ownerless_technical_user",
    }
    with transaction(ctx.read_sessions) as s:
        quiet = homes.home(s, user=s.merge(f.admin(ctx)), now=ctx.clock.now(), reminder_days=(7,))
    assert quiet.subaccounts[0].expiring == []  # 10 days out is not inside 7


def test_lanes_past_eight_share_one_other_lane() -> None:
    per_flow = {f"flow-{n:02d}": [n] + [0] * 23 for n in range(1, 12)}
    found = homes.lanes_of(per_flow)
    assert len(found) == 8
    assert [lane.label for lane in found[:7]] == [f"flow-{n:02d}" for n in range(11, 4, -1)]
    assert found[7] == VolumeSeries("other (4 flows)", (1 + 2 + 3 + 4,) + (0,) * 23)
    assert homes.lanes_of({"a": [1], "b": [2]}) == [
        VolumeSeries("b", (2,)),
        VolumeSeries("a", (1,)),
    ]


def test_signin_lands_on_the_home_with_cards_and_an_svg_per_subaccount(
    client: TestClient, ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    deny(ctx, clock, "acme")
    sign_in(client, f.admin(ctx))  # asserts the landing page is /console/
    page = client.get("/console/")
    assert page.status_code == 200
    assert "<h1>Home</h1>" in page.text
    volume = svg(page.text, "volume-acme")
    assert [t.text for t in classed(volume, "text", "lane")] == ["invoices", "orders"]
    assert [t.text for t in classed(volume, "text", "total")] == ["2", "2"]
    assert len(classed(volume, "rect", "bar")) == 48
    assert volume.findtext("svg:title", namespaces=NS) == (
        "4 messages in the last 24 hours in 2 flows"
    )
    assert svg(page.text, "volume-other").findtext("svg:title", namespaces=NS) == (
        "No messages in the last 24 hours"
    )
    section = page.text.split('id="home-acme"')[1].split("</section>")[0]
    for card in ("messages", "flows", "denials", "expiring", "findings"):
        assert f'data-card="{card}"' in section
    assert "Latest denials" in section and "T000999" in section
    assert "src=" not in section  # nothing fetched from elsewhere
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page.text


def test_a_viewer_home_has_no_denials_and_no_other_subaccount(
    client: TestClient, ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    deny(ctx, clock, "acme")
    sign_in(client, viewer_of(ctx, clock, "acme"))
    page = client.get("/console/")
    assert page.status_code == 200
    assert 'id="home-acme"' in page.text and 'id="home-other"' not in page.text
    assert 'data-card="denials"' not in page.text and "T000999" not in page.text


def test_names_are_escaped_in_the_home(
    client: TestClient, ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    nasty = '<script>alert("x")</script>'
    with transaction(ctx.sessions) as s:
        sub = s.merge(world.sub)
        sub.display_name = nasty
        send(s, sub=sub, sender=s.merge(world.sender), path="orders", at=clock.now())
        # Flow paths are letters and digits today; the picture escapes whatever the log holds.
        s.execute(update(Message).where(Message.subaccount_id == sub.id).values(flow_path="x&<y>"))
    sign_in(client, f.admin(ctx))
    page = client.get("/console/")
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text
    volume = svg(page.text, "volume-acme")  # parses: the & is escaped in the SVG
    assert [t.text for t in classed(volume, "text", "lane")] == ["x&<y>"]


def test_signed_out_visitors_go_to_signin_and_the_favicon_is_served(client: TestClient) -> None:
    answer = client.get("/console/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/signin"
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
    svg_icon = client.get("/static/favicon.svg")
    assert svg_icon.status_code == 200
    ET.fromstring(svg_icon.text)


def test_overview_has_flows_and_messages_cards_with_counts(
    client: TestClient, ctx: AppContext, world: World
) -> None:
    sign_in(client, f.admin(ctx))
    page = client.get("/console/subaccounts/acme")
    assert page.status_code == 200
    assert 'href="/console/subaccounts/acme/flows" data-card="flows"' in page.text
    assert 'href="/console/subaccounts/acme/messages" data-card="messages"' in page.text
    assert 'id="flows-count">2</b>' in page.text
    assert 'id="messages-count">4</b>' in page.text


def test_flow_volume_draws_hourly_ticks_and_shortens_long_paths_only_in_the_label() -> None:
    from datetime import UTC, datetime

    from ostiary.pictures.svg import flow_volume

    hours = homes.window(datetime(2026, 1, 1, 12, 30, tzinfo=UTC))
    long_path = "orders/" + "v" * 60
    root = ET.fromstring(flow_volume([VolumeSeries(long_path, (1,) + (0,) * 23)], hours=hours))
    assert [t.text for t in classed(root, "text", "tick")] == [
        "-24 h",
        "-18 h",
        "-12 h",
        "-6 h",
        "now",
    ]
    (lane,) = classed(root, "text", "lane")
    assert lane.text == long_path[:21] + "\u2026"
    assert lane.findtext("svg:title", namespaces=NS) == long_path
    first = classed(root, "rect", "bar")[0].findtext("svg:title", namespaces=NS)
    assert first == f"{long_path}: 1 from 12:30 to 13:30 UTC"
    with pytest.raises(ValueError, match="3 counts for 24 hours"):
        flow_volume([VolumeSeries("x", (1, 2, 3))], hours=hours)


def test_the_home_shows_the_first_subaccounts_and_counts_the_rest(
    ctx: AppContext, world: World
) -> None:
    with transaction(ctx.read_sessions) as s:
        found = homes.home(
            s, user=s.merge(f.admin(ctx)), now=ctx.clock.now(), reminder_days=THRESHOLDS, limit=1
        )
    assert [p.subaccount.subdomain for p in found.subaccounts] == ["acme"]
    assert found.more == 1
