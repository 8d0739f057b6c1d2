"""Where the throttle's failures are shared: ``auth_failures``, written in batches by one
small thread per process and polled by another for the keys at or over their limits.

Writing and polling exclude each other (one lock), so a poll knows exactly which of this
process's failures its counts include: those written before it began. That lets the
throttle add its own newer failures to the shared counts without counting one twice.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Integer,
    String,
    cast,
    delete,
    func,
    insert,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session, sessionmaker

from ostiary.clock import Clock
from ostiary.db import WriteGate, transaction
from ostiary.gate.keys import HUMAN, Account, Address, Failure, Key, Limits, Pair, Tally
from ostiary.gate.models import AuthFailure, AuthFailureClear, Kind

log = logging.getLogger("ostiary.gate")

MAX_BATCH = 500
MAX_QUEUED = 20_000
MACHINE = frozenset(Kind) - HUMAN
_STOP = object()


@dataclass(frozen=True)
class Polled:
    """What one poll found: the keys at or over a limit, the accounts cleared within the
    window, and which of this process's failures the counts include."""

    over: dict[Key, Tally]
    clears: list[tuple[Account, datetime]]
    seen: list[Failure]
    now: datetime


class FailureLog:
    """The writer and poller threads of one process, and a way to run either in place."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session],
        clock: Clock,
        limits: Limits,
        on_poll: Callable[[Polled], None],
        gate: WriteGate | None = None,
        interval: float = 0.2,
    ) -> None:
        self._sessions = sessions
        self._read_sessions = read_sessions
        self._clock = clock
        self._limits = limits
        self._on_poll = on_poll
        self._gate = gate
        self._interval = interval
        self._queue: queue.Queue[object] = queue.Queue(maxsize=MAX_QUEUED)
        self._io = threading.Lock()  # a write or a poll, never both
        self._lock = threading.Lock()
        self._unseen: list[Failure] = []  # written, not yet included in a poll
        self._dropped = 0
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._poller: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Poll once, then start the writer and poller threads."""
        if self._writer is not None:
            return
        self._stop.clear()
        try:
            self.poll()
        except Exception:  # the database may be briefly away; the poller tries again
            log.warning("could not read the shared failure counts", exc_info=True)
        self._writer = threading.Thread(
            target=self._write_loop, name="auth-failure-writer", daemon=True
        )
        self._poller = threading.Thread(
            target=self._poll_loop, name="auth-failure-poller", daemon=True
        )
        self._writer.start()
        self._poller.start()

    def stop(self) -> None:
        """Stop polling, write what is queued, stop the writer."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=2)
            self._poller = None
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=2)
            writer.join(timeout=10)
            if writer.is_alive():
                return  # still stuck at the database: it holds the gate
        if self._gate is not None:
            self._gate.close()

    def queue(self, failure: Failure) -> None:
        """Hand a failure to the writer; never blocks, never raises."""
        try:
            self._queue.put_nowait(failure)
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far is written or given up; without a running
        writer, write it in this thread."""
        writer = self._writer
        if writer is None or not writer.is_alive():
            self._drain()
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    # ------------------------------------------------------------ writing

    def _write_loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if self._handle(batch):
                return

    def _drain(self) -> None:
        batch: list[object] = []
        with contextlib.suppress(queue.Empty):
            while True:
                batch.append(self._queue.get_nowait())
        self._handle(batch)

    def _handle(self, batch: list[object]) -> bool:
        """Write the failures of ``batch``, then wake flushes; true if it holds the stop."""
        self._write([item for item in batch if isinstance(item, Failure)])
        for item in batch:
            if isinstance(item, threading.Event):
                item.set()
        return any(item is _STOP for item in batch)

    def _write(self, failures: list[Failure]) -> None:
        failures = [f for f in failures if not f.forgotten]
        if not failures:
            return
        rows = [
            {"kind": f.account.kind, "account": f.account.id, "address": f.address, "at": f.at}
            for f in failures
        ]
        with self._io:
            try:
                with self._gate or contextlib.nullcontext(), transaction(self._sessions) as s:
                    s.execute(insert(AuthFailure), rows)
            except Exception:  # best effort: the failures still count in this process
                log.warning("could not store %d failed authentications", len(rows), exc_info=True)
                return
            with self._lock:
                self._unseen.extend(failures)

    # ------------------------------------------------------------ polling

    def _poll_loop(self) -> None:
        pause = self._interval
        while not self._stop.wait(pause):
            began = time.monotonic()
            try:
                self.poll()
            except Exception:  # keep the last counts; the next poll tries again
                log.warning("could not read the shared failure counts", exc_info=True)
            # Under a flood the window holds many rows and a poll gets dearer (measured:
            # 50,000 rows, ~100 ms on SQLite, ~300 ms on a busy PostgreSQL): poll at most a
            # fifth of the time, so the database and this process keep their cores.
            pause = max(self._interval, 4 * (time.monotonic() - began))
            with self._lock:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                log.warning("%d failed authentications not stored: writer queue full", dropped)

    def poll(self) -> None:
        """Read the keys at or over a limit and hand them to ``on_poll``."""
        with self._io:
            now = self._clock.now()
            with self._lock:
                seen, self._unseen = self._unseen, []
            try:
                with self._read_sessions() as session, session.begin():
                    rows = session.execute(over_limits(now, self._limits)).all()
            except BaseException:
                with self._lock:
                    self._unseen[:0] = seen
                raise
            self._on_poll(_parse(rows, seen, now))


