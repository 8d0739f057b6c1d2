"""The console home attacked, over SQLite and PostgreSQL: one sub-account's member sees
nothing of another's; who may not read the audit trail sees no denial; removed, disabled and
technical users see nothing; outside text is escaped in the page and the picture; the
sign-in landing is not an open redirect; the number of queries does not grow with the flows
or with sub-accounts past the shown ones."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from ostiary.app import create_app
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.clock import FrozenClock
from ostiary.console.web import SESSION_COOKIE
from ostiary.context import AppContext, build_context
from ostiary.db import transaction
from ostiary.identity import erasure, sessions
from ostiary.identity import service as identity
from ostiary.identity.models import User, UserStatus
from ostiary.review import home as homes
from ostiary.runtime import flows
from ostiary.settings import Settings
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan, Subaccount
from tests import factories as f
from tests import test_console_home
from tests.review_world import ACTOR, World, send
from tests.test_console_home import THRESHOLDS, deny, viewer_of
from tests.test_console_review import svg
from tests.test_console_tenancy import csrf_token, sign_in

RLO = "\u202e"
world = test_console_home.world  # the fixture


def _section(page: str, subdomain: str) -> str:
    return page.split(f'id="home-{subdomain}"')[1].split("</section>")[0]


def test_a_member_of_one_subaccount_sees_nothing_of_another(
    client: TestClient, ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    """acme has flows, messages, a denial, an expiring certificate and findings; a member
    (even an Administrator) of ``other`` sees none of it, nor acme's name."""
    deny(ctx, clock, "acme")
    boss = viewer_of(ctx, clock, "other", role="Administrator")
    sign_in(client, boss)
    page = client.get("/console/")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"  # not kept by a shared proxy
    assert 'id="home-other"' in page.text and "home-acme" not in page.text
    for secret in ("Acme", "orders", "invoices", "T000999", world.sender.user_id, "volume-acme"):
        assert secret not in page.text, secret
    other = _section(page.text, "other")
    assert '<b class="count">0</b> in 24 h' in other  # messages and denials of other: none
    with transaction(ctx.read_sessions) as s:
        (part,) = homes.home(
            s, user=s.merge(boss), now=clock.now(), reminder_days=THRESHOLDS
        ).subaccounts
    assert (part.flows, part.messages, part.denials, part.expiring) == (0, 0, 0, [])


@pytest.mark.parametrize("role", ["Viewer", "Developer"])
def test_who_may_not_read_the_audit_trail_sees_no_denial_on_the_home(
    client: TestClient, ctx: AppContext, clock: FrozenClock, world: World, role: str
) -> None:
    deny(ctx, clock, "acme")
    sign_in(client, viewer_of(ctx, clock, "acme", role=role))
    assert client.get("/console/subaccounts/acme/audit").status_code == 403  # the audit page
    page = client.get("/console/")
    assert page.status_code == 200
    acme = _section(page.text, "acme")
    assert 'data-card="denials"' not in acme and "Latest denials" not in acme
    assert "T000999" not in page.text and "runtime:denied" not in page.text
    # What they may read elsewhere they see here: findings (credentials:read) and messages.
    assert client.get("/console/subaccounts/acme/findings").status_code == 200
    assert 'data-card="findings"' in acme and 'data-card="expiring"' in acme


