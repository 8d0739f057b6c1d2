"""The group-commit writer's edges: stopped writers, stuck stores, a dying thread, and one
bad write in a batch."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import psycopg
import pytest
from sqlalchemy import Column, MetaData, String, Table, exc, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from ostiary.db import make_engine, make_session_factory, store_wide
from ostiary.runtime.writer import BatchWriter, Row, StoreUnavailable, Write


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}", immediate=True)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE notes (body TEXT NOT NULL)")
    yield make_session_factory(engine)
    engine.dispose()


def _note(body: str):  # type: ignore[no-untyped-def]
    def apply(session: Session) -> None:
        session.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": body})

    return apply


class _Gate:
    """A gate the test controls: ``reached`` is set once a batch stands before it, and it
    opens when the test releases ``held``."""

    def __init__(self, held: threading.Lock) -> None:
        self.held = held
        self.reached = threading.Event()

    def __enter__(self) -> None:
        self.reached.set()
        self.held.acquire()

    def __exit__(self, *_: object) -> None:
        self.held.release()


def _stuck_gate() -> tuple[threading.Lock, _Gate]:
    """A gate that stays shut (like another process that never lets go) until the test
    releases the returned lock."""
    held = threading.Lock()
    held.acquire()
    return held, _Gate(held)


async def _until(event: threading.Event, timeout: float = 10.0) -> None:
    """Wait (without blocking the event loop) until the writer thread set ``event``."""
    if not await asyncio.to_thread(event.wait, timeout):
        raise AssertionError("the writer thread never got there")


async def _queued() -> None:
    """Let the writes just scheduled run up to the point where they wait for their batch.

    ``BatchWriter.write`` queues synchronously in its first step (the writer thread is
    running), and the event loop runs ready tasks first in, first out: one turn of the
    loop runs each scheduled write's first step before this coroutine resumes.
    """
    await asyncio.sleep(0)


def _notes(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(text("SELECT body FROM notes ORDER BY body")))


def test_writes_are_committed_and_a_stopped_writer_refuses_new_ones(
    sessions: sessionmaker[Session],
) -> None:
    async def scenario() -> None:
        writer = BatchWriter(sessions)
        await writer.start()
        await asyncio.gather(*(writer.write(_note(f"n{i}")) for i in range(20)))
        await writer.stop()
        with pytest.raises(StoreUnavailable):
            await writer.write(_note("late"))

    asyncio.run(scenario())
    assert _notes(sessions) == sorted(f"n{i}" for i in range(20))


def test_a_write_not_committed_in_time_is_unavailable_not_acknowledged(
    sessions: sessionmaker[Session],
) -> None:
    """A writer stuck behind the gate (another process that never lets go) must not leave
    the caller waiting forever: it gets StoreUnavailable (503) after ``wait_seconds``."""
    held, gate = _stuck_gate()

    async def scenario() -> None:
        writer = BatchWriter(sessions, gate=gate, wait_seconds=0.2)
        await writer.start()
        committing = asyncio.ensure_future(writer.write(_note("committing")))
        await _until(gate.reached)  # taken into a batch; the batch waits at the gate
        with pytest.raises(StoreUnavailable, match="nothing committed within"):
            await writer.write(_note("queued"))
        with pytest.raises(StoreUnavailable):
            await committing
        held.release()  # the gate opens
        await writer.stop()

    asyncio.run(scenario())
    # The batch that was already committing lands (at least once); the write still
    # queued when its caller got 503 is dropped, so that 503 meant "not stored".
    assert _notes(sessions) == ["committing"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_writer_thread_that_dies_fails_what_it_held_and_refuses_more(
    sessions: sessionmaker[Session],
) -> None:
    def fatal(_: Session) -> None:
        raise SystemExit("the writer thread ends here")

    async def scenario() -> None:
        writer = BatchWriter(sessions)
        await writer.start()
        with pytest.raises(StoreUnavailable):
            await writer.write(fatal)
        with pytest.raises(StoreUnavailable):
            await writer.write(_note("after"))
        await writer.stop()

    asyncio.run(scenario())
    assert _notes(sessions) == []


def test_one_bad_write_does_not_fail_the_others_in_its_batch(
    sessions: sessionmaker[Session],
) -> None:
    def bad(session: Session) -> None:
        session.execute(text("INSERT INTO notes (body) VALUES (NULL)"))

    async def scenario() -> list[BaseException | None]:
        writer = BatchWriter(sessions)
        await writer.start()
        results = await asyncio.gather(
            writer.write(_note("a")),
            writer.write(bad),
            writer.write(_note("b")),
            return_exceptions=True,
        )
        await writer.stop()
        return list(results)

    results = asyncio.run(scenario())
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreUnavailable)
    assert _notes(sessions) == ["a", "b"]


def test_a_full_queue_refuses_instead_of_growing(sessions: sessionmaker[Session]) -> None:
    held, gate = _stuck_gate()

    async def scenario() -> None:
        writer = BatchWriter(sessions, gate=gate, max_queued=3, wait_seconds=5)
        await writer.start()
        first = asyncio.ensure_future(writer.write(_note("a")))
        await _until(gate.reached)  # "a" is in the batch stuck at the gate
        queued = [asyncio.ensure_future(writer.write(_note(n))) for n in "bcd"]
        await _queued()
        with pytest.raises(StoreUnavailable, match="too many writes"):
            await writer.write(_note("e"))
        held.release()
        await asyncio.gather(first, *queued)
        await writer.stop()

    asyncio.run(scenario())
    assert _notes(sessions) == ["a", "b", "c", "d"]


def test_an_unreachable_store_fails_a_batch_at_once_without_retrying_each_write() -> None:
    """Retrying each write of a batch against a database that cannot be reached would make
    every caller wait for one connection attempt per queued write."""
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/nothing", pool=False)
    entries: list[int] = []
    first_reached = threading.Event()
    first_may_go = threading.Event()

    class CountingGate:
        def __enter__(self) -> None:
            entries.append(1)
            if len(entries) == 1:
                first_reached.set()
                first_may_go.wait(10)  # until the other writes are queued behind it

        def __exit__(self, *_: object) -> None:
            pass

    async def scenario() -> list[BaseException | None]:
        writer = BatchWriter(make_session_factory(engine), gate=CountingGate())
        await writer.start()
        first = asyncio.ensure_future(writer.write(_note("first")))
        await _until(first_reached)
        rest = [asyncio.ensure_future(writer.write(_note(f"n{i}"))) for i in range(9)]
        await _queued()
        first_may_go.set()
        results = await asyncio.gather(first, *rest, return_exceptions=True)
        await writer.stop()
        return list(results)

    results = asyncio.run(scenario())
    engine.dispose()
    assert all(isinstance(r, StoreUnavailable) for r in results)
    assert len(entries) == 2  # the first write's batch, then one batch of the other nine


@pytest.fixture
def bounded_notes(database_url: str) -> Iterator[tuple[sessionmaker[Session], Table]]:
    """A table of short, required notes on the test's backend (PostgreSQL enforces the
    length, SQLite does not), dropped again at the end."""
    engine = make_engine(database_url, immediate=True)
    table = Table(
        f"writer_notes_{uuid.uuid4().hex[:8]}",
        MetaData(),
        Column("body", String(10), nullable=False),
    )
    table.create(engine)
    try:
        yield make_session_factory(engine), table
    finally:
        table.drop(engine)
        engine.dispose()


def test_bad_rows_in_a_group_commit_fail_alone_and_the_good_ones_commit(
    backend: str, bounded_notes: tuple[sessionmaker[Session], Table]
) -> None:
    """A NUL byte (refused by psycopg before it reaches the server, no SQLSTATE), a value
    over the column's length and a NOT NULL violation, each in one write of a batch full
    of good ones: only those writes fail, on every backend."""
    sessions, table = bounded_notes
    held, gate = _stuck_gate()
    entered = threading.Event()

    class EnteringGate:
        def __enter__(self) -> None:
            entered.set()
            gate.__enter__()

        def __exit__(self, *_: object) -> None:
            gate.__exit__()

    def note(body: str | None) -> Write:
        return Row(table, {"body": body})

    def function_note(body: str) -> Write:
        def apply(session: Session) -> None:
            session.execute(insert(table).values(body=body))

        return apply

    writes: dict[str, Write] = {
        "good-1": note("good-1"),
        "nul": note("nul\x00byte"),
        "good-2": note("good-2"),
        "too-long": note("x" * 11),
        "good-3": function_note("good-3"),
        "null": note(None),
        "good-4": note("good-4"),
        "fn-nul": function_note("fn\x00nul"),
        "good-5": function_note("good-5"),
    }

    async def scenario() -> dict[str, BaseException | None]:
        writer = BatchWriter(sessions, gate=EnteringGate())
        await writer.start()
        # The first write's batch waits at the gate, so all the others queue behind it
        # and are committed together in the next batch.
        first = asyncio.ensure_future(writer.write(note("first")))
        assert await anyio.to_thread.run_sync(entered.wait, 5)
        queued = {name: asyncio.ensure_future(writer.write(w)) for name, w in writes.items()}
        await asyncio.sleep(0)  # let every write above reach the queue
        held.release()
        await first
        results = await asyncio.gather(*queued.values(), return_exceptions=True)
        await writer.stop()
        return dict(zip(queued, results, strict=True))

    results = asyncio.run(scenario())
    refused_by_postgresql = {"nul", "too-long", "fn-nul"} if backend == "postgresql" else set()
    failed = {name for name, result in results.items() if result is not None}
    assert failed == {"null"} | refused_by_postgresql
    assert all(isinstance(results[name], StoreUnavailable) for name in failed)
    with sessions() as session:
        stored = set(session.scalars(select(table.c.body)))
    assert {f"good-{i}" for i in range(1, 6)} | {"first"} <= stored
    assert stored.isdisjoint({"x" * 11} if backend == "postgresql" else set())


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (exc.DataError("INSERT", {}, psycopg.DataError("text fields cannot contain NUL")), False),
        (exc.IntegrityError("INSERT", {}, psycopg.errors.NotNullViolation("null")), False),
        (exc.ProgrammingError("INSERT", {}, psycopg.ProgrammingError("cannot adapt")), False),
        (exc.OperationalError("INSERT", {}, psycopg.errors.SerializationFailure("x")), False),
        (exc.OperationalError("INSERT", {}, psycopg.OperationalError("refused")), True),
        (exc.OperationalError("INSERT", {}, psycopg.errors.AdminShutdown("bye")), True),
        (exc.InterfaceError("INSERT", {}, psycopg.InterfaceError("closed")), True),
        (exc.TimeoutError("no pooled connection"), True),
        (ValueError("a bug in one write"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_driver_errors_are_classified_by_code_then_by_class(
    error: BaseException, expected: bool
) -> None:
    assert store_wide(error) is expected
