"""contract §2 steps 5-7 in real Chromium against a real server: add the member with a
description, create a role collection with ``ESBMessaging.send``, assign it under
Security → Authorizations → Users; the admin API then sees the assignment."""

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
    # One backend keeps the browser run short; the API tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"]),
]

OVERVIEW_SHOT = "/tmp/ostiary-subaccount-overview.png"
AUTHORIZATIONS_SHOT = "/tmp/ostiary-authorizations-user.png"


def registered_person(server: Server, smtp: SmtpSink) -> str:
    """Steps 1-3 through the API: register, activate by the mailed link; the user ID."""
    email = "grace.hopper@example.com"
    with server.client() as api:
        registered = api.post(
            "/api/v1/registrations",
            json={
                "email": email,
                "given_name": "Grace",
                "family_name": "Hopper",
                "password": "Compiler-A0-1952-cobol",
            },
        )
        assert registered.status_code == 202, registered.text
        token = link_token(smtp.wait_for(email, subject="Activate"))
        activated = api.post("/api/v1/activations", json={"token": token})
        assert activated.status_code == 200, activated.text
    return str(activated.json()["user_id"])


def test_admin_adds_member_creates_collection_and_assigns_it_in_the_console(
    server: Server, smtp: SmtpSink, page: Page
) -> None:
    from playwright.sync_api import expect

    user_id = registered_person(server, smtp)

    page.goto(f"{server.url}/console/signin")
    page.get_by_label("User ID or e-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()  # the landing page

    # A trial sub-account, made in the console: it has Members and Authorizations (C2).
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Sub-accounts").click()
    page.get_by_label("Subdomain").fill("acme-test")
    page.get_by_label("Display name").fill("Acme Test")
    page.get_by_label("Plan").select_option("trial")
    page.get_by_role("button", name="Create sub-account").click()
    expect(page.get_by_role("heading", name="Acme Test")).to_be_visible()
    expect(page.locator("#limits")).to_contain_text("Members")
    page.screenshot(path=OVERVIEW_SHOT, full_page=True)
    tabs = page.get_by_role("navigation", name="Sub-account")

    # Step 5: Members → Add, with the user ID, a member role and a description.
    tabs.get_by_role("link", name="Members").click()
    page.get_by_label("User ID").fill(user_id)
    page.get_by_label("Viewer").check()
    page.get_by_label("Description").fill("sends orders from the ERP")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_contain_text("The member was added")

    # Step 6: the member appears in the list, with the description.
    row = page.locator(f"#member-{user_id}")
    expect(row).to_contain_text("Grace Hopper")
    expect(row).to_contain_text("Viewer")
    expect(row).to_contain_text("sends orders from the ERP")

    # A role collection holding ESBMessaging.send.
    tabs.get_by_role("link", name="Role collections").click()
    page.get_by_label("Name").fill("Senders")
    page.get_by_label("ESBMessaging.send").check()
    page.get_by_role("button", name="Create role collection").click()
    expect(page.get_by_role("status")).to_contain_text("The role collection was created")
    expect(page.locator("#role-collections")).to_contain_text("ESBMessaging.send")

    # Step 7: Security → Authorizations → Users: find the user, assign the collection.
    tabs.get_by_role("link", name="Authorizations").click()
    page.get_by_label("Search users").fill("hopper")
    page.get_by_role("button", name="Search").click()
    page.locator("#authorized-users").get_by_role("link", name=user_id).click()
    expect(page.locator("#subject-user-id")).to_have_text(user_id)
    page.get_by_label("Senders").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("The role collections were saved")
    expect(page.get_by_label("Senders")).to_be_checked()
    page.screenshot(path=AUTHORIZATIONS_SHOT, full_page=True)

    # The admin API sees what the console did.
    admin = basic(ADMIN_EMAIL, ADMIN_PASSWORD)
    assigned = httpx.get(
        f"{server.url}/api/v1/subaccounts/acme-test/users/{user_id}/role-collections",
        headers=admin,
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["role_collections"] == ["Senders"]
    members = httpx.get(f"{server.url}/api/v1/subaccounts/acme-test/members", headers=admin)
    described = {m["user_id"]: m["description"] for m in members.json()["items"]}
    assert described[user_id] == "sends orders from the ERP"
