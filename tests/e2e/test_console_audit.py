"""The sub-account Audit tab in real Chromium against a real server, and the CLI's
checkpoint and verify against that server's database (issue 11 item 7)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server, ostiary_command
from tests.factories import basic

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    # One backend keeps the browser run short; the API tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"]),
]


def _cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ostiary_command(), *args], env=server.env, capture_output=True, text=True, timeout=60
    )


def test_administrator_reads_filters_and_downloads_the_audit_events(
    server: Server, page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with server.client() as api:
        made = api.post(
            "/api/v1/subaccounts",
            headers=basic(ADMIN_EMAIL, ADMIN_PASSWORD),
            json={"subdomain": "acme-audit", "display_name": "Acme Audit", "plan": "trial"},
        )
        assert made.status_code == 201, made.text

    page.goto(f"{server.url}/console/signin")
    page.get_by_label("User ID or e-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()  # the landing page

    page.goto(f"{server.url}/console/subaccounts/acme-audit")
    page.get_by_role("navigation", name="Sub-account").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit events")).to_be_visible()
    table = page.locator("#audit-events")
    expect(table).to_contain_text("subaccount:created")
    expect(table).to_contain_text("subaccount:member:added")

    page.get_by_label("Action").fill("subaccount:created")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr")).to_have_count(1)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download as JSON lines").click()
    saved = tmp_path / "audit.jsonl"
    download.value.save_as(saved)
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [x["action"] for x in lines] == ["subaccount:created"]
    assert lines[0]["subdomain"] == "acme-audit"

    # The sign-in itself is in the trail (no sub-account, so only platform-wide).
    checkpoint = tmp_path / "checkpoint.json"
    signed = _cli(server, "audit", "checkpoint", "--out", str(checkpoint))
    assert signed.returncode == 0, signed.stderr
    verified = _cli(server, "audit", "verify", "--checkpoint", str(checkpoint))
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stderr
    exported = _cli(server, "audit", "export")
    assert "user:signed_in" in exported.stdout
