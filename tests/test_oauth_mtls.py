"""RFC 8705: mutual-TLS client authentication at the token endpoint and certificate-bound
access tokens at the runtime and the admin API.

The client certificate reaches the app the way a TLS-terminating proxy hands it over in
production: ``X-SSL-Client-Cert`` (nginx's escaped PEM) from a trusted proxy address, read
by the real ``ProxyHeadersMiddleware`` into the scope that ``presented()`` reads.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from ostiary.app import create_app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from ostiary.gate.client_certs import PresentedCertificate
from ostiary.oauth import rfc8705_mtls
from ostiary.settings import ClientCertHeader, Settings
from tests.pki import Issued, make, name
from tests.test_oauth import API, Setup

PROXY = ("127.0.0.1", 50000)


@pytest.fixture
def proxied(settings: Settings, clock: FrozenClock) -> Iterator[AppContext]:
    """A context that believes nginx's client-certificate header from 127.0.0.1."""
    configured = settings.model_copy(
        update={
            "trusted_proxies": (ipaddress.ip_network("127.0.0.1/32"),),
            "client_cert_header": ClientCertHeader.nginx,
        }
    )
    context = build_context(configured, clock=clock)
    yield context
    context.engine.dispose()


@pytest.fixture
def setup(proxied: AppContext) -> Iterator[Setup]:
    app = create_app(proxied.settings, ctx=proxied)
    with TestClient(app, raise_server_exceptions=False, client=PROXY) as http:
        yield Setup(http, proxied)


def presenting(cert: Issued | str | None) -> dict[str, str]:
    """The header a trusted nginx sets for a client certificate (none: no header)."""
    if cert is None:
        return {}
    pem = cert if isinstance(cert, str) else cert.pem
    return {"X-SSL-Client-Cert": quote(pem, safe="")}


