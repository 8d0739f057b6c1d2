"""The standard scheduled jobs of ``ostiary serve``; add a job here with one ``register`` line."""

from __future__ import annotations

from datetime import timedelta

from ostiary.audit import checkpoints
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.mail.service import retry_unsent
from ostiary.reminders.service import parse_thresholds, send_reminders
from ostiary.scheduler.service import Scheduler


def standard_scheduler(ctx: AppContext) -> Scheduler:
    """A scheduler with every standard job registered, in the order they run."""
    scheduler = Scheduler(
        sessions=ctx.sessions,
        clock=ctx.clock,
        interval=float(ctx.settings.scheduler_interval_seconds),
    )
    thresholds = parse_thresholds(ctx.settings.expiry_reminder_days)
    scheduler.register(
        "expiry-reminders",
        lambda: send_reminders(
            ctx.sessions,
            ctx.transport,
            ctx.clock,
            thresholds=thresholds,
            public_url=ctx.settings.public_url,
        ),
    )
    scheduler.register("mail-retry", lambda: retry_unsent(ctx.sessions, ctx.transport, ctx.clock))
    every = timedelta(minutes=ctx.settings.audit_checkpoint_minutes)

    def checkpoint() -> None:
        with transaction(ctx.sessions) as session:
            checkpoints.write_if_due(session, ctx, every=every)

    scheduler.register("audit-checkpoint", checkpoint)
    return scheduler
