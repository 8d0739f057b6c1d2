"""The console home in real Chromium against a real server (issue 13 item 5): signing in
lands on it; the sub-account's panel shows its Messages, Flows, Denials, Expiring and
Findings cards and the hourly volume picture per flow; screenshots at 1280 px and 390 px;
at 390 px nothing scrolls sideways; no request leaves the server."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server
from tests.factories import basic
from tests.test_certificates_service import csr_pem

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    # One backend keeps the browser run short; the in-process tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"]),
]

WIDE_SHOT = "/tmp/ostiary-home-1280.png"
NARROW_SHOT = "/tmp/ostiary-home-390.png"
SUB = "acme-home"


def seed(server: Server) -> tuple[str, str]:
    """``acme-home`` with flows ``orders`` and ``invoices``; a sender (20-day certificate)
    calls orders three times and invoices twice; a caller without the role is denied once.
    Returns the sender's user ID and the denied caller's."""
    admin = basic(ADMIN_EMAIL, ADMIN_PASSWORD)
    base = f"/api/v1/subaccounts/{SUB}"
    with server.client() as api:
        made = api.post(
            "/api/v1/subaccounts",
            headers=admin,
            json={"subdomain": SUB, "display_name": "Acme <Home>", "plan": "trial"},
        )
        assert made.status_code == 201, made.text
        users = []
        for name in ("ERP sender", "stranger"):
            user = api.post(
                "/api/v1/technical-users",
                headers=admin,
                json={"subdomain": SUB, "display_name": name},
            )
            assert user.status_code == 201, user.text
            users.append((user.json()["user_id"], user.json()["password"]))
        for path, body in (
            ("/flows", {"path": "orders"}),
            ("/flows", {"path": "invoices"}),
            ("/role-collections", {"name": "Senders", "roles": ["ESBMessaging.send"]}),
        ):
            answer = api.post(base + path, headers=admin, json=body)
            assert answer.status_code == 201, answer.text
        (sender, password), (stranger, other) = users
        assigned = api.put(
            f"{base}/users/{sender}/role-collections",
            headers=admin,
            json={"role_collections": ["Senders"]},
        )
        assert assigned.status_code == 200, assigned.text
        cert = api.post(
            f"{base}/certificates",
            headers=admin,
            json={"user_id": sender, "csr_pem": csr_pem(), "validity_days": 20},
        )
        assert cert.status_code == 201, cert.text
        for path in ("orders", "orders", "orders", "invoices", "invoices"):
            sent = api.post(
                f"/t/{SUB}/http/{path}", headers=basic(sender, password), content=b"<x/>"
            )
            assert sent.status_code < 300, sent.text
        denied = api.post(f"/t/{SUB}/http/orders", headers=basic(stranger, other), content=b"<x/>")
        assert denied.status_code == 403, denied.text
        # The runtime audits denials through its background writer: wait for the event.
        deadline = time.monotonic() + 10
        while True:
            events = api.get(
                f"{base}/audit-events", headers=admin, params={"action": "runtime:denied"}
            )
            assert events.status_code == 200, events.text
            if events.json()["items"]:
                break
            assert time.monotonic() < deadline, "the denial was never audited"
            time.sleep(0.05)
    return sender, stranger


def test_signin_lands_on_the_home_with_cards_and_the_volume_picture(
    server: Server, browser: Browser, record_property: pytest.RecordProperty
) -> None:
    from playwright.sync_api import expect

    _, stranger = seed(server)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda r: elsewhere.append(r.url) if not r.url.startswith(server.url) else None,
    )
    try:
        page.goto(f"{server.url}/console/signin")
        page.get_by_label("User ID or e-mail").fill(ADMIN_EMAIL)
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{server.url}/console/")
        expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()
        panel = page.locator(f"#home-{SUB}")
        expect(panel.get_by_role("heading", name="Acme <Home>")).to_be_visible()
        expect(panel.locator('[data-card="messages"] .count')).to_have_text("5")
        expect(panel.locator('[data-card="flows"] .count')).to_have_text("2")
        expect(panel.locator('[data-card="denials"] .count')).to_have_text("1")
        expect(panel.locator('[data-card="expiring"] .count')).to_have_text("1")
        expect(panel.locator('[data-card="findings"]')).to_be_visible()
        expect(panel.locator("ul.denials")).to_contain_text(stranger)
        volume = panel.locator(f"svg#volume-{SUB}")
        expect(volume).to_be_visible()
        expect(volume).to_have_attribute("role", "img")
        expect(volume.locator("text.lane")).to_have_text(["orders", "invoices"])
        expect(volume.locator("text.total")).to_have_text(["3", "2"])
        expect(volume.locator("rect.bar")).to_have_count(48)
        page.screenshot(path=WIDE_SHOT, full_page=True)
        record_property("screenshot_1280", WIDE_SHOT)

        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        expect(volume).to_be_visible()
        box = volume.bounding_box()
        assert box is not None and box["width"] <= 390, box
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= 391, f"the home is {width} px wide at 390 px"
        page.screenshot(path=NARROW_SHOT, full_page=True)
        record_property("screenshot_390", NARROW_SHOT)
        print(f"screenshots: {WIDE_SHOT} {NARROW_SHOT}")  # shown with -rP

        favicon = page.request.get(f"{server.url}/favicon.ico")
        assert favicon.status == 200 and favicon.headers["content-type"] == "image/x-icon"
        assert elsewhere == []
    finally:
        context.close()
