"""Security → OAuth clients in real Chromium against a real server (contract C6, issue 5): an
administrator creates a client for a technical user, sees its secret exactly once, the secret
gets a token from ``/oauth/token``, and no later page shows it again."""

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

LIST_SHOT = "/tmp/ostiary-oauth-clients.png"
SECRET_SHOT = "/tmp/ostiary-oauth-client-secret.png"
DETAIL_SHOT = "/tmp/ostiary-oauth-client-detail.png"
ROTATED_SHOT = "/tmp/ostiary-oauth-client-rotated.png"


def token_status(server: Server, client_id: str, secret: str) -> int:
    """The status of a client-credentials token request with HTTP Basic client auth."""
    answer = httpx.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    if answer.status_code == 200:
        assert answer.json()["token_type"] == "Bearer"
    return int(answer.status_code)


def subaccount_with_technical_user(server: Server) -> str:
    """Sub-account ``acme-test`` and a technical user at home there, through the admin API."""
    admin = basic(ADMIN_EMAIL, ADMIN_PASSWORD)
    with server.client() as api:
        made = api.post(
            "/api/v1/subaccounts",
            headers=admin,
            json={"subdomain": "acme-test", "display_name": "Acme Test", "plan": "trial"},
        )
        assert made.status_code == 201, made.text
        user = api.post(
            "/api/v1/technical-users",
            headers=admin,
            json={"subdomain": "acme-test", "display_name": "ERP sender"},
        )
        assert user.status_code == 201, user.text
    return str(user.json()["user_id"])


def test_admin_creates_an_oauth_client_and_sees_the_secret_exactly_once(
    server: Server, page: Page
) -> None:
    from playwright.sync_api import expect

    user_id = subaccount_with_technical_user(server)

    page.goto(f"{server.url}/console/signin")
    page.get_by_label("User ID or e-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()  # the landing page

    # One click from the sub-account: Security → OAuth clients (C6).
    page.goto(f"{server.url}/console/subaccounts/acme-test")
    tabs = page.get_by_role("navigation", name="Sub-account")
    tabs.get_by_role("link", name="OAuth clients").click()
    expect(page.get_by_role("heading", name="OAuth clients", exact=True)).to_be_visible()
    expect(tabs.get_by_role("link", name="OAuth clients")).to_have_attribute("aria-current", "page")

    page.get_by_label("Technical user", exact=True).select_option(user_id)
    page.get_by_label("Description").fill("ERP order export")
    page.get_by_role("button", name="Create OAuth client").click()

    expect(page.get_by_role("heading", name="OAuth client created")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("will not be shown again")
    client_id = page.locator("#client-id").inner_text().strip()
    secret = page.locator("#secret").inner_text().strip()
    assert client_id.startswith("oc-") and len(secret) >= 43  # 256 bits in base64url
    expect(page.locator("#curl")).to_contain_text(f"{server.url}/oauth/token")
    page.screenshot(path=SECRET_SHOT, full_page=True)

    assert token_status(server, client_id, secret) == 200

    # Away from the POST answer, the secret is nowhere: detail page, a reload, the list.
    page.get_by_role("link", name=f"go to {client_id}").click()
    expect(page.locator("#client-id")).to_have_text(client_id)
    expect(page.locator("#secrets")).to_contain_text("active")
    assert secret not in page.content()
    page.screenshot(path=DETAIL_SHOT, full_page=True)
    page.reload()
    expect(page.locator("#client-id")).to_have_text(client_id)
    assert secret not in page.content()

    # Rotate: the new secret once, and both work during the overlap.
    page.get_by_label("Old secret valid for (hours)").fill("2")
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", name="New client secret issued")).to_be_visible()
    rotated = page.locator("#secret").inner_text().strip()
    assert rotated != secret and secret not in page.content()
    page.screenshot(path=ROTATED_SHOT, full_page=True)
    assert token_status(server, client_id, secret) == 200
    assert token_status(server, client_id, rotated) == 200
    page.get_by_role("link", name=f"go to {client_id}").click()
    expect(page.locator("#secrets tbody tr")).to_have_count(2)
    assert rotated not in page.content()

    tabs.get_by_role("link", name="OAuth clients").click()
    row = page.locator(f"#client-{client_id}")
    expect(row).to_contain_text(user_id)
    expect(row).to_contain_text("ERP order export")
    expect(row).to_contain_text("active")
    expect(row.locator("td.num")).to_have_text("2")
    assert secret not in page.content() and rotated not in page.content()
    page.screenshot(path=LIST_SHOT, full_page=True)
