"""A platform administrator finds the mails the outbox gave up on, in real Chromium."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from ostiary.clock import FrozenClock
from ostiary.context import build_context
from ostiary.db import transaction
from ostiary.mail import service as mail
from ostiary.mail.transport import SmtpTransport
from ostiary.settings import Settings
from tests.conftest import free_port
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, SECRET_KEY, Server

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    # One backend keeps the browser run short; the in-process tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"]),
]
SHOT = "/tmp/ostiary-dead-letters.png"


def _dead_letter(server: Server, tmp_path: Path) -> None:
    """A mail refused by a real SMTP port nobody listens on, at every retry."""
    clock = FrozenClock()
    ctx = build_context(
        Settings(
            database_url=server.database_url, secret_key=SECRET_KEY, data_dir=tmp_path / "seed"
        ),
        clock=clock,
    )
    down = SmtpTransport(f"smtp://127.0.0.1:{free_port()}", "x@example.test", timeout=2)
    try:
        with transaction(ctx.sessions) as session:
            mail.enqueue(
                session, clock=clock, recipient="gone@example.test", subject="Lost", body="b"
            )
        for _ in range(mail.MAX_ATTEMPTS):
            clock.advance(timedelta(hours=2))
            mail.retry_unsent(ctx.sessions, down, clock)
    finally:
        ctx.engine.dispose()


def test_platform_admin_sees_the_dead_letters(server: Server, page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    _dead_letter(server, tmp_path)
    page.goto(f"{server.url}/console/signin")
    page.get_by_label("User ID or e-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()  # the landing page
    page.get_by_role("link", name="Undelivered mail").click()
    expect(page.get_by_role("heading", name="Undelivered mail")).to_be_visible()
    rows = page.locator("#dead-letters tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("gone@example.test")
    expect(rows.first).to_contain_text(str(mail.MAX_ATTEMPTS))
    expect(rows.first).to_contain_text("ConnectionRefused")
    page.screenshot(path=SHOT, full_page=True)
