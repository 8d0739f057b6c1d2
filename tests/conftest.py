"""Shared test harness: every database test runs on SQLite and on real PostgreSQL.

PostgreSQL: one fresh database per test session (per xdist worker), migrated once,
truncated between tests. SQLite: one migrated template file, copied for each test.
A missing PostgreSQL or Chromium fails the run under CI=true and is skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from ostiary.app import create_app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from ostiary.migrate import upgrade
from ostiary.models import Base
from ostiary.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get(
    "OSTIARY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = [b for b in os.environ.get("OSTIARY_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


def unavailable(what: str) -> None:
    """Fail under CI (nothing may be skipped there), skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true", pytrace=False)
    pytest.skip(f"{what} is not available here")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- databases


def postgres_admin() -> Engine:
    """An AUTOCOMMIT engine on the test PostgreSQL (skipped, or failed under CI, without one)."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        admin.dispose()
        unavailable(f"PostgreSQL at {PG_ADMIN_URL}")
    return admin


def create_postgres_database(admin: Engine, prefix: str) -> tuple[str, str]:
    """Create an empty database named ``prefix_…``: its name and URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return name, PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres_database(admin: Engine, name: str) -> None:
    """Drop a database made by ``create_postgres_database``, ending its sessions first."""
    with admin.connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


@contextmanager
def new_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for the block: its URL; dropped afterwards."""
    admin = postgres_admin()
    name, url = create_postgres_database(admin, prefix)
    try:
        yield url
    finally:
        drop_postgres_database(admin, name)
        admin.dispose()


@pytest.fixture
def fresh_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database nobody has migrated yet: a new SQLite file or a new PostgreSQL database."""
    if backend == "sqlite":
        (tmp_path / "shared").mkdir(exist_ok=True)
        yield f"sqlite:///{tmp_path / 'shared' / 'ostiary.db'}"
        return
    with new_postgres_database("ostiary_e2e") as url:
        yield url


@pytest.fixture(scope="session")
def postgres_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated PostgreSQL database for this test session; dropped at the end."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        admin.dispose()
        unavailable(f"PostgreSQL at {PG_ADMIN_URL}")
    name = f"ostiary_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file to copy for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _truncate(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this test run: ``sqlite`` or ``postgresql``."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of the chosen backend, private to this test."""
    if backend == "postgresql":
        url: str = request.getfixturevalue("postgres_template")
        _truncate(url)
        return url
    template: Path = request.getfixturevalue("sqlite_template")
    target = tmp_path / "ostiary.db"
    shutil.copy(template, target)
    return f"sqlite:///{target}"


# ---------------------------------------------------------------- mail


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) that keeps what it receives."""

    url: str
    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content  # type: ignore[attr-defined]
        with self.lock:
            self.messages.append(message_from_bytes(content))
        return "250 OK"

    def wait_for(self, to: str, *, subject: str | None = None, timeout: float = 10.0) -> Message:
        """The first mail to ``to`` (with ``subject`` in its subject), waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for message in self.messages:
                    if str(message["To"]).lower() == to.lower() and (
                        subject is None or subject in message["Subject"]
                    ):
                        return message
            time.sleep(0.02)
        raise AssertionError(f"no mail to {to} with subject {subject!r}; got {self.summary()}")

    def to(self, address: str) -> list[Message]:
        """All mails to ``address``."""
        with self.lock:
            return [m for m in self.messages if str(m["To"]).lower() == address.lower()]

    def summary(self) -> list[tuple[str, str]]:
        """(To, Subject) of every mail received."""
        with self.lock:
            return [(str(m["To"]), str(m["Subject"])) for m in self.messages]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A running aiosmtpd server on a free port."""
    from aiosmtpd.controller import Controller

    port = free_port()
    sink = SmtpSink(url=f"smtp://127.0.0.1:{port}")
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink
    controller.stop()


def body_of(message: Message) -> str:
    """The plain-text body of a mail."""
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def link_token(message: Message) -> str:
    """The ``token`` query value of the link in a mail."""
    for word in body_of(message).split():
        if "token=" in word:
            return word.split("token=", 1)[1].strip()
    raise AssertionError("no link with a token in the mail")


# ---------------------------------------------------------------- the application


@pytest.fixture
def clock() -> FrozenClock:
    """A clock the test moves by hand."""
    return FrozenClock()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: SmtpSink) -> Settings:
    """Settings for an app on the test database, mailing to the test SMTP server."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        smtp_url=smtp.url,
        secret_key="test-secret-key-0123456789abcdef",
        public_url="http://testserver",
    )


@pytest.fixture
def ctx(settings: Settings, clock: FrozenClock) -> Iterator[AppContext]:
    """The application context, with the frozen clock."""
    context = build_context(settings, clock=clock)
    yield context
    context.engine.dispose()


@pytest.fixture
def client(ctx: AppContext) -> Iterator[TestClient]:
    """An HTTP client talking to the app in-process (no exceptions re-raised: we test 5xx)."""
    with TestClient(create_app(ctx.settings, ctx=ctx), raise_server_exceptions=False) as c:
        yield c