def x5t(cert: Issued | str) -> str:
    pem = cert if isinstance(cert, str) else cert.pem
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def signed_by_subaccount_ca(setup: Setup, sd: str, user_id: str) -> dict[str, Any]:
    """A certificate the sub-account's own CA signs from a CSR (subject from the user)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name("ignored"))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    answer = setup.http.post(
        f"{API}/{sd}/certificates",
        headers=setup.root,
        json={"user_id": user_id, "csr_pem": csr, "validity_days": 30},
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def register(setup: Setup, sd: str = "acme", **fields: Any) -> dict[str, Any]:
    answer = setup.http.post(
        f"{API}/{sd}/oauth-clients", headers=setup.root, json={"user_id": setup.user, **fields}
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def token_response(setup: Setup, client_id: str, cert: Issued | str | None, **form: str) -> Any:
    data = {"grant_type": "client_credentials", "client_id": client_id, **form}
    return setup.http.post("/oauth/token", data=data, headers=presenting(cert))


def denial_reasons(setup: Setup) -> list[str]:
    """Reasons of the token endpoint's denials. They are handed to the runtime's writer,
    which commits in order: a stored message behind them means they are committed."""
    assert setup.call(setup.token()).status_code == 200
    events = setup.http.get(
        "/api/v1/audit-events",
        headers=setup.root,
        params={"action": "oauth:token:denied", "limit": 200},
    ).json()["items"]
    return [str(e["detail"]["reason"]) for e in events]


def call(setup: Setup, token: str, cert: Issued | str | None) -> Any:
    return setup.http.post(
        "/t/acme/http/orders",
        content=b"<o/>",
        headers={"Authorization": f"Bearer {token}", **presenting(cert)},
    )


def me(setup: Setup, token: str, cert: Issued | str | None) -> Any:
    return setup.http.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {token}", **presenting(cert)}
    )


# ---------------------------------------------------------------- tls_client_auth (§2.1)


def test_tls_client_auth_under_the_subaccounts_own_ca_gets_a_bound_token(setup: Setup) -> None:
    issued = signed_by_subaccount_ca(setup, "acme", setup.user)
    pem = issued["certificate_pem"]
    # Registered in OpenSSL's slash form: compared as normalised RFC 4514, not as text.
    client = register(
        setup,
        token_endpoint_auth_method="tls_client_auth",
        tls_client_auth_subject_dn=f"/O=acme/CN={setup.user}",
    )
    assert client["client_secret"] is None and client["secret_id"] is None
    assert client["secrets"] == []
    assert client["token_endpoint_auth_method"] == "tls_client_auth"
    assert client["tls_client_auth_subject_dn"] == f"CN={setup.user},O=acme"
    answer = token_response(setup, client["client_id"], pem)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == client["client_id"]
    assert claims["cnf"] == {"x5t#S256": x5t(pem)}  # RFC 8705 §3.1
    assert x5t(pem) == base64.urlsafe_b64encode(bytes.fromhex(issued["fingerprint_sha256"])).rstrip(
        b"="
    ).decode("ascii")
    # Introspection (by the same mTLS client) shows the binding (§3.2).
    seen = setup.http.post(
        "/oauth/introspect",
        data={"client_id": client["client_id"], "token": body["access_token"]},
        headers=presenting(pem),
    ).json()
    assert seen["active"] is True and seen["cnf"] == {"x5t#S256": x5t(pem)}
    # Revocation accepts the mTLS client as well.
    revoked = setup.http.post(
        "/oauth/revoke",
        data={"client_id": client["client_id"], "token": body["access_token"]},
        headers=presenting(pem),
    )
    assert revoked.status_code == 200
    assert call(setup, body["access_token"], pem).status_code == 401


def test_tls_client_auth_under_a_trusted_external_ca(setup: Setup, clock: FrozenClock) -> None:
    partner_ca = make(name("Partner Root CA"), ca=True, days=3650)
    trusted = setup.http.post(
        f"{API}/acme/trusted-cas", headers=setup.root, json={"certificate_pem": partner_ca.pem}
    )
    assert trusted.status_code == 201, trusted.text
    client = register(
        setup,
        token_endpoint_auth_method="tls_client_auth",
        tls_client_auth_subject_dn="CN=orders-sender,  O=Partner",  # spaces as typed
    )
    assert client["tls_client_auth_subject_dn"] == "CN=orders-sender,O=Partner"
    # The order of the RDNs is part of the name (RFC 4514): reversed, it is another DN.
    reversed_dn = register(
        setup,
        token_endpoint_auth_method="tls_client_auth",
        tls_client_auth_subject_dn="O=Partner,CN=orders-sender",
    )
    leaf = make(name("orders-sender"), issuer=partner_ca, days=1)
    assert token_response(setup, client["client_id"], leaf).status_code == 200
    assert token_response(setup, reversed_dn["client_id"], leaf).status_code == 401
    # The same client in another sub-account would not trust this CA: "other" trusts nothing.
    other = register(
        setup,
        "other",
        token_endpoint_auth_method="tls_client_auth",
        tls_client_auth_subject_dn="CN=orders-sender,O=Partner",
    )
    assert token_response(setup, other["client_id"], leaf).status_code == 401
    clock.advance(timedelta(days=2))  # the leaf has expired
    expired = token_response(setup, client["client_id"], leaf)
    assert expired.status_code == 401 and expired.json()["error"] == "invalid_client"
    reasons = denial_reasons(setup)
    assert any(r.startswith("untrusted_chain") for r in reasons), reasons
    assert any(r.startswith("certificate_expired") for r in reasons), reasons


def test_tls_client_auth_refusals_are_invalid_client_with_the_real_reason(setup: Setup) -> None:
    issued = signed_by_subaccount_ca(setup, "acme", setup.user)
    client = register(
        setup,
        token_endpoint_auth_method="tls_client_auth",
        tls_client_auth_subject_dn=f"CN={setup.user},O=acme",
    )
    client_id = client["client_id"]
    # Another technical user's certificate from the same CA: a wrong subject DN.
    made = setup.http.post(
        "/api/v1/technical-users", headers=setup.root, json={"display_name": "other bot"}
    ).json()
    assert (
        setup.http.put(
            f"{API}/acme/users/{made['user_id']}/role-collections",
            headers=setup.root,
            json={"role_collections": ["Senders"]},
        ).status_code
        == 200
    )
    theirs = signed_by_subaccount_ca(setup, "acme", made["user_id"])
    # The right DN text under a CA that only looks like ours (same subject, other key).
    ca_pem = setup.http.get(f"{API}/acme/ca", headers=setup.root).json()["certificate_pem"]
    real_ca = x509.load_pem_x509_certificate(ca_pem.encode())
    forged_ca = make(real_ca.subject, ca=True)
    assert forged_ca.cert.subject == real_ca.subject
    lookalike = make(
        x509.Name.from_rfc4514_string(f"CN={setup.user},O=acme"), issuer=forged_ca, days=1
    )
    self_signed = make(x509.Name.from_rfc4514_string(f"CN={setup.user},O=acme"), days=1)
    cases: list[tuple[Issued | str | None, dict[str, str]]] = [
        (None, {}),
        (theirs["certificate_pem"], {}),
        (lookalike, {}),
        (lookalike.pem + forged_ca.pem, {}),  # the forged CA presented as an intermediate
        (self_signed, {}),
        (issued["certificate_pem"], {"client_secret": "x"}),  # a secret it does not have
    ]
    for cert, extra in cases:
        answer = token_response(setup, client_id, cert, **extra)
        assert answer.status_code == 401, (cert, answer.text)
        assert answer.json()["error"] == "invalid_client"
        assert "www-authenticate" in answer.headers
    # The right certificate still works; once revoked, it does not.
    assert token_response(setup, client_id, issued["certificate_pem"]).status_code == 200
    revoked = setup.http.post(
        f"{API}/acme/certificates/{issued['certificate_id']}/revoke",
        headers=setup.root,
        json={"reason": "key_compromise"},
    )
    assert revoked.status_code == 200, revoked.text
    assert token_response(setup, client_id, issued["certificate_pem"]).status_code == 401
    reasons = denial_reasons(setup)
    expected = [
        "tls_client_auth without a client certificate",
        f"certificate subject 'CN={made['user_id']},O=acme' is not the registered",
        "untrusted_chain",
        "a secret for a tls_client_auth client",
        "the client certificate is revoked",
    ]
    for text in expected:
        assert any(text in r for r in reasons), (text, reasons)


# ---------------------------------------------------------------- self_signed (§2.2)


def test_self_signed_tls_client_auth_pins_the_registered_certificate(
    setup: Setup, clock: FrozenClock
) -> None:
    mine = make(name("sender-a"), days=2)
    theirs = make(name("sender-b"), days=2)
    client = register(
        setup, token_endpoint_auth_method="self_signed_tls_client_auth", certificate_pem=mine.pem
    )
    other = register(
        setup, token_endpoint_auth_method="self_signed_tls_client_auth", certificate_pem=theirs.pem
    )
    assert client["client_secret"] is None
    assert (
        client["certificate_fingerprint_sha256"]
        == hashlib.sha256(mine.cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    answer = token_response(setup, client["client_id"], mine)
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["cnf"]["x5t#S256"] == x5t(mine)
    # Another client's certificate, and the same subject re-made with another key.
    assert token_response(setup, client["client_id"], theirs).status_code == 401
    assert token_response(setup, other["client_id"], theirs).status_code == 200
    assert token_response(setup, client["client_id"], make(name("sender-a"))).status_code == 401
    assert token_response(setup, client["client_id"], None).status_code == 401
    rotate = setup.http.post(
        f"{API}/acme/oauth-clients/{client['client_id']}/secrets", headers=setup.root, json={}
    )
    assert rotate.status_code == 400 and "no secret" in rotate.json()["detail"]
    clock.advance(timedelta(days=3))
    assert token_response(setup, client["client_id"], mine).status_code == 401
    reasons = denial_reasons(setup)
    for text in (
        "the client certificate is not the one registered for the client",
        "self_signed_tls_client_auth without a client certificate",
        "certificate_expired",
    ):
        assert any(text in r for r in reasons), (text, reasons)


# ---------------------------------------------------------------- bound tokens (§3)


def test_a_bound_token_needs_its_certificate_at_the_runtime_and_the_admin_api(
    setup: Setup,
) -> None:
    mine, other = make(name("sender-a")), make(name("sender-b"))
    # A secret client over mTLS gets a bound token too (§3: whatever the client auth).
    bound = setup.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": setup.client_id,
            "client_secret": setup.secret,
        },
        headers=presenting(mine),
    )
    assert bound.status_code == 200, bound.text
    token = bound.json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["cnf"] == {"x5t#S256": x5t(mine)}
    assert call(setup, token, mine).status_code == 200
    for cert in (None, other):
        refused = call(setup, token, cert)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert me(setup, token, mine).status_code == 200
    for cert in (None, other):
        refused = me(setup, token, cert)
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    # An unbound token keeps working without a certificate (and ignores one).
    unbound = setup.token()
    assert "cnf" not in jwt.decode(unbound, options={"verify_signature": False})
    assert call(setup, unbound, None).status_code == 200
    assert call(setup, unbound, other).status_code == 200
    assert me(setup, unbound, None).status_code == 200
    runtime = setup.http.get(
        "/api/v1/audit-events", headers=setup.root, params={"action": "runtime:denied"}
    ).json()["items"]
    admin = setup.http.get(
        "/api/v1/audit-events",
        headers=setup.root,
        params={"action": "access:authentication:failed"},
    ).json()["items"]
    for events in (runtime, admin):
        reasons = [str(e["detail"]["reason"]) for e in events]
        assert any("certificate binding mismatch: the token is bound" in r for r in reasons)
        assert any("certificate binding mismatch: another client certificate" in r for r in reasons)


def test_a_certificate_from_an_untrusted_peer_binds_nothing(setup: Setup) -> None:
    app = setup.http.app
    with TestClient(app, raise_server_exceptions=False, client=("192.0.2.7", 4000)) as outside:
        answer = outside.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": setup.client_id,
                "client_secret": setup.secret,
            },
            headers=presenting(make(name("sender-a"))),
        )
    assert answer.status_code == 200
    assert "cnf" not in jwt.decode(
        answer.json()["access_token"], options={"verify_signature": False}
    )


# ---------------------------------------------------------------- registration


def test_registration_refuses_what_does_not_fit_the_method(setup: Setup) -> None:
    ca = make(name("Some CA"), ca=True)
    leaf = make(name("sender"))
    expired = make(name("old"), not_before=datetime.now(UTC) - timedelta(days=10), days=1)
    tls, pinned = "tls_client_auth", "self_signed_tls_client_auth"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"token_endpoint_auth_method": tls}, "needs tls_client_auth_subject_dn"),
        ({"token_endpoint_auth_method": tls, "tls_client_auth_subject_dn": "no dn"}, "RFC 4514"),
        (
            {"token_endpoint_auth_method": tls, "tls_client_auth_subject_dn": "CN=a,O=b"}
            | {"certificate_pem": leaf.pem},
            "subject DN only",
        ),
        ({"token_endpoint_auth_method": pinned}, "needs certificate_pem"),
        ({"token_endpoint_auth_method": pinned, "certificate_pem": "garbage"}, "no PEM"),
        ({"token_endpoint_auth_method": pinned, "certificate_pem": ca.pem}, "CA certificate"),
        ({"token_endpoint_auth_method": pinned, "certificate_pem": expired.pem}, "expired"),
        (
            {"token_endpoint_auth_method": pinned, "certificate_pem": leaf.pem + ca.pem},
            "exactly one",
        ),
        (
            {"token_endpoint_auth_method": pinned, "certificate_pem": leaf.pem}
            | {"tls_client_auth_subject_dn": "CN=a"},
            "tls_client_auth_subject_dn is for tls_client_auth",
        ),
        (
            {"token_endpoint_auth_method": pinned, "certificate_pem": leaf.pem}
            | {"jwks_uri": "https://example.com/jwks"},
            "no jwks",
        ),
        (
            {"token_endpoint_auth_method": "client_secret_basic"}
            | {"tls_client_auth_subject_dn": "CN=a"},
            "mutual-TLS methods",
        ),
        ({"certificate_pem": leaf.pem}, "mutual-TLS methods"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "needs jwks"),
    ]
    for fields, detail in cases:
        answer = setup.http.post(
            f"{API}/acme/oauth-clients",
            headers=setup.root,
            json={"user_id": setup.user, **fields},
        )
        assert answer.status_code == 422, (fields, answer.text)
        assert answer.json()["error"] == "invalid_client_metadata", answer.text
        assert detail in answer.json()["detail"], (detail, answer.text)
    unknown = setup.http.post(
        f"{API}/acme/oauth-clients",
        headers=setup.root,
        json={"user_id": setup.user, "token_endpoint_auth_method": "tls_magic"},
    )
    assert unknown.status_code == 422
    # The secret methods stay the default, and stay named as such.
    plain = register(setup)
    assert plain["client_secret"] and plain["token_endpoint_auth_method"] == "client_secret_basic"
    post = register(setup, token_endpoint_auth_method="client_secret_post")
    assert post["client_secret"] and post["token_endpoint_auth_method"] == "client_secret_post"


# ---------------------------------------------------------------- the pure parts


def test_the_binding_check_compares_the_thumbprint_only() -> None:
    leaf = make(name("sender-a"))
    der = leaf.cert.public_bytes(serialization.Encoding.DER)
    presented = PresentedCertificate(chain=(der,), source="tls")
    cnf = rfc8705_mtls.confirmation(presented)
    assert cnf == {"x5t#S256": x5t(leaf)}
    assert rfc8705_mtls.confirmation(None) is None
    assert rfc8705_mtls.bound_thumbprint({}) is None
    assert rfc8705_mtls.bound_thumbprint({"cnf": cnf}) == x5t(leaf)
    # A malformed cnf binds to nothing any certificate matches: refused, never unbound.
    for odd in ({"cnf": "x"}, {"cnf": {}}, {"cnf": {"x5t#S256": 5}}, {"cnf": {"jkt": "a"}}):
        bound = rfc8705_mtls.bound_thumbprint(odd)
        assert bound == ""
        assert rfc8705_mtls.binding_mismatch(bound, presented) is not None
    assert rfc8705_mtls.binding_mismatch(x5t(leaf), presented) is None
    assert rfc8705_mtls.binding_mismatch(x5t(leaf), None) is not None
