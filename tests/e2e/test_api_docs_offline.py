"""The API docs in real Chromium with the network cut off: every request that is not to
the server is aborted (and must not be attempted), Swagger UI and ReDoc render, Swagger's
*Authorize* dialog lists the document's schemes and its Basic login calls the API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    # One backend keeps the browser run short; tests/test_api_docs.py covers both.
    pytest.mark.parametrize("backend", ["sqlite"]),
]
#: ReDoc's sidebar always shows Redocly's logo from their CDN; the docs pages' CSP
#: (``img-src 'self' data:``) refuses it, so the browser never asks (ostiary/api/docs.py).
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
DOCS_SHOT = "/tmp/ostiary-api-docs.png"
REDOC_SHOT = "/tmp/ostiary-api-redoc.png"
#: Collects the page's Content-Security-Policy violations (none expected).
WATCH_CSP = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


class Offline:
    """A browser page that reaches the server only; records whatever else it tried."""

    def __init__(self, page: Page, server: Server) -> None:
        self.page = page
        self.origin = server.url
        self.elsewhere: list[str] = []
        self.errors: list[str] = []
        page.context.route("**/*", self._route)
        page.add_init_script(WATCH_CSP)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def _route(self, route: Route) -> None:
        url = route.request.url
        if url == self.origin or url.startswith(self.origin + "/"):
            route.continue_()
        else:
            self.elsewhere.append(url)
            route.abort("internetdisconnected")

    def assert_clean(self, *, blocked: str | None = None) -> None:
        """Nothing asked of other hosts, no console error, no CSP violation but for the
        image ``blocked`` (the docs' CSP stopped it before it left the browser)."""
        assert self.elsewhere == []
        violations = self.page.evaluate("window.cspViolations")
        assert violations == ([] if blocked is None else [f"img-src {blocked}"])
        assert [e for e in self.errors if blocked is None or blocked not in e] == []


@pytest.fixture
def offline(browser: Browser, server: Server) -> Iterator[Offline]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield Offline(context.new_page(), server)
    context.close()


def test_swagger_ui_renders_offline_and_its_basic_login_calls_the_api(
    server: Server, offline: Offline
) -> None:
    from playwright.sync_api import expect

    page = offline.page
    page.goto(f"{server.url}/api/docs")
    me = page.locator("#operations-identity-me_api_v1_me_get")
    expect(me).to_be_visible()
    expect(me).to_contain_text("/api/v1/me")
    # Each operation that needs a credential shows its lock.
    expect(me.locator(".authorization__btn")).to_be_visible()

    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    expect(dialog).to_be_visible()
    for name in ("basic (http, Basic)", "bearer (http, Bearer)", "session (apiKey)"):
        expect(dialog.get_by_text(name)).to_be_visible()
    expect(dialog.get_by_text("csrf (apiKey)")).to_be_visible()
    basic = dialog.locator(".auth-container").filter(has_text="basic (http, Basic)")
    basic.locator("input[type=text]").fill(ADMIN_EMAIL)
    basic.locator("input[type=password]").fill(ADMIN_PASSWORD)
    basic.locator("button.authorize").click()  # named "Apply credentials"
    expect(basic.get_by_role("heading", name="Authorized")).to_be_visible()
    page.screenshot(path=DOCS_SHOT.replace(".png", "-authorize.png"))
    basic.get_by_role("button", name="Close").click()

    me.locator(".opblock-summary").click()
    me.get_by_role("button", name="Try it out").click()
    me.get_by_role("button", name="Execute").click()
    answer = me.locator(".responses-wrapper .live-responses-table")
    expect(answer).to_contain_text("200")
    expect(answer).to_contain_text(ADMIN_EMAIL)
    answer.scroll_into_view_if_needed()
    page.screenshot(path=DOCS_SHOT)
    offline.assert_clean()


def test_redoc_renders_offline(server: Server, offline: Offline) -> None:
    from playwright.sync_api import expect

    page = offline.page
    page.goto(f"{server.url}/api/redoc")
    # ReDoc lays out all ~100 operations before it shows anything: give it time on a busy CI.
    expect(page.get_by_role("heading", name="Ostiary (0.1.0)")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("menuitem", name="identity")).to_be_visible()
    me = page.locator('[id="tag/identity/operation/me_api_v1_me_get"]')
    expect(me).to_contain_text("Me")
    # Each secured operation names what it accepts; an unsafe one wants the CSRF header too.
    # (ReDoc draws the "or" and "and" with CSS: the accessibility tree has them, not the DOM.)
    expect(me).to_match_aria_snapshot("- text: basic or bearer or session")
    password = page.locator('[id="tag/identity/operation/change_password_api_v1_me_password_post"]')
    expect(password).to_match_aria_snapshot("- text: basic or bearer or (session and csrf)")
    page.screenshot(path=REDOC_SHOT)
    offline.assert_clean(blocked=REDOC_LOGO)
