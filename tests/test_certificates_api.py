"""Certificates through the admin API, proved by an outside client: openssl makes the CSR,
verifies what the CA signed, opens the PKCS#12 bundle and reads the CRL."""

from __future__ import annotations

import base64
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ostiary.context import AppContext
from tests import factories as f
from tests.pki import make, name

SD = "/api/v1/subaccounts/acme"


@dataclass(frozen=True)
class World:
    client: TestClient
    auth: dict[str, str]
    bot: str
    person: str


@pytest.fixture
def world(client: TestClient, ctx: AppContext) -> World:
    boss = f.admin(ctx)
    auth = f.basic(boss.user_id)
    made = client.post(
        "/api/v1/subaccounts",
        headers=auth,
        json={"subdomain": "acme", "display_name": "Acme", "plan": "trial"},
    )
    assert made.status_code == 201, made.text
    bot = client.post(
        "/api/v1/technical-users",
        headers=auth,
        json={"display_name": "orders", "subdomain": "acme"},
    )
    assert bot.status_code == 201, bot.text
    return World(client, auth, bot.json()["user_id"], f.person(ctx).user_id)


def openssl(*args: str, cwd: Path) -> str:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command line is required", pytrace=False)
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def new_csr(tmp_path: Path) -> str:
    openssl(
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "req.pem",
        "-subj",
        "/CN=whatever",
        cwd=tmp_path,
    )
    return (tmp_path / "req.pem").read_text()


def test_an_openssl_csr_signed_through_the_api_verifies_against_the_ca(
    world: World, tmp_path: Path
) -> None:
    c, auth = world.client, world.auth
    issued = c.post(
        f"{SD}/certificates",
        headers=auth,
        json={"user_id": world.bot, "csr_pem": new_csr(tmp_path), "validity_days": 30},
    )
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["source"] == "issued" and body["status"] == "active"
    assert body["subject_dn"] == f"CN={world.bot},O=acme"
    assert body["pkcs12_base64"] is None
    ca = c.get(f"{SD}/ca", headers=auth).json()
    assert set(ca) >= {"certificate_pem", "not_after", "fingerprint_sha256"}
    (tmp_path / "ca.pem").write_text(ca["certificate_pem"])
    (tmp_path / "cert.pem").write_text(body["certificate_pem"])
    assert "cert.pem: OK" in openssl("verify", "-CAfile", "ca.pem", "cert.pem", cwd=tmp_path)
    text = openssl("x509", "-in", "cert.pem", "-noout", "-text", cwd=tmp_path)
    assert "TLS Web Client Authentication" in text and "CA:FALSE" in text
    assert body["chain_pem"] == body["certificate_pem"] + ca["certificate_pem"]
    listed = c.get(f"{SD}/certificates", headers=auth, params={"user_id": world.bot}).json()
    assert [i["certificate_id"] for i in listed["items"]] == [body["certificate_id"]]
    one = c.get(f"{SD}/certificates/{body['certificate_id']}", headers=auth).json()
    assert one["fingerprint_sha256"] == body["fingerprint_sha256"]
    mine = c.get(f"/api/v1/technical-users/{world.bot}/certificates", headers=auth).json()
    assert [m["subdomain"] for m in mine] == ["acme"]


