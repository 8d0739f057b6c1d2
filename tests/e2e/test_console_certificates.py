"""Security → Certificates in real Chromium against a real server (contract C6, issue 10): an
administrator pastes a CSR made by ``openssl req``, sees the certificate listed with its
expiry, revokes it after a confirmation and sees the status change; a generated key's
PKCS#12 bundle downloads and opens with the passphrase shown once; at a phone's 390 px
nothing overflows."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server
from tests.e2e.test_console_oauth import subaccount_with_technical_user
from tests.factories import basic

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    # One backend keeps the browser run short; the in-process tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"]),
]

LIST_SHOT = "/tmp/ostiary-certificates.png"
REVOKED_SHOT = "/tmp/ostiary-certificates-revoked.png"
GENERATED_SHOT = "/tmp/ostiary-certificates-generated.png"
PHONE_SHOT = "/tmp/ostiary-certificates-390.png"


def openssl_csr(tmp_path: Path) -> str:
    """A CSR exactly as a sender makes one with the openssl command line."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command line is required", pytrace=False)
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", "key.pem", "-out", "req.pem", "-subj", "/CN=x"],
        cwd=tmp_path, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return (tmp_path / "req.pem").read_text()


def sign_in(page: Page, server: Server) -> None:
    """Sign in as the platform administrator."""
    from playwright.sync_api import expect

    page.goto(f"{server.url}/console/signin")
    page.get_by_label("User ID or e-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()  # the landing page


def api_certificates(server: Server) -> list[dict[str, object]]:
    """The sub-account's certificates as the admin API lists them."""
    with server.client() as api:
        answer = api.get(
            "/api/v1/subaccounts/acme-test/certificates",
            headers=basic(ADMIN_EMAIL, ADMIN_PASSWORD),
        )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def fits(page: Page, width: int) -> None:
    """Nothing on the page is wider than the viewport."""
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the page is {scroll} px wide at a {width} px viewport"


def test_a_csr_pasted_in_the_console_is_listed_with_its_expiry_and_revoked(
    server: Server, page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    user_id = subaccount_with_technical_user(server)
    csr = openssl_csr(tmp_path)
    sign_in(page, server)

    # The Security navigation has the entry that was a 404 (C6).
    page.goto(f"{server.url}/console/subaccounts/acme-test")
    tabs = page.get_by_role("navigation", name="Sub-account")
    tabs.get_by_role("link", name="Certificates").click()
    expect(page.get_by_role("heading", name="Certificates", exact=True)).to_be_visible()
    expect(tabs.get_by_role("link", name="Certificates")).to_have_attribute("aria-current", "page")
    links = tabs.get_by_role("link")
    first, last = links.first.bounding_box(), links.last.bounding_box()
    assert first and last and first["y"] == last["y"], "the tabs wrap at 1100 px"
    expect(page.locator("#ca-fingerprint")).to_have_text(re.compile("^[0-9a-f]{64}$"))

    form = page.locator("#new-csr")
    form.get_by_label("Technical user", exact=True).select_option(user_id)
    form.get_by_label("Certificate signing request (PEM)").fill(csr)
    expect(form.get_by_label("Validity (days)")).to_have_value("365")
    form.get_by_label("Validity (days)").fill("90")
    form.get_by_role("button", name="Issue certificate").click()

    expect(page.get_by_role("status")).to_contain_text("The certificate was issued")
    [issued] = api_certificates(server)
    certificate_id, not_after = str(issued["certificate_id"]), str(issued["not_after"])
    row = page.locator(f"#{certificate_id}")
    expect(row).to_contain_text(user_id)
    expect(row.locator(".not-after")).to_contain_text(not_after[:10])
    expect(row.locator(".status")).to_have_text("active")
    expect(row).to_contain_text(str(issued["fingerprint_sha256"]))
    page.screenshot(path=LIST_SHOT, full_page=True)

    # The issued certificate downloads with its CA chain.
    with page.expect_download() as download:
        row.get_by_role("link", name=f"PEM of {certificate_id}").click()
    chain = Path(download.value.path()).read_text()
    assert chain.startswith(str(issued["certificate_pem"]))
    assert chain.count("BEGIN CERTIFICATE") == 2

    # Revoke asks first, with the reason; then the status changes.
    row.get_by_role("link", name=f"Revoke… {certificate_id}").click()
    expect(page.get_by_role("heading", name=f"Revoke {certificate_id}?")).to_be_visible()
    page.get_by_label("Reason").select_option("key_compromise")
    page.get_by_role("button", name="Revoke certificate").click()
    expect(page.get_by_role("status")).to_contain_text("The certificate is revoked")
    expect(row.locator(".status")).to_contain_text("revoked")
    expect(row.locator(".status")).to_contain_text("key compromise")
    expect(row.get_by_role("link", name=f"Revoke… {certificate_id}")).to_have_count(0)
    assert api_certificates(server)[0]["status"] == "revoked"
    page.screenshot(path=REVOKED_SHOT, full_page=True)

    # The technical user's page lists it, linked back to the sub-account's page.
    row.get_by_role("link", name=user_id).click()
    listed = page.locator(f"#certificates #{certificate_id}")
    expect(listed).to_contain_text("revoked")
    expect(listed).to_contain_text(not_after[:10])
    listed.get_by_role("link", name="acme-test").click()
    expect(page.get_by_role("heading", name="Certificates", exact=True)).to_be_visible()


def test_a_generated_bundle_downloads_and_the_page_fits_a_phone(
    server: Server, page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    user_id = subaccount_with_technical_user(server)
    sign_in(page, server)
    page.goto(f"{server.url}/console/subaccounts/acme-test/security/certificates")

    form = page.locator("#new-key")
    form.get_by_label("Technical user", exact=True).select_option(user_id)
    form.get_by_role("button", name="Generate key and certificate").click()
    expect(page.get_by_role("alert")).to_contain_text("will not be shown again")
    passphrase = page.locator("#secret").inner_text().strip()
    with page.expect_download() as download:
        page.locator("#bundle").click()
    assert download.value.suggested_filename.endswith(".p12")
    key, cert, _ = pkcs12.load_key_and_certificates(
        Path(download.value.path()).read_bytes(), passphrase.encode()
    )
    assert key is not None and cert is not None
    page.screenshot(path=GENERATED_SHOT, full_page=True)
    page.get_by_role("link", name="back to Certificates").click()
    assert passphrase not in page.content()

    # A failed form and a listed certificate: the widest the page gets, at 390 px.
    page.set_viewport_size({"width": 390, "height": 844})
    csr_form = page.locator("#new-csr")
    csr_form.get_by_label("Technical user", exact=True).select_option(user_id)
    csr_form.get_by_label("Certificate signing request (PEM)").fill("not a CSR")
    csr_form.get_by_role("button", name="Issue certificate").click()
    expect(page.locator("#error-csr")).to_contain_text("no PEM CSR")
    expect(csr_form.get_by_label("Certificate signing request (PEM)")).to_have_value("not a CSR")
    expect(page.locator("#certificates tbody tr")).to_have_count(1)
    fits(page, 390)
    page.screenshot(path=PHONE_SHOT, full_page=True)
    page.get_by_role("link", name=f"Revoke… {cert_id(page)}").click()
    fits(page, 390)


def cert_id(page: Page) -> str:
    """The ID of the first certificate listed."""
    return str(page.locator("#certificates tbody tr").first.get_attribute("id"))
