"""The access-review pictures and findings in real Chromium against a real server (issue 11
items 5 and 6): the sub-account overview shows the credential expiry timeline with the
certificate that ends in 20 days and the message just sent; the technical-user page shows
its own; Security → Findings lists it too; after a rotation with overlap in the console both
secrets' ends are on the timeline. No request leaves the server for a picture."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server
from tests.e2e.test_console_certificates import sign_in
from tests.factories import basic
from tests.test_certificates_service import csr_pem

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    # One backend keeps the browser run short; the in-process tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"]),
]

SHOT = "/tmp/ostiary-review-overview.png"
ROTATED_SHOT = "/tmp/ostiary-review-rotated.png"


def seed(server: Server) -> tuple[str, str]:
    """Sub-account ``acme-review`` with a sender that holds a 20-day certificate and has sent
    one message; returns its user ID and certificate ID."""
    admin = basic(ADMIN_EMAIL, ADMIN_PASSWORD)
    base = "/api/v1/subaccounts/acme-review"
    with server.client() as api:
        made = api.post(
            "/api/v1/subaccounts",
            headers=admin,
            json={"subdomain": "acme-review", "display_name": "Acme Review", "plan": "trial"},
        )
        assert made.status_code == 201, made.text
        user = api.post(
            "/api/v1/technical-users",
            headers=admin,
            json={"subdomain": "acme-review", "display_name": "ERP <sender>"},
        )
        assert user.status_code == 201, user.text
        user_id, password = user.json()["user_id"], user.json()["password"]
        for path, body in (
            ("/flows", {"path": "orders"}),
            ("/role-collections", {"name": "Senders", "roles": ["ESBMessaging.send"]}),
        ):
            answer = api.post(base + path, headers=admin, json=body)
            assert answer.status_code == 201, answer.text
        assigned = api.put(
            f"{base}/users/{user_id}/role-collections",
            headers=admin,
            json={"role_collections": ["Senders"]},
        )
        assert assigned.status_code == 200, assigned.text
        cert = api.post(
            f"{base}/certificates",
            headers=admin,
            json={"user_id": user_id, "csr_pem": csr_pem(), "validity_days": 20},
        )
        assert cert.status_code == 201, cert.text
        sent = api.post(
            "/t/acme-review/http/orders", headers=basic(user_id, password), content=b"<order/>"
        )
        assert sent.status_code < 300, sent.text
    return user_id, str(cert.json()["certificate_id"])


def test_rotation_with_overlap_and_the_expiry_timeline_in_the_console(
    server: Server, page: Page
) -> None:
    from playwright.sync_api import expect

    user_id, certificate_id = seed(server)
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda r: elsewhere.append(r.url) if not r.url.startswith(server.url) else None,
    )
    sign_in(page, server)

    page.goto(f"{server.url}/console/subaccounts/acme-review")
    timeline = page.locator("svg#expiry-timeline")
    expect(timeline).to_be_visible()
    expect(timeline).to_have_attribute("role", "img")
    mark = timeline.locator(f'circle.mark[data-credential="{certificate_id}"]')
    expect(mark).to_have_count(1)
    expect(timeline.locator("text.lane")).to_have_text([user_id])
    expect(mark.locator("title")).to_contain_text(f"certificate {certificate_id} expires")
    expect(mark.locator("title")).to_contain_text("(in 20 days)")
    box = mark.bounding_box()
    whole = timeline.bounding_box()
    assert box is not None and whole is not None
    # 20 of 90 days: in the left third of the plot, right of the labels.
    assert whole["x"] + whole["width"] * 0.2 < box["x"] < whole["x"] + whole["width"] * 0.5
    volume = page.locator("svg#message-volume")
    expect(volume).to_be_visible()
    expect(volume.locator("text.total")).to_have_text(["1"])
    expect(volume.locator("rect.bar")).to_have_count(7)
    page.screenshot(path=SHOT, full_page=True)

    page.goto(f"{server.url}/console/technical-users/{user_id}")
    own = page.locator("svg#expiry-timeline")
    expect(own).to_be_visible()
    expect(own.locator(f'circle.mark[data-credential="{certificate_id}"]')).to_have_count(1)
    expect(page.locator("svg#message-volume text.lane")).to_have_text(["acme-review"])

    page.goto(f"{server.url}/console/subaccounts/acme-review")
    tabs = page.get_by_role("navigation", name="Sub-account")
    tabs.get_by_role("link", name="Findings").click()
    expect(page.get_by_role("heading", name="Findings", exact=True)).to_be_visible()
    expect(page.locator("#credential_expiring")).to_contain_text(certificate_id)
    expect(page.locator("#credential_without_expiry")).to_contain_text(user_id)

    # Rotating the secret with overlap puts both ends on the timeline: the old secret's in
    # three days (red), the new one's in sixty.
    page.goto(f"{server.url}/console/technical-users/{user_id}")
    page.get_by_label("Current secrets keep working for (days)").fill("3")
    page.get_by_label("New secret valid for (days, empty: no expiry)").fill("60")
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", name="New password issued")).to_be_visible()
    secret_id = page.locator("#secret-id").inner_text().strip()
    page.get_by_role("link", name=f"go to {user_id}").click()
    own = page.locator("svg#expiry-timeline")
    expect(own.locator("text.lane")).to_have_text(["certificate", "technical user secret"])
    expect(own.locator("circle.mark")).to_have_count(3)
    new_mark = own.locator(f'circle.mark[data-credential="{secret_id}"]')
    expect(new_mark.locator("title")).to_contain_text("(in 60 days)")
    old_mark = own.locator("circle.mark").filter(has_text="(in 3 days)")
    expect(old_mark).to_have_count(1)
    expect(old_mark).to_have_attribute("fill", "#b3261e")
    page.screenshot(path=ROTATED_SHOT, full_page=True)
    page.goto(f"{server.url}/console/subaccounts/acme-review")
    expect(page.locator("svg#expiry-timeline circle.mark")).to_have_count(3)
    assert elsewhere == []