def test_a_generated_bundle_opens_with_its_passphrase(world: World, tmp_path: Path) -> None:
    made = world.client.post(
        f"{SD}/certificates",
        headers=world.auth,
        json={"user_id": world.bot, "generate_key": True, "validity_days": 7},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["source"] == "generated" and len(body["pkcs12_passphrase"]) >= 32
    (tmp_path / "bundle.p12").write_bytes(base64.b64decode(body["pkcs12_base64"]))
    out = openssl(
        "pkcs12",
        "-in",
        "bundle.p12",
        "-passin",
        f"pass:{body['pkcs12_passphrase']}",
        "-nokeys",
        cwd=tmp_path,
    )
    assert f"subject=O = acme, CN = {world.bot}" in out
    assert out.count("-----BEGIN CERTIFICATE-----") == 2 and "PRIVATE KEY" not in out
    # The answer is the only place: neither the read nor the list shows the bundle again.
    again = world.client.get(f"{SD}/certificates/{body['certificate_id']}", headers=world.auth)
    assert "pkcs12_passphrase" not in again.json()


def test_revocation_shows_in_the_public_crl(world: World, tmp_path: Path) -> None:
    c, auth = world.client, world.auth
    assert c.get(f"{SD}/ca/crl").status_code == 404  # no CA yet, and none made for strangers
    made = c.post(
        f"{SD}/certificates", headers=auth, json={"user_id": world.bot, "generate_key": True}
    )
    cert_id, serial = made.json()["certificate_id"], made.json()["serial_number"]
    for _ in range(2):  # idempotent
        revoked = c.post(
            f"{SD}/certificates/{cert_id}/revoke", headers=auth, json={"reason": "key_compromise"}
        )
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["status"] == "revoked"
    crl = c.get(f"{SD}/ca/crl")  # no credentials
    assert crl.status_code == 200
    assert crl.headers["content-type"] == "application/pkix-crl"
    (tmp_path / "ca.crl").write_bytes(crl.content)
    text = openssl("crl", "-inform", "DER", "-in", "ca.crl", "-noout", "-text", cwd=tmp_path)
    assert f"Serial Number: {serial.upper().zfill(len(serial) + len(serial) % 2)}" in text
    assert "Key Compromise" in text
    pem = c.get(f"{SD}/ca/crl", params={"format": "pem"})
    assert pem.text.startswith("-----BEGIN X509 CRL-----")
    audit = c.get("/api/v1/audit-events", headers=auth).json()["items"]
    assert [e["action"] for e in audit].count("certificate:revoked") == 1


def test_rotation_keeps_the_old_ca_and_its_crl(world: World) -> None:
    c, auth = world.client, world.auth
    first = c.get(f"{SD}/ca", headers=auth).json()
    rotated = c.post(f"{SD}/ca/rotate", headers=auth)
    assert rotated.status_code == 201
    assert rotated.json()["fingerprint_sha256"] != first["fingerprint_sha256"]
    cas = c.get(f"{SD}/cas", headers=auth).json()
    assert [x["status"] for x in cas] == ["active", "retired"]
    assert c.get(f"{SD}/ca/crl", params={"ca": first["fingerprint_sha256"]}).status_code == 200


def test_external_certificates_trusted_cas_and_mapping_rules(world: World) -> None:
    c, auth = world.client, world.auth
    own = make(name("sender"), days=30)
    pinned = c.post(
        f"{SD}/certificates", headers=auth, json={"user_id": world.bot, "certificate_pem": own.pem}
    )
    assert pinned.status_code == 201, pinned.text
    assert pinned.json()["source"] == "external"
    again = c.post(
        f"{SD}/certificates", headers=auth, json={"user_id": world.bot, "certificate_pem": own.pem}
    )
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    root = make(name("Partner Root"), ca=True, days=3650)
    trusted = c.post(f"{SD}/trusted-cas", headers=auth, json={"certificate_pem": root.pem})
    assert trusted.status_code == 201, trusted.text
    tca = trusted.json()["trusted_ca_id"]
    rule = c.post(
        f"{SD}/trusted-cas/{tca}/mapping-rules",
        headers=auth,
        json={"subject_dn": "CN=orders, O=Partner", "user_id": world.bot},
    )
    assert rule.status_code == 201, rule.text
    assert rule.json()["subject_dn"] == "CN=orders,O=Partner"
    rules = c.get(f"{SD}/trusted-cas/{tca}/mapping-rules", headers=auth).json()["items"]
    assert [r["rule_id"] for r in rules] == [rule.json()["rule_id"]]
    gone = c.delete(f"{SD}/trusted-cas/{tca}/mapping-rules/{rule.json()['rule_id']}", headers=auth)
    assert gone.status_code == 204
    assert c.delete(f"{SD}/trusted-cas/{tca}", headers=auth).status_code == 204
    assert c.get(f"{SD}/trusted-cas", headers=auth).json()["items"] == []


def test_bad_input_gets_a_clear_4xx(world: World, tmp_path: Path) -> None:
    c, auth = world.client, world.auth
    csr = new_csr(tmp_path)
    lines = csr.strip().splitlines()
    body = "".join(lines[1:-1])
    raw = bytearray(base64.b64decode(body))
    raw[-3] ^= 0x01  # flip a bit of the signature: no proof of possession
    tampered = "\n".join([lines[0], base64.b64encode(bytes(raw)).decode(), lines[-1]]) + "\n"
    root = make(name("Root"), ca=True)
    forged_mid = make(
        name("Issuing"),
        ca=True,
        issuer_name=root.cert.subject,
        signing_key=make(name("x")).key,
    )
    cases = [
        ("certificates", {"user_id": world.bot, "csr_pem": tampered}, 400, "does not verify"),
        ("certificates", {"user_id": world.bot, "csr_pem": "garbage"}, 400, "no PEM CSR"),
        ("certificates", {"user_id": world.person, "csr_pem": csr}, 400, "not a technical user"),
        ("certificates", {"user_id": "T999999", "csr_pem": csr}, 404, "no user"),
        ("certificates", {"user_id": world.bot, "csr_pem": csr, "validity_days": 0}, 422, ""),
        ("certificates", {"user_id": world.bot, "csr_pem": csr, "validity_days": 366}, 422, ""),
        ("certificates", {"user_id": world.bot}, 422, "exactly one"),
        (
            "certificates",
            {"user_id": world.bot, "certificate_pem": root.pem},
            400,
            "CA certificate",
        ),
        ("trusted-cas", {"certificate_pem": forged_mid.pem + root.pem}, 400, "does not verify"),
        ("trusted-cas", {"certificate_pem": make(name("leaf")).pem}, 400, "not a CA"),
    ]
    for path, payload, status, message in cases:
        answer = c.post(f"{SD}/{path}", headers=auth, json=payload)
        assert answer.status_code == status, (payload, answer.text)
        assert answer.json()["error"] in {"invalid_request", "not_found"}
        assert message in str(answer.json()["detail"])


def test_only_credential_managers_may_issue(world: World, ctx: AppContext) -> None:
    c, auth = world.client, world.auth
    viewer = f.person(ctx)
    added = c.post(
        f"{SD}/members", headers=auth, json={"user_id": viewer.user_id, "roles": ["Viewer"]}
    )
    assert added.status_code == 201, added.text
    as_viewer = f.basic(viewer.user_id)
    assert c.get(f"{SD}/certificates", headers=as_viewer).status_code == 200
    denied = c.post(
        f"{SD}/certificates", headers=as_viewer, json={"user_id": world.bot, "generate_key": True}
    )
    assert denied.status_code == 403
    assert c.post(f"{SD}/ca/rotate", headers=as_viewer).status_code == 403
    assert c.get(f"{SD}/certificates").status_code == 401
