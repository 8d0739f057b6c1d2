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
