"""Security → Certificates in the console, in-process (contract C6, issue 10): the same service
calls and permission checks as the admin API, CSRF on every form, errors inline on the form
that failed (never a 500), a generated key's bundle and passphrase shown once, and the
technical user's page listing its certificates."""

from __future__ import annotations

import base64
import html
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from fastapi.testclient import TestClient

from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from tests import factories as f
from tests.pki import make, name
from tests.test_certificates_api import new_csr
from tests.test_console_oauth import technical_user
from tests.test_console_tenancy import SECRET, sign_in, subaccount_with

PAGE = "/console/subaccounts/acme-test/security/certificates"
API = "/api/v1/subaccounts/acme-test"
BUNDLE = re.compile(r'href="data:application/x-pkcs12;base64,([A-Za-z0-9+/=]+)"')


def post(client: TestClient, path: str, token: str, **form: str) -> Any:
    """POST a form of the certificates page (``path`` after ``PAGE``)."""
    return client.post(f"{PAGE}{path}", data={"csrf_token": token, **form})


def listed(client: TestClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    """The sub-account's certificates as the admin API lists them."""
    answer = client.get(f"{API}/certificates", headers=auth)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def row(page: str, certificate_id: str) -> str:
    """The table row of one certificate on a page."""
    found = re.search(rf'<tr id="{certificate_id}">(.*?)</tr>', page, re.S)
    assert found, f"{certificate_id} is not listed"
    return found.group(1)


def panel(page: str, panel_id: str) -> str:
    """One form panel of the page."""
    found = re.search(rf'<section class="panel"[^>]*id="{panel_id}">(.*?)</section>', page, re.S)
    assert found, f"no panel {panel_id}"
    return found.group(1)


def test_an_administrator_issues_from_a_csr_downloads_it_and_revokes_it(
    client: TestClient, ctx: AppContext, tmp_path: Path
) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    bot = technical_user(client, auth)
    token = sign_in(client, boss)

    overview = client.get("/console/subaccounts/acme-test")
    assert f'href="{PAGE}"' in overview.text, "no Security → Certificates entry"
    page = client.get(PAGE)
    assert page.status_code == 200, page.text
    ca = client.get(f"{API}/ca", headers=auth).json()
    assert ca["fingerprint_sha256"] in page.text
    assert html.escape(ca["crl_url"]) in page.text
    assert f'<option value="{bot}">' in page.text

    issued = post(
        client, "/csr", token, technical_user=bot, validity_days="30", pem=new_csr(tmp_path)
    )
    assert issued.status_code == 200, issued.text
    assert "The certificate was issued" in issued.text
    [cert] = listed(client, auth)
    assert cert["source"] == "issued" and cert["user_id"] == bot
    line = row(issued.text, cert["certificate_id"])
    assert cert["not_after"][:10] in line and cert["fingerprint_sha256"] in line
    assert "active" in line and bot in line and "never" in line

    chain = client.get(f"{PAGE}/{cert['certificate_id']}/chain.pem")
    assert chain.status_code == 200 and "attachment" in chain.headers["content-disposition"]
    assert chain.text == cert["certificate_pem"] + ca["certificate_pem"]
    ca_pem = client.get(f"{PAGE}/ca.pem")
    assert ca_pem.text == ca["certificate_pem"]
    if shutil.which("openssl"):
        (tmp_path / "ca.pem").write_text(ca_pem.text)
        (tmp_path / "chain.pem").write_text(chain.text)
        done = subprocess.run(
            ["openssl", "verify", "-CAfile", "ca.pem", "chain.pem"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert "chain.pem: OK" in done.stdout, done.stderr

    confirm = client.get(f"{PAGE}/{cert['certificate_id']}/revoke")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    assert listed(client, auth)[0]["status"] == "active", "the confirmation revoked it"
    revoked = post(client, f"/{cert['certificate_id']}/revoke", token, reason="key_compromise")
    assert revoked.status_code == 200 and "The certificate is revoked" in revoked.text
    assert "revoked" in row(revoked.text, cert["certificate_id"])
    [after] = listed(client, auth)
    assert after["status"] == "revoked" and after["revocation_reason"] == "key_compromise"
    again = post(client, f"/{cert['certificate_id']}/revoke", token)
    assert "revoked already" in again.text


def test_forms_without_the_csrf_token_change_nothing(
    client: TestClient, ctx: AppContext, tmp_path: Path
) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    bot = technical_user(client, auth)
    token = sign_in(client, boss)
    csr = new_csr(tmp_path)
    ca = client.get(f"{API}/ca", headers=auth).json()

    for path, form in [
        ("/csr", {"technical_user": bot, "pem": csr}),
        ("/generate", {"technical_user": bot}),
        ("/ca/rotate", {}),
        ("/trusted-cas", {"pem": make(name("Root"), ca=True).pem}),
    ]:
        for forged in ("", "forged", token[:-1]):
            answer = post(client, path, forged, **form)
            assert answer.status_code == 403, (path, answer.text)
            assert "the form expired" in answer.text
            assert "will not be shown again" not in answer.text
    assert listed(client, auth) == []
    assert (
        client.get(f"{API}/ca", headers=auth).json()["fingerprint_sha256"]
        == (ca["fingerprint_sha256"])
    )
    assert client.get(f"{API}/trusted-cas", headers=auth).json()["items"] == []


def test_a_member_without_the_permission_gets_the_apis_refusal(
    client: TestClient, ctx: AppContext, tmp_path: Path
) -> None:
    viewer, stranger = f.person(ctx), f.person(ctx)
    auth = subaccount_with(client, ctx, **{viewer.user_id: "Viewer"})
    bot = technical_user(client, auth)
    made = client.post(
        f"{API}/certificates", headers=auth, json={"user_id": bot, "csr_pem": new_csr(tmp_path)}
    ).json()
    csr = new_csr(tmp_path)

    # The API's answers to the same people, for the same operations.
    as_viewer = f.basic(viewer.user_id)
    api_write = client.post(
        f"{API}/certificates", headers=as_viewer, json={"user_id": bot, "csr_pem": csr}
    )
    api_revoke = client.post(
        f"{API}/certificates/{made['certificate_id']}/revoke", headers=as_viewer
    )
    api_read = client.get(f"{API}/certificates", headers=f.basic(stranger.user_id))
    assert api_write.status_code == api_revoke.status_code == api_read.status_code == 403

    token = sign_in(client, viewer)
    page = client.get(PAGE)
    assert page.status_code == 200, "credentials:read holders see the page"
    assert made["certificate_id"] in page.text
    assert "Issue from a CSR" not in page.text and "Revoke…" not in page.text
    assert "Rotate CA" not in page.text and "Trust a CA" not in page.text
    for answer, api in [
        (post(client, "/csr", token, technical_user=bot, pem=csr), api_write),
        (post(client, "/generate", token, technical_user=bot), api_write),
        (post(client, "/ca/rotate", token), api_write),
        (post(client, f"/{made['certificate_id']}/revoke", token), api_revoke),
        (client.get(f"{PAGE}/{made['certificate_id']}/revoke"), api_revoke),
    ]:
        assert answer.status_code == 403, answer.text
        assert html.escape(api.json()["detail"]) in answer.text
        assert "will not be shown again" not in answer.text
    assert [c["status"] for c in listed(client, auth)] == ["active"]

    client.cookies.clear()
    sign_in(client, stranger)
    for path in ("", "/ca.pem", f"/{made['certificate_id']}/chain.pem"):
        refused = client.get(f"{PAGE}{path}")
        assert refused.status_code == 403
        assert html.escape(api_read.json()["detail"]) in refused.text
        assert "BEGIN CERTIFICATE" not in refused.text


def test_bad_input_shows_inline_on_its_form_never_a_500(
    client: TestClient, ctx: AppContext, tmp_path: Path
) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    bot = technical_user(client, auth)
    token = sign_in(client, boss)
    csr = new_csr(tmp_path)
    api_garbage = client.post(
        f"{API}/certificates", headers=auth, json={"user_id": bot, "csr_pem": "garbage"}
    ).json()["detail"]

    cases = [
        ("csr", {"technical_user": bot, "pem": "garbage"}, 400, api_garbage),
        ("csr", {"technical_user": bot, "pem": csr.replace("A", "B", 3)}, 400, "CSR"),
        ("csr", {"technical_user": bot, "pem": ""}, 400, "csr_pem is empty"),
        ("csr", {"technical_user": bot, "pem": "x" * 70000}, 400, "longer than 65536"),
        (
            "csr",
            {"technical_user": bot, "pem": csr, "validity_days": "0"},
            400,
            "between 1 and 365",
        ),
        ("csr", {"technical_user": bot, "pem": csr, "validity_days": "366"}, 400, "1 and 365"),
        ("csr", {"technical_user": bot, "pem": csr, "validity_days": "ten"}, 400, "1 and 365"),
        ("csr", {"pem": csr}, 400, "choose the technical user"),
        ("csr", {"user_id": "T999999", "pem": csr}, 404, "T999999"),
        ("csr", {"user_id": boss.user_id, "pem": csr}, 400, "not a technical user"),
        ("generate", {"technical_user": bot, "validity_days": "-1"}, 400, "1 and 365"),
        ("external", {"technical_user": bot, "pem": csr}, 400, "certificate"),
        ("trusted", {"pem": make(name("leaf")).pem}, 400, "not a CA"),
    ]
    for form_name, form, status, words in cases:
        path = {"trusted": "/trusted-cas"}.get(form_name, f"/{form_name}")
        answer = post(client, path, token, **form)
        assert answer.status_code == status, (form_name, form, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")
        inline = re.search(rf'id="error-{form_name}">([^<]*)</div>', answer.text)
        assert inline, f"no inline error on the {form_name} form"
        assert html.escape(words) in inline.group(1), (inline.group(1), words)
        assert answer.text.count('role="alert"') == 1, "the error shows once, on its form"
        if form.get("pem") and len(form["pem"]) < 1000:
            assert html.escape(form["pem"]) in panel(answer.text, f"new-{form_name}"), (
                "what was pasted is kept"
            )
    assert listed(client, auth) == []

    for answer, status in [
        (client.get(f"{PAGE}/crt-unknown/revoke"), 404),
        (post(client, "/crt-unknown/revoke", token), 404),
        (post(client, "/crt-unknown/revoke", token, reason="boredom"), 400),
        (client.get(f"{PAGE}/ca.pem?ca=00"), 404),
        (client.get("/console/subaccounts/nowhere/security/certificates"), 404),
    ]:
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("text/html")


def test_a_generated_key_is_offered_once_and_opens_with_its_passphrase(
    client: TestClient, ctx: AppContext
) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    bot = technical_user(client, auth)
    token = sign_in(client, boss)

    made = post(client, "/generate", token, technical_user=bot, validity_days="7")
    assert made.status_code == 200, made.text
    assert "will not be shown again" in made.text
    assert made.headers["cache-control"] == "no-store"
    passphrase, bundle = SECRET.search(made.text), BUNDLE.search(made.text)
    assert passphrase and bundle
    key, cert, cas = pkcs12.load_key_and_certificates(
        base64.b64decode(bundle.group(1)), passphrase.group(1).encode()
    )
    assert key is not None and cert is not None and len(cas) == 1
    [row_] = listed(client, auth)
    assert row_["source"] == "generated"
    assert cert == x509.load_pem_x509_certificate(row_["certificate_pem"].encode())
    assert passphrase.group(1) not in made.headers.get("set-cookie", "")
    for path in (PAGE, f"/console/technical-users/{bot}"):
        later = client.get(path)
        assert passphrase.group(1) not in later.text and "x-pkcs12" not in later.text


def test_an_external_certificate_is_pinned_and_a_second_upload_conflicts(
    client: TestClient, ctx: AppContext
) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    bot = technical_user(client, auth)
    token = sign_in(client, boss)
    external = make(name("sender"))

    pinned = post(client, "/external", token, technical_user=bot, pem=external.pem)
    assert pinned.status_code == 200 and "pinned" in pinned.text
    [cert] = listed(client, auth)
    assert cert["source"] == "external"
    assert "external" in row(pinned.text, cert["certificate_id"])
    twice = post(client, "/external", token, user_id=bot, pem=external.pem)
    assert twice.status_code == 409
    assert cert["certificate_id"] in panel(twice.text, "new-external")


def test_trusted_cas_and_mapping_rules(client: TestClient, ctx: AppContext) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    bot = technical_user(client, auth)
    token = sign_in(client, boss)
    root = make(name("Partner Root"), ca=True)

    added = post(client, "/trusted-cas", token, pem=root.pem, description="partner PKI")
    assert added.status_code == 200, added.text
    [trusted] = client.get(f"{API}/trusted-cas", headers=auth).json()["items"]
    tca = trusted["trusted_ca_id"]
    assert tca in added.text and "partner PKI" in added.text
    assert trusted["fingerprint_sha256"] in added.text

    rule = post(
        client,
        f"/trusted-cas/{tca}/mapping-rules",
        token,
        subject_dn="CN=orders, O=Partner",
        technical_user=bot,
    )
    assert rule.status_code == 200, rule.text
    [made] = client.get(f"{API}/trusted-cas/{tca}/mapping-rules", headers=auth).json()["items"]
    assert made["user_id"] == bot and made["rule_id"] in rule.text
    again = post(
        client,
        f"/trusted-cas/{tca}/mapping-rules",
        token,
        subject_dn=made["subject_dn"],
        technical_user=bot,
    )
    assert again.status_code == 409
    assert re.search(rf'id="error-rule-{tca}">[^<]*mapped already', again.text)
    assert post(client, "/trusted-cas/tca-nope/mapping-rules", token).status_code == 404

    gone = post(client, f"/trusted-cas/{tca}/mapping-rules/{made['rule_id']}/delete", token)
    assert gone.status_code == 200 and made["rule_id"] not in gone.text
    dropped = post(client, f"/trusted-cas/{tca}/delete", token)
    assert dropped.status_code == 200 and tca not in dropped.text
    assert client.get(f"{API}/trusted-cas", headers=auth).json()["items"] == []


def test_rotation_asks_first_and_keeps_the_old_ca_while_it_vouches(
    client: TestClient, ctx: AppContext, tmp_path: Path, clock: FrozenClock
) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    bot = technical_user(client, auth)
    token = sign_in(client, boss)
    post(client, "/csr", token, technical_user=bot, validity_days="10", pem=new_csr(tmp_path))
    old = client.get(f"{API}/ca", headers=auth).json()

    confirm = client.get(f"{PAGE}/ca/rotate")
    assert confirm.status_code == 200 and old["fingerprint_sha256"] in confirm.text
    assert client.get(f"{API}/ca", headers=auth).json() == old, "asking rotated"
    rotated = post(client, "/ca/rotate", token)
    assert rotated.status_code == 200 and "A new CA signs" in rotated.text
    new = client.get(f"{API}/ca", headers=auth).json()
    assert new["fingerprint_sha256"] != old["fingerprint_sha256"]
    assert new["fingerprint_sha256"] in panel(rotated.text, "ca")
    assert "Retired CAs still trusted" in rotated.text
    assert old["fingerprint_sha256"] in panel(rotated.text, "ca")
    retired = client.get(f"{PAGE}/ca.pem?ca={old['fingerprint_sha256']}")
    assert retired.text == old["certificate_pem"]


def test_the_technical_users_page_lists_its_certificates(
    client: TestClient, ctx: AppContext, tmp_path: Path
) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    bot = technical_user(client, auth)
    token = sign_in(client, boss)
    empty = client.get(f"/console/technical-users/{bot}")
    assert "No certificates" in empty.text and f'href="{PAGE}"' in empty.text

    post(client, "/csr", token, technical_user=bot, pem=new_csr(tmp_path))
    [cert] = listed(client, auth)
    page = client.get(f"/console/technical-users/{bot}")
    assert page.status_code == 200
    line = row(page.text, cert["certificate_id"])
    assert f'href="{PAGE}#{cert["certificate_id"]}"' in line
    assert "acme-test" in line and cert["fingerprint_sha256"] in line
    assert cert["not_after"][:10] in line and "active" in line
