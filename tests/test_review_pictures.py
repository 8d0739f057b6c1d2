"""The numbers behind the pictures, on SQLite and PostgreSQL: UTC day buckets with exact
edges, seven days and no more, one sub-account's messages and credentials only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ostiary.certificates import issuing
from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.identity import technical
from ostiary.review import pictures
from ostiary.runtime import flows
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan
from tests import factories as f
from tests.review_world import send
from tests.test_certificates_service import csr_pem

NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_messages_are_counted_per_utc_day_for_the_last_seven_days(ctx: AppContext) -> None:
    clock = FrozenClock(NOON)
    owner = f.person(ctx)
    midnight = NOON.replace(hour=0)
    with transaction(ctx.sessions) as s:
        subs = [
            tenancy.create(
                s, clock=clock, actor="t", subdomain=name, display_name=name, plan=Plan.trial
            )
            for name in ("acme", "beta")
        ]
        bot = technical.create(s, ctx, creator=s.merge(owner), display_name="bot").user
        for sub in subs:
            flows.create(s, clock=clock, actor="t", subaccount=sub, path="orders")
        acme, beta = subs
        for at in (
            midnight,  # today's first instant
            midnight - timedelta(microseconds=1),  # yesterday's last
            midnight - timedelta(days=6),  # the first day shown
            midnight - timedelta(days=6, microseconds=1),  # one day too old
        ):
            send(s, sub=acme, sender=bot, path="orders", at=at)
        send(s, sub=beta, sender=bot, path="orders", at=NOON)
    with transaction(ctx.read_sessions) as s:
        acme, beta = tenancy.get(s, subdomain="acme"), tenancy.get(s, subdomain="beta")
        here = pictures.subaccount_volume(s, subaccount=acme, now=NOON)
        mine = pictures.user_volume(s, user=s.merge(bot), now=NOON)
    assert pictures.volume_days(NOON)[0].isoformat() == "2026-11-26"
    assert [(v.label, v.counts) for v in here] == [(bot.user_id, (1, 0, 0, 0, 0, 1, 1))]
    assert [(v.label, v.counts) for v in mine] == [
        ("acme", (1, 0, 0, 0, 0, 1, 1)),
        ("beta", (0, 0, 0, 0, 0, 0, 1)),
    ]


def test_expiries_are_those_of_the_next_ninety_days_in_scope(
    ctx: AppContext, clock: FrozenClock
) -> None:
    owner = f.person(ctx)
    with transaction(ctx.sessions) as s:
        acme, beta = (
            tenancy.create(
                s, clock=clock, actor="t", subdomain=name, display_name=name, plan=Plan.trial
            )
            for name in ("acme", "beta")
        )
        bot = technical.create(s, ctx, creator=s.merge(owner), display_name="bot", home=acme).user
        tenancy.add_member(
            s, clock=clock, actor="t", subaccount=beta, user=bot, roles=["Viewer"], description=""
        )
        for sub, days in ((acme, 30), (acme, 200), (beta, 10)):
            issuing.sign_csr(
                s, ctx, actor="t", subaccount=sub, user=bot, csr_pem=csr_pem(), validity_days=days
            )
    with transaction(ctx.read_sessions) as s:
        acme = tenancy.get(s, subdomain="acme")
        here = pictures.subaccount_expiries(s, subaccount=acme, now=clock.now())
        mine = pictures.user_expiries(s, user=s.merge(bot), now=clock.now())
    # acme's overview: its 30-day certificate only (not beta's, not the one in 200 days).
    assert [
        (m.lane, m.kind, round((m.expires_at - clock.now()) / timedelta(days=1))) for m in here
    ] == [(bot.user_id, "certificate", 30)]
    # The technical user's own page: both of its certificates ending within 90 days.
    assert sorted(round((m.expires_at - clock.now()) / timedelta(days=1)) for m in mine) == [10, 30]
    assert {m.lane for m in mine} == {"certificate"}
