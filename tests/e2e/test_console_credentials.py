"""Rotating a technical user's secret with overlap in real Chromium against a real server
(issue 11 item 2): the new password appears once, both it and the old one work at the
runtime during the overlap, and the credentials table shows both with the old one's end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server
from tests.factories import basic

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    # One backend keeps the browser run short; the in-process tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"]),
]

ROTATED_SHOT = "/tmp/ostiary-technical-user-rotated.png"
DETAIL_SHOT = "/tmp/ostiary-technical-user-credentials.png"


def sender(server: Server) -> tuple[str, str]:
    """A technical user allowed to call ``orders`` in ``acme-test``, and its password."""
    admin = basic(ADMIN_EMAIL, ADMIN_PASSWORD)
    with server.client() as api:
        for path, body in (
            ("/api/v1/subaccounts", {"subdomain": "acme-test", "display_name": "Acme"}),
            ("/api/v1/subaccounts/acme-test/flows", {"path": "orders"}),
            (
                "/api/v1/subaccounts/acme-test/role-collections",
                {"name": "Senders", "roles": ["ESBMessaging.send"]},
            ),
        ):
            answer = api.post(path, headers=admin, json=body)
            assert answer.status_code == 201, answer.text
        made = api.post(
            "/api/v1/technical-users",
            headers=admin,
            json={"subdomain": "acme-test", "display_name": "ERP sender"},
        )
        assert made.status_code == 201, made.text
        user_id, password = made.json()["user_id"], made.json()["password"]
        assigned = api.put(
            f"/api/v1/subaccounts/acme-test/users/{user_id}/role-collections",
            headers=admin,
            json={"role_collections": ["Senders"]},
        )
        assert assigned.status_code == 200, assigned.text
    return user_id, password


def send(server: Server, user_id: str, password: str) -> int:
    answer = httpx.post(
        f"{server.url}/t/acme-test/http/orders", content=b"<o/>", auth=(user_id, password)
    )
    return int(answer.status_code)


def test_owner_rotates_a_secret_with_overlap_and_both_work(server: Server, page: Page) -> None:
    from playwright.sync_api import expect

    user_id, old = sender(server)
    assert send(server, user_id, old) == 200

    page.goto(f"{server.url}/console/signin")
    page.get_by_label("User ID or e-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()  # the landing page

    page.goto(f"{server.url}/console/technical-users/{user_id}")
    table = page.locator("#credentials tbody tr")
    expect(table).to_have_count(1)
    expect(table.first).to_contain_text("technical user secret")
    expect(table.first).to_contain_text("no expiry")

    page.get_by_label("Current secrets keep working for (days)").fill("3")
    page.get_by_label("New secret valid for (days, empty: no expiry)").fill("90")
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", name="New password issued")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("will not be shown again")
    new = page.locator("#secret").inner_text().strip()
    secret_id = page.locator("#secret-id").inner_text().strip()
    until = page.locator("#old-valid-until").inner_text().strip()
    assert new != old and len(new) >= 43 and secret_id.startswith(f"pwd-{user_id}-")
    page.screenshot(path=ROTATED_SHOT, full_page=True)

    # The overlap: both secrets get through the runtime.
    assert send(server, user_id, old) == 200
    assert send(server, user_id, new) == 200

    page.get_by_role("link", name=f"go to {user_id}").click()
    expect(table).to_have_count(2)
    rotated = page.locator(f"[id='credential-{secret_id}']")
    expect(rotated).to_contain_text("active")
    old_row = table.filter(has_not_text=secret_id)
    expect(old_row).to_contain_text(until)  # the old one now ends at the overlap's end
    assert new not in page.content() and old not in page.content()
    page.screenshot(path=DETAIL_SHOT, full_page=True)

    # Rotating with no overlap ends both earlier secrets at once.
    page.get_by_label("Current secrets keep working for (days)").fill("0")
    page.get_by_role("button", name="Rotate secret").click()
    newest = page.locator("#secret").inner_text().strip()
    assert send(server, user_id, newest) == 200
    assert send(server, user_id, old) == 401
    assert send(server, user_id, new) == 401
