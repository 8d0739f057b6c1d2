"""Every main console page at phone width (issue 13 item 5): at 390 px no page scrolls
sideways (``document.scrollingElement.scrollWidth`` stays within the viewport, one pixel of
rounding allowed), including the Messages page and a message with long IDs. Wide tables
scroll inside their own box; long IDs wrap."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server
from tests.factories import basic
from tests.test_certificates_service import csr_pem

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"]),  # layout does not depend on the database
]

WIDTH = 390
MESSAGES_SHOT = "/tmp/ostiary-narrow-messages.png"
SUB = "acme-narrow-phone-width-check"
#: A flow path and a business ID as long as they may be, without a place to break.
LONG_PATH = "orders/" + "v" * 120
BUSINESS_ID = "MSG-" + "0123456789ABCDEF" * 12
#: What overflows, for the failure message: the widest elements past the right edge that
#: no scrolling box of their own clips.
WIDEST = """() => {
  const clipped = e => { for (let p = e.parentElement; p; p = p.parentElement) {
    const style = getComputedStyle(p);
    if (['auto', 'scroll', 'hidden'].includes(style.overflowX) && style.display !== 'table')
      return true; }
    return false; };
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (typeof e.className === 'string' && e.className.trim()
      ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
  return [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !clipped(e))
    .map(e => [e.getBoundingClientRect().right, name(e.parentElement) + ' > ' + name(e)])
    .sort((a, b) => b[0] - a[0]).slice(0, 3).map(([r, n]) => n + ' to ' + Math.round(r));
}"""


def seed(server: Server) -> tuple[str, str]:
    """A sub-account with a long subdomain, a sender holding a certificate and an OAuth
    client, a long flow path and messages with long business IDs; returns the sender's user
    ID and the OAuth client ID."""
    admin = basic(ADMIN_EMAIL, ADMIN_PASSWORD)
    base = f"/api/v1/subaccounts/{SUB}"
    with server.client() as api:
        made = api.post(
            "/api/v1/subaccounts",
            headers=admin,
            json={"subdomain": SUB, "display_name": "Acme narrow " * 5, "plan": "trial"},
        )
        assert made.status_code == 201, made.text
        user = api.post(
            "/api/v1/technical-users",
            headers=admin,
            json={"subdomain": SUB, "display_name": "ERP sender with a long display name"},
        )
        assert user.status_code == 201, user.text
        sender, password = user.json()["user_id"], user.json()["password"]
        for path, body in (
            ("/flows", {"path": LONG_PATH}),
            ("/role-collections", {"name": "Senders", "roles": ["ESBMessaging.send"]}),
        ):
            answer = api.post(base + path, headers=admin, json=body)
            assert answer.status_code == 201, answer.text
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
        client = api.post(f"{base}/oauth-clients", headers=admin, json={"user_id": sender})
        assert client.status_code == 201, client.text
        for _ in range(3):
            sent = api.post(
                f"/t/{SUB}/http/{LONG_PATH}",
                headers={**basic(sender, password), "X-Business-ID": BUSINESS_ID},
                content=b"<order>" + b"x" * 300 + b"</order>",
            )
            assert sent.status_code < 300, sent.text
    return sender, str(client.json()["client_id"])


def overflow(page: Page, url: str) -> str | None:
    """Why ``url`` scrolls sideways at the page's width, or ``None`` if it does not."""
    answer = page.goto(url)
    assert answer is not None and answer.status == 200, f"{url}: {answer and answer.status}"
    width = page.evaluate("document.scrollingElement.scrollWidth")
    if width <= WIDTH + 1:
        return None
    return f"{url}: {width} px ({', '.join(page.evaluate(WIDEST))})"


def test_no_console_page_scrolls_sideways_at_390_px(server: Server, browser: Browser) -> None:
    from playwright.sync_api import expect

    sender, client_id = seed(server)
    context = browser.new_context(viewport={"width": WIDTH, "height": 844})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        assert overflow(page, f"{server.url}/console/signin") is None
        page.get_by_label("User ID or e-mail").fill(ADMIN_EMAIL)
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()
        page.goto(f"{server.url}/console/subaccounts/{SUB}/messages")
        link = page.locator("#messages a[href*='/messages/']").first
        message = link.get_attribute("href")
        assert message

        sub = f"/console/subaccounts/{SUB}"
        pages = [
            "/console/",
            "/console/account",
            "/console/account/password",
            "/console/account/sessions",
            "/console/subaccounts",
            sub,
            f"{sub}/members",
            f"{sub}/invitations",
            f"{sub}/security/authorizations",
            f"{sub}/security/authorizations/users/{sender}",
            f"{sub}/security/authorizations/groups",
            f"{sub}/security/role-collections",
            f"{sub}/security/roles",
            f"{sub}/security/oauth-clients",
            f"{sub}/security/oauth-clients/{client_id}",
            f"{sub}/security/certificates",
            f"{sub}/technical-users",
            f"{sub}/flows",
            f"{sub}/flows/{LONG_PATH}",
            f"{sub}/messages",
            message,
            f"{sub}/findings",
            f"{sub}/audit",
            "/console/technical-users",
            f"/console/technical-users/{sender}",
            "/console/groups",
            "/console/users",
            "/console/password-policies",
            "/console/mail/dead-letters",
        ]
        wide = [why for path in pages if (why := overflow(page, f"{server.url}{path}"))]
        assert wide == [], "\n".join(wide)
        page.goto(f"{server.url}{sub}/messages")
        page.screenshot(path=MESSAGES_SHOT, full_page=True)
    finally:
        context.close()
