"""Expiry reminders over real SMTP: the clock moves through 30, 7 and 1 days; each mail once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.credentials.secrets import add_secret
from ostiary.db import transaction
from ostiary.identity.models import User
from ostiary.reminders import service as reminders
from ostiary.reminders.models import CredentialReminder
from ostiary.reminders.recipients import reminder_recipients
from ostiary.reminders.thresholds import parse_thresholds
from ostiary.scheduler.jobs import standard_scheduler
from ostiary.scheduler.service import Scheduler
from ostiary.settings import Settings
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan
from tests import factories as f
from tests.conftest import SmtpSink, body_of


def _secret_expiring(ctx: AppContext, user: User, in_: timedelta) -> str:
    with transaction(ctx.sessions) as session:
        row = session.get(User, user.id)
        assert row is not None
        return add_secret(session, ctx, user=row, expires_at=ctx.clock.now() + in_).row.secret_id


_nodes: dict[int, Scheduler] = {}


def _tick(ctx: AppContext) -> None:
    """One scheduler tick of this test's node (it holds the lease), as `ostiary serve` runs it."""
    node = _nodes.setdefault(id(ctx), standard_scheduler(ctx))
    assert node.run_once()


def test_clock_through_30_7_1_days_mails_the_owner_once_each(
    ctx: AppContext, smtp: SmtpSink, clock: FrozenClock
) -> None:
    owner = f.person(ctx)
    bot, _ = f.technical_user(ctx, owner=owner, display_name="Order sender")
    secret_id = _secret_expiring(ctx, bot, timedelta(days=40))
    moves = [
        (timedelta(0), 0),
        (timedelta(days=9, hours=23), 0),  # 30 days and 1 hour left
        (timedelta(hours=2), 1),  # inside 30
        (timedelta(days=22, hours=22), 1),  # 7 days and 1 hour left: still only the 30-day one
        (timedelta(hours=2), 2),  # inside 7
        (timedelta(days=6), 3),  # 23 hours left
        (timedelta(days=2), 3),  # expired: nothing more
    ]
    for move, expected in moves:
        clock.advance(move)
        _tick(ctx)
        _tick(ctx)  # a second tick (or node) sends nothing new
        assert len(smtp.to(owner.email or "")) == expected, smtp.summary()
    first, seven, one = smtp.to(owner.email or "")
    assert secret_id in first["Subject"] and bot.user_id in first["Subject"]
    body = body_of(first)
    for needed in (bot.user_id, "Order sender", secret_id, "ostiary credentials rotate"):
        assert needed in body
    assert "(in 29 days)" in body
    assert "(in 6 days)" in body_of(seven) and "(in 0 days)" in body_of(one)
    assert len(smtp.messages) == 3  # nobody else was mailed


def test_first_seen_inside_30_and_7_gets_one_mail_for_the_nearest(
    ctx: AppContext, smtp: SmtpSink, clock: FrozenClock
) -> None:
    owner = f.person(ctx)
    bot, _ = f.technical_user(ctx, owner=owner)
    secret_id = _secret_expiring(ctx, bot, timedelta(days=5))
    _tick(ctx)
    [only] = smtp.to(owner.email or "")
    assert "(in 4 days)" in body_of(only) or "(in 5 days)" in body_of(only)
    with transaction(ctx.sessions) as session:
        rows = {
            r.threshold_days: r.mailed
            for r in session.scalars(
                select(CredentialReminder).where(CredentialReminder.credential_id == secret_id)
            )
        }
    assert rows == {30: False, 7: True}
    clock.advance(timedelta(days=4, hours=12))
    _tick(ctx)
    assert len(smtp.to(owner.email or "")) == 2