def test_a_removed_member_sees_the_subaccount_no_more(
    client: TestClient, ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    member = viewer_of(ctx, clock, "acme", role="Developer")
    sign_in(client, member)
    assert 'id="home-acme"' in client.get("/console/").text
    with transaction(ctx.sessions) as s:
        sub = s.scalars(select(Subaccount).where(Subaccount.subdomain == "acme")).one()
        tenancy.remove_member(s, clock=clock, actor=ACTOR, subaccount=sub, user=s.merge(member))
    page = client.get("/console/")
    assert page.status_code == 200
    assert "home-acme" not in page.text and 'id="no-subaccounts"' in page.text
    assert "orders" not in page.text and "Acme" not in page.text


@pytest.mark.parametrize("how", ["disabled", "erased"])
def test_a_disabled_or_erased_user_is_shown_nothing(
    client: TestClient, ctx: AppContext, clock: FrozenClock, world: World, how: str
) -> None:
    member = viewer_of(ctx, clock, "acme", role="Developer")
    sign_in(client, member)
    with transaction(ctx.sessions) as s:
        if how == "disabled":
            identity.set_status(s, ctx, user=s.merge(member), status=UserStatus.disabled)
        else:
            erasure.erase(s, ctx, actor=ACTOR, user=s.merge(member))
    answer = client.get("/console/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/signin"


def test_a_technical_user_with_a_console_session_is_shown_nothing(
    ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    """Technical users cannot sign in to the console; even a session row made for one
    (say, by a bug elsewhere) does not open the home."""
    with transaction(ctx.sessions) as s:
        secret = sessions.start(s, ctx, user=s.merge(world.sender), must_change_password=False)
    app = create_app(ctx.settings, ctx=ctx)
    with TestClient(app, cookies={SESSION_COOKIE: secret}) as client:
        answer = client.get("/console/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/signin"


def test_outside_text_is_escaped_in_the_home_page_and_picture(
    client: TestClient, ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    """A denial's actor and target come from callers (a runtime path, a client ID); the
    display name from a sub-account administrator."""
    nasty = f'"><script>alert(1)</script><svg onload=alert(2)>{RLO}gpj.exe'
    with transaction(ctx.sessions) as s:
        sub = s.merge(world.sub)
        sub.display_name = nasty + "x" * 100
        record(
            s,
            clock=clock,
            actor=nasty,
            action=AuditAction.authentication_failed,
            target=f"/t/acme/http/{nasty}",
            subdomain="acme",
            reason="bad",
        )
    sign_in(client, f.admin(ctx))
    page = client.get("/console/")
    assert page.status_code == 200
    assert "<script>" not in page.text and "<svg onload" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    svg(page.text, "volume-acme")  # still parses
    # A right-to-left override in a name cannot turn what follows it around: each outside
    # text is isolated (``<bdi>``), so the override ends with it.
    acme = _section(page.text, "acme")
    for text in (nasty, f"/t/acme/http/{nasty}"):
        escaped = (
            text.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace('"', "&#34;")
        )
        assert f"<bdi>{escaped}" in acme, text


def test_signin_ignores_a_next_parameter(client: TestClient, ctx: AppContext) -> None:
    """The landing is always the home: no ``next`` to send a user elsewhere after sign-in."""
    user = f.person(ctx)
    for query in ("?next=https://evil.example/", "?next=//evil.example", "?redirect=/x"):
        client.cookies.clear()
        form = client.get(f"/console/signin{query}")
        assert "evil.example" not in form.text
        answer = client.post(
            f"/console/signin{query}",
            data={
                "csrf_token": csrf_token(form.text),
                "identifier": user.user_id,
                "password": f.DEFAULT_PASSWORD,
                "next": "https://evil.example/",
            },
            follow_redirects=False,
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/", query


@contextlib.contextmanager
def counted(ctx: AppContext) -> Iterator[list[str]]:
    """The statements run on the read engine meanwhile."""
    seen: list[str] = []
    engine = ctx.read_sessions.kw["bind"]

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _home_queries(ctx: AppContext, user: User) -> int:
    with transaction(ctx.read_sessions) as s:
        me = s.merge(user)
        with counted(ctx) as seen:
            found = homes.home(s, user=me, now=ctx.clock.now(), reminder_days=THRESHOLDS)
    assert found.subaccounts
    return len(seen)


def test_the_queries_do_not_grow_with_flows_or_with_subaccounts_past_those_shown(
    ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    admin = f.admin(ctx)
    two_flows = _home_queries(ctx, admin)
    with transaction(ctx.sessions) as s:
        sub, sender = s.merge(world.sub), s.merge(world.sender)
        sub.plan = Plan.standard  # the trial allows 10 flows
        for n in range(100):
            flows.create(s, clock=clock, actor=ACTOR, subaccount=sub, path=f"flow{n:03d}")
        s.flush()
        for n in range(100):
            send(s, sub=sub, sender=sender, path=f"flow{n:03d}", at=clock.now())
    assert _home_queries(ctx, admin) == two_flows  # one grouped query whatever the flows

    with transaction(ctx.sessions) as s:
        for n in range(homes.MAX_SUBACCOUNTS - 2):
            tenancy.create(
                s,
                clock=clock,
                actor=ACTOR,
                subdomain=f"s{n:02d}",
                display_name="S",
                plan=Plan.trial,
            )
    full = _home_queries(ctx, admin)
    per_subaccount = (full - two_flows) / (homes.MAX_SUBACCOUNTS - 2)
    assert per_subaccount <= 15, per_subaccount  # 9 today
    with transaction(ctx.sessions) as s:
        for n in range(30):
            tenancy.create(
                s,
                clock=clock,
                actor=ACTOR,
                subdomain=f"t{n:02d}",
                display_name="T",
                plan=Plan.trial,
            )
    assert _home_queries(ctx, admin) == full  # the rest are counted, not read one by one
    with transaction(ctx.read_sessions) as s:
        found = homes.home(s, user=s.merge(admin), now=clock.now(), reminder_days=THRESHOLDS)
    (acme,) = [p for p in found.subaccounts if p.subaccount.subdomain == "acme"]
    assert acme.flows == 102 and acme.messages == 100 + 4 and len(acme.lanes) == homes.MAX_LANES
    assert found.more == 2 + homes.MAX_SUBACCOUNTS - 2 + 30 - homes.MAX_SUBACCOUNTS


# ---------------------------------------------------------------- the database away


@pytest.fixture
def forwarder(database_url: str) -> Iterator[f.TcpForwarder]:
    through = f.forwarder_for(database_url)
    yield through
    through.cut()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_home_is_503_and_the_favicon_served_while_the_database_is_away(
    settings: Settings, clock: FrozenClock, forwarder: f.TcpForwarder
) -> None:
    url = f.forwarded(settings.resolved_database_url, forwarder)
    ctx = build_context(settings.model_copy(update={"database_url": url}), clock=clock)
    try:
        app = create_app(ctx.settings, ctx=ctx)
        with TestClient(app, raise_server_exceptions=False) as client:
            sign_in(client, f.admin(ctx))
            assert client.get("/console/").status_code == 200
            forwarder.cut()
            page = client.get("/console/")
            assert page.status_code == 503, page.text
            assert page.headers["Retry-After"] == "1"
            assert "Temporarily unavailable" in page.text
            icon = client.get("/favicon.ico")
            assert icon.status_code == 200 and icon.content[:4] == b"\x00\x00\x01\x00"
            assert client.get("/static/favicon.svg").status_code == 200
    finally:
        ctx.engine.dispose()


def test_the_home_decides_per_subaccount_as_the_overview_does(
    ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    """Each part of the home needs the permission its own page needs, through ``decide``:
    a member whom the decision refuses everything (here: disabled in the directory, while
    another process's gate may not know yet) is shown no sub-account, not even its name and
    flow count."""
    member = viewer_of(ctx, clock, "acme", role="Administrator")
    assert [p.subaccount.subdomain for p in _home(ctx, member).subaccounts] == ["acme"]
    with transaction(ctx.sessions) as s:
        s.merge(member).status = UserStatus.disabled
    found = _home(ctx, member)
    assert found.subaccounts == [] and found.more == 0


def _home(ctx: AppContext, user: User) -> homes.Home:
    with transaction(ctx.read_sessions) as s:
        fresh = s.get(User, user.id)
        assert fresh is not None
        return homes.home(s, user=fresh, now=ctx.clock.now(), reminder_days=THRESHOLDS)


def test_a_platform_administrator_home_reads_only_the_subaccounts_it_shows(
    ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    """With many sub-accounts the rest are counted in SQL, not loaded to be counted."""
    with transaction(ctx.sessions) as s:
        for n in range(homes.MAX_SUBACCOUNTS + 20):
            tenancy.create(
                s,
                clock=clock,
                actor=ACTOR,
                subdomain=f"u{n:02d}",
                display_name="U",
                plan=Plan.trial,
            )
    loaded: list[object] = []

    def load(target: object, _: object) -> None:
        loaded.append(target)

    event.listen(Subaccount, "load", load)
    try:
        found = _home(ctx, f.admin(ctx))
    finally:
        event.remove(Subaccount, "load", load)
    assert len(found.subaccounts) == homes.MAX_SUBACCOUNTS
    assert found.more == 2 + 20
    assert len({id(x) for x in loaded}) <= homes.MAX_SUBACCOUNTS
