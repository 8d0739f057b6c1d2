"""Named jobs run every ``OSTIARY_SCHEDULER_INTERVAL_SECONDS`` by whichever node holds the lease.

Every process (every worker of every node) runs a ``Scheduler``. At each tick it tries to
take the one lease row ``scheduler_leases.name = 'jobs'``: a single UPDATE that succeeds
only when the lease is free, expired or already its own, so on PostgreSQL as on SQLite at
most one node holds it at any time. The holder runs every registered job, in registration
order, each in its own transactions; a job's failure is logged and recorded, and the next
job still runs. The lease lasts ``LEASE_FACTOR`` intervals and is renewed at every tick, so
a node that dies hands over within that time.

Jobs must be idempotent (a job that outlives the lease may overlap with the next holder's
run): the reminder job relies on a UNIQUE constraint, mail retry on an atomic claim.
Register jobs by name with ``Scheduler.register``; ``ostiary.scheduler.jobs`` lists the
standard ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio.to_thread
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ostiary.clock import Clock
from ostiary.scheduler.models import SchedulerJobRun, SchedulerLease

log = logging.getLogger("ostiary.scheduler")
LEASE_NAME = "jobs"
#: The lease outlives a tick by this many intervals (renewed at each).
LEASE_FACTOR = 3

#: A job takes no arguments (bind what it needs when registering) and owns its transactions;
#: what it returns (a count, say) is ignored.
Job = Callable[[], object]


def node_name() -> str:
    """This process's name in the lease: host, process ID and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(
    session: Session, *, clock: Clock, holder: str, ttl: timedelta, name: str = LEASE_NAME
) -> bool:
    """Take or renew the lease for ``ttl``; ``False`` while another holder's is unexpired."""
    now = clock.now()
    taken = session.execute(
        update(SchedulerLease)
        .where(
            SchedulerLease.name == name,
            or_(SchedulerLease.holder == holder, SchedulerLease.expires_at <= now),
        )
        .values(holder=holder, expires_at=now + ttl)
    )
    if taken.rowcount:  # type: ignore[attr-defined]
        return True
    if session.get(SchedulerLease, name) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(SchedulerLease(name=name, holder=holder, expires_at=now + ttl))
    except IntegrityError:
        return False  # another node made the row first: it holds the lease
    return True


def release(session: Session, *, clock: Clock, holder: str, name: str = LEASE_NAME) -> None:
    """Give the lease up (at shutdown) so another node takes over at its next tick."""
    session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
        .values(expires_at=clock.now())
    )


@dataclass
class Scheduler:
    """The registered jobs of one process and the loop that runs them under the lease."""

    sessions: sessionmaker[Session]
    clock: Clock
    interval: float
    holder: str = field(default_factory=node_name)
    jobs: dict[str, Job] = field(default_factory=dict)

    def register(self, name: str, job: Job) -> None:
        """Add a job under a unique name; it runs at every tick this node holds the lease."""
        if name in self.jobs:
            raise ValueError(f"a scheduler job named {name!r} is registered already")
        self.jobs[name] = job

    @property
    def ttl(self) -> timedelta:
        """How long a taken lease lasts."""
        return timedelta(seconds=max(self.interval, 1.0) * LEASE_FACTOR)

    def run_once(self) -> bool:
        """One tick: take the lease, then run every job; ``False`` when another node holds it."""
        with self.sessions() as session, session.begin():
            if not acquire(session, clock=self.clock, holder=self.holder, ttl=self.ttl):
                return False
        for name, job in self.jobs.items():
            self._run(name, job)
        return True

    def _run(self, name: str, job: Job) -> None:
        started = self.clock.now()
        error: str | None = None
        try:
            job()
        except Exception as exc:
            log.warning("scheduled job %s failed", name, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
        try:
            with self.sessions() as session, session.begin():
                self._record(session, name=name, started=started, error=error)
        except Exception:
            log.warning("could not record the run of job %s", name, exc_info=True)

    def _record(self, session: Session, *, name: str, started: datetime, error: str | None) -> None:
        row = session.scalars(
            select(SchedulerJobRun).where(SchedulerJobRun.name == name).with_for_update()
        ).first()
        if row is None:
            row = SchedulerJobRun(name=name, runs=0)
            session.add(row)
        row.runs += 1
        row.last_started_at = started
        row.last_finished_at = self.clock.now()
        row.last_node = self.holder
        row.last_error = error

    def stop(self) -> None:
        """Release the lease if this node holds it."""
        try:
            with self.sessions() as session, session.begin():
                release(session, clock=self.clock, holder=self.holder)
        except Exception:
            log.warning("could not release the scheduler lease", exc_info=True)

    async def loop(self) -> None:
        """Tick every ``interval`` seconds (the first after one interval) until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await anyio.to_thread.run_sync(self.run_once)
            except Exception:
                # The database may be down: try again at the next tick.
                log.warning("scheduler tick failed", exc_info=True)


def last_runs(session: Session) -> list[SchedulerJobRun]:
    """Every job's last run, by name."""
    return list(session.scalars(select(SchedulerJobRun).order_by(SchedulerJobRun.name)))