def test_ownerless_user_reminds_the_subaccount_administrators(
    ctx: AppContext, smtp: SmtpSink
) -> None:
    owner = f.person(ctx)
    admin_a, admin_b = f.person(ctx), f.person(ctx)
    bot, _ = f.technical_user(ctx, owner=owner)
    with transaction(ctx.sessions) as session:
        sub = tenancy.create(
            session,
            clock=ctx.clock,
            actor="test",
            subdomain="acme-remind",
            display_name="Acme",
            plan=Plan.standard,
            creator=session.get(User, admin_a.id),
        )
        tenancy.add_member(
            session,
            clock=ctx.clock,
            actor="test",
            subaccount=sub,
            user=session.get(User, admin_b.id),  # type: ignore[arg-type]
            roles=["Administrator"],
        )
        row = session.get(User, bot.id)
        assert row is not None
        row.home_subaccount_id = sub.id
        row.owner_id = None
    with transaction(ctx.sessions) as session:
        row = session.get(User, bot.id)
        assert row is not None
        assert reminder_recipients(session, technical_user=row) == sorted(
            [admin_a.email or "", admin_b.email or ""]
        )
    secret_id = _secret_expiring(ctx, bot, timedelta(days=20))
    _tick(ctx)
    for admin in (admin_a, admin_b):
        [mail] = smtp.to(admin.email or "")
        assert secret_id in body_of(mail) and "acme-remind" in body_of(mail)
    assert smtp.to(owner.email or "") == []


def test_a_node_that_read_before_another_committed_writes_no_second_mail(
    ctx: AppContext, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = f.person(ctx)
    bot, _ = f.technical_user(ctx, owner=owner)
    _secret_expiring(ctx, bot, timedelta(days=3))
    _tick(ctx)
    assert len(smtp.to(owner.email or "")) == 1
    # The second node read the reminders before the first committed: only the UNIQUE
    # constraint stands between it and a duplicate.
    monkeypatch.setattr(reminders, "_recorded", lambda session, ids: {})
    written = reminders.send_reminders(
        ctx.sessions, ctx.transport, ctx.clock, thresholds=(30, 7, 1), public_url="http://x"
    )
    assert written == 0 and len(smtp.to(owner.email or "")) == 1


def test_racing_nodes_send_each_reminder_once(ctx: AppContext, smtp: SmtpSink) -> None:
    owner = f.person(ctx)
    bots = [f.technical_user(ctx, owner=owner)[0] for _ in range(3)]
    for bot in bots:
        _secret_expiring(ctx, bot, timedelta(days=6))
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def node() -> None:
        start.wait()
        try:
            reminders.send_reminders(
                ctx.sessions, ctx.transport, ctx.clock, thresholds=(30, 7, 1), public_url="x"
            )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=node) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(smtp.to(owner.email or "")) == 3


def test_reminder_days_are_parsed_and_bad_ones_refused() -> None:
    assert parse_thresholds("1, 7,30,7") == (30, 7, 1)
    assert Settings(expiry_reminder_days="14").expiry_reminder_days == "14"
    with pytest.raises(ValueError, match="EXPIRY_REMINDER_DAYS"):
        Settings(expiry_reminder_days="30,soon")


def test_a_secret_already_rotated_out_gets_no_reminder(
    ctx: AppContext, smtp: SmtpSink, clock: FrozenClock
) -> None:
    from ostiary.credentials import rotation

    owner = f.person(ctx)
    bot, _ = f.technical_user(ctx, owner=owner)
    clock.advance(timedelta(hours=1))
    with transaction(ctx.sessions) as session:
        made = rotation.rotate(
            session,
            ctx,
            actor=session.get(User, owner.id),  # type: ignore[arg-type]
            user=session.get(User, bot.id),  # type: ignore[arg-type]
            old_valid_until=clock.now() + timedelta(days=3),
            expires_at=clock.now() + timedelta(days=20),
        )
    _tick(ctx)  # the old one ends in 3 days, but its replacement outlasts it
    [only] = smtp.to(owner.email or "")
    assert made.secret_id in only["Subject"]  # the new one is inside 30 days itself
