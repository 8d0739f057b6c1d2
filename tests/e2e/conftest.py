"""Harness for end-to-end tests: real ``ostiary serve`` processes on a fresh database.

Each server runs as a child process on a free port with its own data directory, mails
to the ``smtp`` fixture's aiosmtpd server, and is stopped (SIGTERM, then SIGKILL) when
the test ends, whatever happened. Its output goes to files so a failing test can show it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import SmtpSink, free_port, unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

READY_TIMEOUT = 60.0  # generous: CI machines are small and busy; a healthy start takes ~2 s
STOP_TIMEOUT = 10.0
SECRET_KEY = "e2e-secret-key-4f1c9a7d2b8e6035"
ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "e2e-Admin-passw0rd-7281"


def ostiary_command() -> list[str]:
    """The ``ostiary`` console script of this interpreter, or its entry point called directly."""
    script = Path(sys.executable).parent / "ostiary"
    if script.exists():
        return [str(script)]
    found = shutil.which("ostiary")
    if found:
        return [found]
    return [sys.executable, "-c", "from ostiary.cli.main import run; run()"]


@dataclass
class Server:
    """One running ``ostiary serve`` process."""

    url: str
    database_url: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    env: dict[str, str] = field(repr=False)
    #: The CA file httpx verifies a ``--tls-certfile`` server with.
    ca: str | None = None

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """httpx's ``verify`` for this server."""
        return True if self.ca is None else ssl.create_default_context(cafile=self.ca)

    def output(self) -> str:
        """Everything the process wrote so far (stderr, then stdout)."""
        return (
            f"--- stderr of {self.url}\n{self.stderr.read_text(errors='replace')}"
            f"--- stdout of {self.url}\n{self.stdout.read_text(errors='replace')}"
        )

    def client(self) -> httpx.Client:
        """An HTTP client for this server."""
        return httpx.Client(base_url=self.url, timeout=10.0, verify=self.verify)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``/readyz`` until it answers 200; fail with the server's output otherwise."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"ostiary serve exited with {self.process.returncode}", pytrace=False)
            try:
                answer = httpx.get(f"{self.url}/readyz", timeout=2.0, verify=self.verify)
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if answer.status_code == 200:
                    return
                last = f"{answer.status_code} {answer.text}"
            time.sleep(0.05)
        pytest.fail(f"{self.url}/readyz not ready after {timeout}s ({last})", pytrace=False)

    def one_time_password(self) -> tuple[str, str]:
        """The generated administrator's user ID and one-time password, read from stderr."""
        found = re.search(
            r"administrator\s+(\S+)\s.*?one-time\s+password\s+(\S+)",
            self.stderr.read_text(errors="replace"),
            re.DOTALL,
        )
        assert found, f"{self.url} printed no one-time password"
        return found.group(1), found.group(2)

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL if it does not go."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(
    tmp_path: Path, smtp: SmtpSink, fresh_database_url: str, request: pytest.FixtureRequest
) -> Iterator[StartServer]:
    """Start ``ostiary serve`` processes (not yet waited for); all are stopped at the end.

    Depends on ``fresh_database_url`` so the servers stop before their database is dropped.
    """
    servers: list[Server] = []
    request.node.ostiary_servers = servers

    def start(
        *,
        admin: bool = True,
        workers: int = 1,
        args: Sequence[str] = (),
        ca: Path | None = None,
        **extra: str,
    ) -> Server:
        """``args`` go to ``ostiary serve``; ``ca`` (the CA of its TLS certificate) makes
        the server's URL https."""
        port = free_port()
        url = f"{'http' if ca is None else 'https'}://127.0.0.1:{port}"
        home = tmp_path / f"server-{len(servers)}"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSTIARY_")}
        env.update(
            OSTIARY_DATA_DIR=str(home / "data"),
            OSTIARY_DATABASE_URL=fresh_database_url,
            OSTIARY_SMTP_URL=smtp.url,
            OSTIARY_PUBLIC_URL=url,
            OSTIARY_SECRET_KEY=SECRET_KEY,
            PYTHONUNBUFFERED="1",
        )
        if admin:
            env.update(OSTIARY_ADMIN_EMAIL=ADMIN_EMAIL, OSTIARY_ADMIN_PASSWORD=ADMIN_PASSWORD)
        env.update(extra)
        stdout, stderr = home / "stdout.log", home / "stderr.log"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [
                    *ostiary_command(),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    *args,
                ],
                env=env,
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        server = Server(
            url, fresh_database_url, process, stdout, stderr, env, None if ca is None else str(ca)
        )
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the output of the test's servers to its failure report (setup, call or teardown)."""
    report = yield
    if report.failed:
        for server in getattr(item, "ostiary_servers", []):
            report.sections.append((f"ostiary serve at {server.url}", server.output()))
    return report


@pytest.fixture
def server(start_server: StartServer) -> Server:
    """One ready server on a fresh database, with a configured platform administrator."""
    started = start_server()
    started.wait_ready()
    return started


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, driven by Playwright (which downloads nothing)."""
    if not CHROMIUM.exists():
        unavailable(f"Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies from other tests)."""
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()
