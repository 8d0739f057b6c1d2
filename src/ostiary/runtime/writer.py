"""Group commit: many requests' writes share one transaction, each request still waits for
its own write to be durable before it answers.

One writer thread per process takes everything queued, commits it in one transaction, and
hands the outcomes back to the event loop in one call. While it commits, new writes queue
up for the next batch: under load N fsyncs become one, and an idle writer adds no delay.

A write is either a function of the session or a ``Row`` to insert. Consecutive rows of one
table go in as one ``executemany`` of a statement compiled once, with SQLAlchemy's own bind
processors per column (so stored values are exactly what the ORM writes and reads), but
without building a Core statement per batch. Measured with benchmarks/runtime.py and
``benchmarks/README.md``: an ORM object per message cost ~220 µs of writer CPU; a Core
``insert`` per batch ~155 µs; this path and a dedicated thread instead of a thread-pool hop
per batch lower it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from sqlalchemy import Dialect, Table, insert
from sqlalchemy.orm import Session, sessionmaker

from ostiary.db import store_wide

log = logging.getLogger("ostiary.runtime")


@dataclass(frozen=True)
class Row:
    """One row to insert into ``table``: a value for every column (no defaults apply)."""

    table: Table
    values: dict[str, Any]


Write = Callable[[Session], object] | Row  # a function's result is ignored
_Item = tuple[Write, asyncio.Future[None]]


class StoreUnavailable(Exception):
    """The database refused or could not take the write."""


class BatchWriter:
    """Queues writes and commits them in batches on one writer thread per process."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        gate: AbstractContextManager[None] | None = None,
        max_batch: int = 500,
        wait_seconds: float = 30.0,
        max_queued: int = 20_000,
    ) -> None:
        self._sessions = sessions
        self._gate = gate or contextlib.nullcontext()
        self._max_batch = max_batch
        self._wait_seconds = wait_seconds
        self._max_queued = max_queued
        self._pending: deque[_Item] = deque()
        self._ready = threading.Condition()
        self._stopping = False  # stop() was called: drain, then end
        self._dead = False  # the thread ended: nothing queued will ever be committed
        self._thread: threading.Thread | None = None
        self._inserts: dict[tuple[Table, Dialect], _Insert] = {}

    def alive(self) -> bool:
        """False once the writer thread has ended (stopped, or died)."""
        thread = self._thread
        return not self._dead and (thread is None or thread.is_alive())

    async def start(self) -> None:
        """Start the writer thread (once: a stopped writer stays stopped)."""
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="ostiary-writer", daemon=True)
            self._thread.start()

    async def stop(self, timeout: float = 15.0) -> None:
        """Commit what is queued, then stop the thread (give up waiting after ``timeout``)."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        thread = self._thread
        if thread is not None:
            await anyio.to_thread.run_sync(thread.join, timeout)
        await asyncio.sleep(0)  # let the last batch's outcomes reach their futures

    async def write(self, apply: Write, *, patient: bool = False) -> None:
        """Run ``apply`` in a transaction; return once it is committed, or raise
        ``StoreUnavailable``: also when it was not taken into a batch within
        ``wait_seconds`` (it is then dropped, so a 503 means not stored; only a batch
        already committing may still land). ``patient`` writes (housekeeping) wait as long
        as it takes."""
        if self._thread is None:
            await self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._put((apply, future))
        if patient:
            await future
            return
        expiry = loop.call_later(self._wait_seconds, _expire, future, self._wait_seconds)
        try:
            await future
        finally:
            expiry.cancel()

    def submit(self, apply: Write) -> None:
        """Queue ``apply`` without waiting for it (audit events of denials, usage)."""
        if self._thread is None:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_swallow)
        try:
            self._put((apply, future))
        except StoreUnavailable as exc:
            log.warning("background write dropped: %s", exc)

    def _put(self, item: _Item) -> None:
        with self._ready:
            if self._dead or self._thread is None:
                raise StoreUnavailable("the writer is stopped")
            if len(self._pending) >= self._max_queued:
                raise StoreUnavailable("too many writes waiting for the store")
            self._pending.append(item)
            if len(self._pending) == 1:
                self._ready.notify()

    # ------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        batch: list[_Item] = []
        try:
            while True:
                with self._ready:
                    while not self._pending and not self._stopping:
                        self._ready.wait()
                    if not self._pending:
                        self._dead = True
                        return
                    while self._pending and len(batch) < self._max_batch:
                        item = self._pending.popleft()
                        if not item[1].done():  # expired: its caller was told 503
                            batch.append(item)
                if not batch:
                    continue
                _hand_back(batch, self._commit_batch(batch))
                batch = []
        except BaseException as exc:
            with self._ready:
                self._dead = True
                batch += self._pending
                self._pending.clear()
            _hand_back(batch, [exc] * len(batch))
            raise

    def _commit_batch(self, batch: list[_Item]) -> list[BaseException | None]:
        """Commit the batch together. If that fails because of one write (bad data, a
        deadlock victim), commit the writes one by one; if the store itself failed, fail
        them all at once: retrying each would wait for the same failure many times over."""
        try:
            self._commit([apply for apply, _ in batch])
            return [None] * len(batch)
        except Exception as exc:
            if store_wide(exc):
                log.warning("batch of %d failed: %s", len(batch), exc)
                return [exc] * len(batch)
            log.warning("batch of %d failed; retrying one by one", len(batch), exc_info=True)
        outcomes: list[BaseException | None] = []
        for apply, future in batch:
            if future.done():  # its caller has been told 503 meanwhile: leave it out
                outcomes.append(None)
                continue
            try:
                self._commit([apply])
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
                if store_wide(exc):  # the store went away meanwhile: fail the rest too
                    outcomes += [exc] * (len(batch) - len(outcomes))
                    break
        return outcomes

    def _commit(self, writes: list[Write]) -> None:
        with self._gate, self._sessions() as session, session.begin():
            rows: list[Row] = []
            for apply in writes:
                if isinstance(apply, Row):
                    if rows and rows[0].table is not apply.table:
                        self._insert(session, rows)
                    rows.append(apply)
                    continue
                self._insert(session, rows)  # keep the order of rows and other writes
                apply(session)
            self._insert(session, rows)

    def _insert(self, session: Session, rows: list[Row]) -> None:
        """Insert ``rows`` (all of one table) in one executemany, and empty the list."""
        if not rows:
            return
        connection = session.connection()
        key = (rows[0].table, connection.dialect)
        prepared = self._inserts.get(key)
        if prepared is None:
            prepared = self._inserts[key] = _Insert(*key)
        connection.exec_driver_sql(prepared.sql, [prepared.parameters(row.values) for row in rows])
        rows.clear()


class _Insert:
    """``INSERT`` of every column of ``table``, compiled once for ``dialect``, and how to
    turn a row's values into the driver's parameters (SQLAlchemy's bind processors)."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        compiled = insert(table).compile(
            dialect=dialect, column_keys=[column.key for column in table.columns]
        )
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        names = compiled.positiontup if self.positional else list(compiled.binds)
        assert names is not None
        self.columns = [
            (name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        ]

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The driver's parameters for ``values``, which name every column (no defaults)."""
        if self.positional:
            return tuple(
                process(values[name]) if process else values[name] for name, process in self.columns
            )
        return {
            name: process(values[name]) if process else values[name]
            for name, process in self.columns
        }


def _hand_back(batch: list[_Item], outcomes: list[BaseException | None]) -> None:
    """Pass outcomes to their futures, on the event loop each future belongs to."""
    by_loop: dict[asyncio.AbstractEventLoop, tuple[list[_Item], list[BaseException | None]]]
    by_loop = {}
    for item, outcome in zip(batch, outcomes, strict=True):
        items, results = by_loop.setdefault(item[1].get_loop(), ([], []))
        items.append(item)
        results.append(outcome)
    for loop, (items, results) in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle, items, results)


def _expire(future: asyncio.Future[None], seconds: float) -> None:
    if not future.done():
        future.set_exception(StoreUnavailable(f"nothing committed within {seconds:g} s"))


def _settle(batch: list[_Item], outcomes: list[BaseException | None]) -> None:
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():
            continue
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(StoreUnavailable(str(outcome)))


def _swallow(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("background write failed: %s", future.exception())
