"""The users console page in real Chromium against a real server: a person registered on a
special-use domain is found, refused erasure while owning a technical user, then erased."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import SmtpSink, link_token
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server
from tests.factories import basic

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"]),
]

EMAIL = "mallory.marsh@corp.local"
PASSWORD = "Analytical-Engine-1843"


def test_admin_finds_a_person_and_erases_them_once_they_own_nothing(
    server: Server, smtp: SmtpSink, page: Page
) -> None:
    from playwright.sync_api import expect

    api = httpx.Client(base_url=server.url)
    registered = api.post(
        "/api/v1/registrations",
        json={
            "email": EMAIL,
            "given_name": "Mallory",
            "family_name": "Marsh",
            "password": PASSWORD,
        },
    )
    assert registered.status_code == 202
    token = link_token(smtp.wait_for(EMAIL, subject="Activate"))
    user_id = api.post("/api/v1/activations", json={"token": token}).json()["user_id"]
    bot = api.post(
        "/api/v1/technical-users", headers=basic(user_id, PASSWORD), json={"display_name": "Bot"}
    ).json()["user_id"]

    page.goto(f"{server.url}/console/signin")
    page.get_by_label("User ID or e-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Users", exact=True).click()
    page.get_by_label("Search").fill("marsh")
    page.get_by_role("button", name="Search").click()
    row = page.locator("#users tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(EMAIL)

    page.get_by_label(f"Type {user_id} to erase").fill(user_id)
    page.get_by_role("button", name="Erase personal data").click()
    expect(page.get_by_role("main")).to_contain_text(bot)  # 409: the list to hand over

    admin_id = api.get("/api/v1/me", headers=basic(ADMIN_EMAIL, ADMIN_PASSWORD)).json()["user_id"]
    moved = api.put(
        f"/api/v1/technical-users/{bot}/owner",
        headers=basic(ADMIN_EMAIL, ADMIN_PASSWORD),
        json={"owner_user_id": admin_id},
    )
    assert moved.status_code == 200, moved.text
    page.go_back()
    page.get_by_label(f"Type {user_id} to erase").fill(user_id)
    page.get_by_role("button", name="Erase personal data").click()
    row = page.locator("#users tbody tr")
    expect(row).to_contain_text("erased")
    expect(row).not_to_contain_text("corp.local")
