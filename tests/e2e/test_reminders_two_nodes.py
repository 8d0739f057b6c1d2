"""Two ``ostiary serve`` processes on one PostgreSQL: each expiry reminder is mailed once.

The servers run on the real clock, so instead of moving their clock the test moves the
credential's end towards now (40 → 29 → 6 → ½ days), which puts it inside each threshold
just as passing time would. After each mail it waits until the reminder job has run again
several times (on whichever node holds the lease) and checks nothing more was sent; half
way it stops the lease holder, and the other node carries on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import Engine

from ostiary.context import AppContext, build_context
from ostiary.credentials.models import TechnicalUserSecret
from ostiary.credentials.secrets import add_secret
from ostiary.db import transaction
from ostiary.identity.models import User
from ostiary.settings import Settings
from tests import factories as f
from tests.conftest import SmtpSink
from tests.e2e.conftest import SECRET_KEY, Server, StartServer

pytestmark = pytest.mark.e2e
SIGNAL_TIMEOUT = 60.0


@pytest.fixture
def seeding(fresh_database_url: str, tmp_path: Path) -> Iterator[AppContext]:
    """A context on the servers' database, for making test data through the services."""
    ctx = build_context(
        Settings(
            database_url=fresh_database_url,
            secret_key=SECRET_KEY,
            data_dir=tmp_path / "seeding",
        )
    )
    yield ctx
    ctx.engine.dispose()


def _runs(engine: Engine) -> int:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT runs FROM scheduler_job_runs WHERE name = 'expiry-reminders'")
        ).scalar()
    return int(found or 0)


def _holder(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT holder FROM scheduler_leases")).scalar_one())


def _more_runs(engine: Engine, count: int) -> None:
    """Wait (on the job-run counter, a signal) until the reminder job ran ``count`` more times."""
    target = _runs(engine) + count
    deadline = time.monotonic() + SIGNAL_TIMEOUT
    while _runs(engine) < target:
        assert time.monotonic() < deadline, "the reminder job stopped running"
        time.sleep(0.05)


def _wait_for_mails(smtp: SmtpSink, to: str, count: int) -> None:
    deadline = time.monotonic() + SIGNAL_TIMEOUT
    while len(smtp.to(to)) < count:
        assert time.monotonic() < deadline, smtp.summary()
        time.sleep(0.05)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_servers_mail_each_threshold_once_and_hand_over_the_lease(
    start_server: StartServer,
    fresh_database_url: str,
    smtp: SmtpSink,
    seeding: AppContext,
) -> None:
    servers = [start_server(OSTIARY_SCHEDULER_INTERVAL_SECONDS="1") for _ in range(2)]
    for server in servers:
        server.wait_ready()
    owner = f.person(seeding)
    bot, _ = f.technical_user(seeding, owner=owner)
    with transaction(seeding.sessions) as session:
        row = session.get(User, bot.id)
        assert row is not None
        secret_id = add_secret(
            session, seeding, user=row, expires_at=datetime.now(UTC) + timedelta(days=40)
        ).row.secret_id
    engine = create_engine(fresh_database_url)
    to = owner.email or ""
    try:
        _more_runs(engine, 3)
        assert smtp.to(to) == []
        running: list[Server] = list(servers)
        for step, left in enumerate((timedelta(days=29), timedelta(days=6), timedelta(hours=12))):
            with engine.begin() as conn:
                conn.execute(
                    update(TechnicalUserSecret)
                    .where(TechnicalUserSecret.secret_id == secret_id)
                    .values(expires_at=datetime.now(UTC) + left)
                )
            _wait_for_mails(smtp, to, step + 1)
            _more_runs(engine, 4)
            assert len(smtp.to(to)) == step + 1, smtp.summary()
            if step == 0:
                # Stop the node holding the lease: the other one takes over.
                holder_pid = int(_holder(engine).split(":")[1])
                [stopping] = [s for s in running if s.process.pid == holder_pid]
                stopping.stop()
                running.remove(stopping)
                _more_runs(engine, 2)
                assert int(_holder(engine).split(":")[1]) == running[0].process.pid
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT threshold_days, mailed FROM credential_reminders "
                    "WHERE credential_id = :c ORDER BY threshold_days"
                ),
                {"c": secret_id},
            ).all()
        assert [tuple(r) for r in rows] == [(1, True), (7, True), (30, True)]
        subjects = [m["Subject"] for m in smtp.to(to)]
        assert all(secret_id in s for s in subjects) and len(smtp.messages) == 3
    finally:
        engine.dispose()