def over_limits(now: datetime, limits: Limits) -> CompoundSelect[Any]:
    """One statement: per level, the keys whose failures in the window reach its limit,
    and the accounts cleared within the window (``count`` 0)."""
    start = now - limits.window
    failures, clears = AuthFailure, AuthFailureClear
    count, oldest, newest = func.count(), func.min(failures.at), func.max(failures.at)
    recent = failures.at > start
    human, machine = failures.kind.in_(sorted(HUMAN)), failures.kind.in_(sorted(MACHINE))
    nothing = cast(null(), String)

    def level(name: str) -> Any:
        return literal_column(f"'{name}'", String).label("level")

    pairs = (
        select(level("pair"), failures.kind, failures.account, failures.address, count)
        .add_columns(oldest, newest)
        .where(recent, human)
        .group_by(failures.kind, failures.account, failures.address)
        .having(count >= limits.per_account_address)
    )
    accounts = (
        select(level("account"), failures.kind, failures.account, nothing, count, oldest, newest)
        .where(recent, human)
        .group_by(failures.kind, failures.account)
        .having(count >= limits.per_account)
    )
    people = (
        select(level("human"), nothing, nothing, failures.address, count, oldest, newest)
        .where(recent, human)
        .group_by(failures.address)
        .having(count >= limits.per_address)
    )
    machines = (
        select(level("machine"), nothing, nothing, failures.address, count, oldest, newest)
        .where(recent, machine)
        .group_by(failures.address)
        .having(count >= limits.machine_per_address)
    )
    cleared = select(
        level("clear"),
        clears.kind,
        clears.account,
        nothing,
        literal_column("0", Integer),
        clears.at,
        clears.at,
    ).where(clears.at > start)
    return union_all(pairs, accounts, people, machines, cleared)


def _parse(rows: Sequence[Any], seen: list[Failure], now: datetime) -> Polled:
    over: dict[Key, Tally] = {}
    cleared: list[tuple[Account, datetime]] = []
    for level, kind, account, address, count, oldest, newest in rows:
        key: Key
        if level == "clear":
            cleared.append((Account(Kind(kind), account), oldest))
            continue
        if level == "pair":
            key = Pair(Account(Kind(kind), account), address)
        elif level == "account":
            key = Account(Kind(kind), account)
        else:
            key = Address(level == "human", address)
        over[key] = Tally(int(count), oldest, newest)
    return Polled(over, cleared, seen, now)


def cleanup(session: Session, *, now: datetime, window: timedelta) -> int:
    """Delete failures and clears that left the window; the number of failures deleted."""
    start = now - window
    removed = session.execute(delete(AuthFailure).where(AuthFailure.at <= start))
    session.execute(delete(AuthFailureClear).where(AuthFailureClear.at <= start))
    return int(getattr(removed, "rowcount", 0) or 0)
