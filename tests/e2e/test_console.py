"""The console in real Chromium against a real server: register, activate, sign in, account."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx
import pytest

from ostiary.api.authn import SESSION_COOKIE
from tests.conftest import SmtpSink, body_of
from tests.e2e.conftest import Server, StartServer
from tests.factories import basic

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    # One backend keeps CI fast; the API tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"]),
]

PASSWORD = "Analytical-Engine-1843"
SCREENSHOT = "/tmp/ostiary-account.png"


def expect_path(page: Page, server: Server, path: str) -> None:
    """Wait until the page shows ``path`` of the server."""
    from playwright.sync_api import expect

    expect(page).to_have_url(f"{server.url}{path}")


def test_person_registers_activates_by_mail_signs_in_and_sees_account_settings(
    server: Server, smtp: SmtpSink, page: Page
) -> None:
    from playwright.sync_api import expect

    email = "ada.lovelace@example.com"
    page.goto(f"{server.url}/console/register")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Given name").fill("Ada")
    page.get_by_label("Family name").fill("Lovelace")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect_path(page, server, "/console/signin")
    expect(page.get_by_role("status")).to_contain_text("Check your mailbox")

    mail = smtp.wait_for(email, subject="Activate")
    link = next(w for w in body_of(mail).split() if w.startswith(f"{server.url}/console/activate"))
    page.goto(link)
    expect(page.get_by_role("heading", name="Activate your account")).to_be_visible()
    page.get_by_role("button", name="Activate account").click()
    expect_path(page, server, "/console/signin")
    expect(page.get_by_role("status")).to_contain_text("Your account is active")

    page.get_by_label("User ID or e-mail").fill(email.upper())
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect_path(page, server, "/console/")  # the home
    expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()
    page.get_by_role("link", name="Account settings").click()
    expect_path(page, server, "/console/account")
    expect(page.locator("#user-id")).to_have_text(re.compile(r"^\s*P\d{6}\s*$"))
    expect(page.locator("#name")).to_have_text("Ada Lovelace")
    expect(page.locator("#email")).to_have_text(email)
    expect(page.locator("#kind")).to_have_text("person")
    expect(page.locator("#status")).to_have_text("active")
    user_id = page.locator("#user-id").inner_text().strip()
    page.screenshot(path=SCREENSHOT, full_page=True)

    # The user ID shown is the one the API knows, and it signs in by itself.
    me = httpx.get(f"{server.url}/api/v1/me", headers=basic(user_id, PASSWORD))
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email

    (session,) = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert session["secure"] is False  # plain http here; https public URLs get Secure

    # Posts that carry the session cookie but not its CSRF token are refused.
    change: dict[str, str | float | bool] = {
        "current_password": PASSWORD,
        "new_password": "x" * 20,
        "confirm_password": "x" * 20,
    }
    form = page.request.post(f"{server.url}/console/account/password", form=change, max_redirects=0)
    assert form.status == 403, form.text()
    forged = page.request.post(
        f"{server.url}/console/account/password",
        form={**change, "csrf_token": "forged-token-000000000000"},
        max_redirects=0,
    )
    assert forged.status == 403, forged.text()
    api = page.request.post(
        f"{server.url}/api/v1/me/password",
        data={"current_password": PASSWORD, "new_password": "y" * 20},
        max_redirects=0,
    )
    assert api.status == 403, api.text()
    still = httpx.get(f"{server.url}/api/v1/me", headers=basic(user_id, PASSWORD))
    assert still.status_code == 200, "a refused post changed the password"


def test_generated_admin_signing_in_with_the_one_time_password_must_change_it_first(
    start_server: StartServer, page: Page
) -> None:
    from playwright.sync_api import expect

    server = start_server(admin=False)
    server.wait_ready()
    user_id, one_time = server.one_time_password()

    page.goto(f"{server.url}/console/signin")
    page.get_by_label("User ID or e-mail").fill("admin@ostiary.local")
    page.get_by_label("Password").fill(one_time)
    page.get_by_role("button", name="Sign in").click()
    expect_path(page, server, "/console/account/password")
    expect(page.get_by_role("status")).to_contain_text("Your password has expired")

    page.goto(f"{server.url}/console/account")
    expect_path(page, server, "/console/account/password")

    new_password = "Difference-Engine-1822"
    page.get_by_label("Current password").fill(one_time)
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("Repeat new password").fill(new_password)
    page.get_by_role("button", name="Change password").click()
    expect_path(page, server, "/console/account")
    expect(page.locator("#user-id")).to_have_text(user_id)
    expect(page.locator("#status")).to_have_text("active")

    me = httpx.get(f"{server.url}/api/v1/me", headers=basic(user_id, new_password))
    assert me.status_code == 200, me.text
