"""In real Chromium against a real server: create a group, put a technical user in it,
assign the group a role collection under Security → Authorizations → Groups, and see the
group path in the technical user's access explanation (issue 12)."""

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
    # One backend keeps the browser run short; the API tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"]),
]

SHOT = "/tmp/ostiary-group-explanation.png"


def test_admin_creates_a_group_assigns_a_collection_and_sees_the_group_path(
    server: Server, page: Page
) -> None:
    from playwright.sync_api import expect

    admin = basic(ADMIN_EMAIL, ADMIN_PASSWORD)
    with httpx.Client(base_url=server.url, headers=admin, timeout=10) as api:
        for url, body in (
            (
                "/api/v1/subaccounts",
                {"subdomain": "acme-grp", "display_name": "Acme", "plan": "trial"},
            ),
            (
                "/api/v1/subaccounts/acme-grp/role-collections",
                {"name": "Senders", "roles": ["ESBMessaging.send"]},
            ),
            ("/api/v1/subaccounts/acme-grp/flows", {"path": "orders", "auth": ["basic"]}),
        ):
            assert api.post(url, json=body).status_code == 201
        made = api.post(
            "/api/v1/technical-users", json={"display_name": "erp", "subdomain": "acme-grp"}
        )
        assert made.status_code == 201, made.text
        bot = made.json()["user_id"]

    page.goto(f"{server.url}/console/signin")
    page.get_by_label("User ID or e-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()  # the landing page

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Groups").click()
    page.get_by_label("Group name").fill("Integration Team")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("status")).to_contain_text("The group was created")
    page.get_by_label("User ID").fill(bot)
    page.get_by_role("button", name="Add to group").click()
    expect(page.locator("#group-members")).to_contain_text(bot)

    page.goto(f"{server.url}/console/subaccounts/acme-grp/security/authorizations")
    page.locator("#groups-link").click()
    page.locator("#authorized-groups").get_by_role("link", name="Integration Team").click()
    page.get_by_label("Senders").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("The role collections were saved")
    expect(page.get_by_label("Senders")).to_be_checked()

    page.goto(f"{server.url}/console/technical-users/{bot}")
    page.get_by_label("Sub-account").fill("acme-grp")
    page.get_by_label("Flow path").fill("orders")
    page.get_by_role("button", name="Explain access").click()
    explanation = page.locator("#explanation")
    expect(explanation).to_contain_text("Allowed")
    expect(explanation).to_contain_text(
        f"{bot} → group Integration Team → role collection Senders → ESBMessaging.send"
    )
    page.screenshot(path=SHOT, full_page=True)
