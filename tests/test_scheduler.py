"""The scheduler: one lease holder at a time, jobs by name, a failing job does not stop the rest."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.scheduler.service import Scheduler, last_runs


def _node(ctx: AppContext, name: str, ran: list[str]) -> Scheduler:
    node = Scheduler(sessions=ctx.sessions, clock=ctx.clock, interval=60.0, holder=name)
    node.register("record", lambda: ran.append(name))
    return node


def test_one_node_holds_the_lease_until_it_expires_or_is_released(
    ctx: AppContext, clock: FrozenClock
) -> None:
    ran: list[str] = []
    a, b = _node(ctx, "node-a", ran), _node(ctx, "node-b", ran)
    assert a.run_once() and not b.run_once()
    clock.advance(timedelta(seconds=60))
    assert a.run_once() and not b.run_once()  # renewed at each tick
    assert ran == ["node-a", "node-a"]
    clock.advance(a.ttl + timedelta(seconds=1))  # node-a died: its lease runs out
    assert b.run_once() and not a.run_once()
    b.stop()  # shutting down hands over at once
    assert a.run_once()
    assert ran == ["node-a", "node-a", "node-b", "node-a"]


def test_a_failing_job_is_recorded_and_the_next_job_still_runs(ctx: AppContext) -> None:
    ran: list[str] = []
    node = Scheduler(sessions=ctx.sessions, clock=ctx.clock, interval=60.0, holder="n1")

    def broken() -> None:
        raise RuntimeError("boom")

    node.register("broken", broken)
    node.register("after", lambda: ran.append("after"))
    with pytest.raises(ValueError, match="registered already"):
        node.register("after", lambda: None)
    assert node.run_once() and node.run_once()
    assert ran == ["after", "after"]
    with transaction(ctx.sessions) as session:
        runs = {r.name: (r.runs, r.last_error, r.last_node) for r in last_runs(session)}
    assert runs == {"after": (2, None, "n1"), "broken": (2, "RuntimeError: boom", "n1")}


def test_the_standard_scheduler_signs_an_audit_checkpoint_when_one_is_due(
    ctx: AppContext, clock: FrozenClock
) -> None:
    from sqlalchemy import func, select

    from ostiary.audit.actions import AuditAction
    from ostiary.audit.models import AuditCheckpoint
    from ostiary.audit.service import record
    from ostiary.scheduler.jobs import standard_scheduler

    def checkpoints() -> int:
        with transaction(ctx.sessions) as session:
            return session.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0

    def event() -> None:
        with transaction(ctx.sessions) as session:
            record(
                session, clock=clock, actor="P000001", action=AuditAction.group_changed, target="x"
            )

    node = standard_scheduler(ctx)
    before = checkpoints()
    event()
    assert node.run_once() and checkpoints() == before + 1
    event()
    clock.advance(timedelta(minutes=59))
    assert node.run_once() and checkpoints() == before + 1  # the last one is not an hour old
    clock.advance(timedelta(minutes=1))
    assert node.run_once() and checkpoints() == before + 2
    clock.advance(timedelta(hours=2))
    assert node.run_once() and checkpoints() == before + 2  # nothing happened since
