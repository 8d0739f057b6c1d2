"""Attacks on client-certificate authentication (issue 10), each found in review: what a
caller controls (the chain it presents, directly or through a trusted proxy's header) must
never cost unbounded CPU, never answer 500, and never stand in for someone else's."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.app import create_app
from ostiary.certificates import trust, verification
from ostiary.certificates.models import Certificate, TrustedCA
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from ostiary.db import transaction
from ostiary.gate.client_cert_headers import NGINX, RFC9440, RFC9440_CHAIN, parse
from ostiary.gate.client_certs import PresentedCertificate, extension, presented
from ostiary.gate.proxies import ProxyHeadersMiddleware, TrustedProxies
from ostiary.identity.models import User
from ostiary.settings import ClientCertHeader, Settings
from ostiary.tenancy.models import Subaccount
from tests.pki import Issued, make, name
from tests.test_certificate_gate import World, _partner, world  # noqa: F401 (the fixture)
from tests.test_oauth import API, Setup

PROXY = ("127.0.0.1", 50000)
FLOW = "/t/acme/http/certs"


# ---------------------------------------------------------------- malformed certificates


def _der(cert: Issued | x509.Certificate) -> bytes:
    c = cert.cert if isinstance(cert, Issued) else cert
    return c.public_bytes(serialization.Encoding.DER)


def _pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


def duplicate_extension_leaf() -> bytes:
    """A client certificate carrying basicConstraints twice: it parses (cryptography reads
    extensions lazily), but reading its extensions raises ``DuplicateExtension``. A proxy
    with ``ssl_verify_client optional_no_ca`` forwards it; OpenSSL would refuse it."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    constraints = x509.BasicConstraints(ca=False, path_length=None)
    stand_in = x509.ObjectIdentifier("2.5.29.99")  # same DER length as basicConstraints
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("dup"))
        .issuer_name(name("dup"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now.replace(year=now.year - 1))
        .not_valid_after(now.replace(year=now.year + 1))
        .add_extension(constraints, critical=True)
        .add_extension(x509.UnrecognizedExtension(stand_in, constraints.public_bytes()), True)
        .sign(key, hashes.SHA256())
    )
    der = _der(cert).replace(bytes.fromhex("0603551d63"), bytes.fromhex("0603551d13"))
    assert der != _der(cert)
    return der


def unknown_key_ca(subject: x509.Name) -> bytes:
    """A CA certificate whose public key algorithm nobody knows (id-ecPublicKey's last arc
    changed): loading its key raises ``UnsupportedAlgorithm``."""
    der = _der(make(subject, ca=True))
    bad = der.replace(bytes.fromhex("06072a8648ce3d0201"), bytes.fromhex("06072a8648ce3d0209"))
    assert bad != der
    return bad


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
        made = Setup(http, proxied)
        flow = http.post(
            f"{API}/acme/flows", headers=made.root, json={"path": "certs", "auth": ["certificate"]}
        )
        assert flow.status_code == 201, flow.text
        yield made


def _nginx(*ders: bytes) -> dict[str, str]:
    return {"X-SSL-Client-Cert": quote("".join(_pem(d) for d in ders), safe="")}


def test_a_certificate_with_a_duplicate_extension_is_refused_everywhere_never_500(
    setup: Setup,
) -> None:
    leaf = duplicate_extension_leaf()
    pem = _pem(leaf)
    s, root = setup.http, setup.root
    # Through the trusted proxy to a flow: the caller's 401, not a crash.
    assert s.post(FLOW, content=b"x", headers=_nginx(leaf)).status_code == 401
    # The token endpoint (tls_client_auth): invalid_client.
    tls_client = s.post(
        f"{API}/acme/oauth-clients",
        headers=root,
        json={
            "user_id": setup.user,
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=dup,O=Partner",
        },
    )
    assert tls_client.status_code == 201, tls_client.text
    token = s.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": tls_client.json()["client_id"]},
        headers=_nginx(leaf),
    )
    assert token.status_code == 401 and token.json()["error"] == "invalid_client", token.text
    # Uploads: 422 with a reason.
    for path, body in [
        (f"{API}/acme/certificates", {"user_id": setup.user, "certificate_pem": pem}),
        (f"{API}/acme/trusted-cas", {"certificate_pem": pem}),
        (
            f"{API}/acme/oauth-clients",
            {
                "user_id": setup.user,
                "token_endpoint_auth_method": "self_signed_tls_client_auth",
                "certificate_pem": pem,
            },
        ),
    ]:
        answer = s.post(path, headers=root, json=body)
        assert answer.status_code in (400, 422), (path, answer.status_code, answer.text)
        assert "xtension" in answer.text, answer.text


def test_a_duplicate_extension_in_a_forwarded_header_is_named_as_malformed() -> None:
    parsed = parse(NGINX, [quote(_pem(duplicate_extension_leaf()), safe="").encode()])
    assert parsed.chain == () and parsed.error is not None
    assert "not an X.509 certificate" in parsed.error


def test_an_intermediate_with_an_unknown_key_type_is_a_401_not_a_500(setup: Setup) -> None:
    middle = unknown_key_ca(name("Odd CA"))
    leaf = make(name("leaf"), issuer_name=name("Odd CA"))
    answer = setup.http.post(FLOW, content=b"x", headers=_nginx(_der(leaf), middle))
    assert answer.status_code == 401, answer.text
    # And the verifier itself answers instead of raising.
    found = verification.verify_chain(
        [leaf.cert, x509.load_der_x509_certificate(middle)], [], at=datetime.now(UTC)
    )
    assert isinstance(found, verification.Refused)


# ---------------------------------------------------------------- chain-walk cost


def test_a_chain_of_look_alike_cas_costs_bounded_time() -> None:
    """Nine CA certificates with one subject and one key all verify each other's
    signatures: a depth-first walk over every ordering is 60,480 paths (6.5 s of CPU on
    the event loop for one unauthenticated request through a proxy's chain header)."""
    key = ec.generate_private_key(ec.SECP256R1())
    loop = name("Loop CA")
    cas = [make(loop, ca=True, key=key, signing_key=key, issuer_name=loop) for _ in range(9)]
    leaf = make(name("victim"), issuer_name=loop, signing_key=key)
    anchor = make(name("Real Root"), ca=True)
    started = time.perf_counter()
    found = verification.verify_chain(
        [leaf.cert, *(c.cert for c in cas)], [anchor.cert], at=datetime.now(UTC)
    )
    elapsed = time.perf_counter() - started
    assert isinstance(found, verification.Refused)
    assert elapsed < 0.5, f"{elapsed:.2f} s for one chain"


def test_a_long_honest_chain_still_verifies_after_the_bound() -> None:
    root = make(name("Root"), ca=True)
    chain = [root]
    for level in range(4):
        chain.append(make(name(f"Issuing {level}"), issuer=chain[-1], ca=True))
    leaf = make(name("sender"), issuer=chain[-1])
    # Decoys: same subjects as the real intermediates, other keys (their signatures fail).
    decoys = [make(c.cert.subject, ca=True).cert for c in chain[1:]]
    presented_chain = [leaf.cert, *decoys, *(c.cert for c in reversed(chain[1:]))]
    found = verification.verify_chain(presented_chain, [root.cert], at=datetime.now(UTC))
    assert isinstance(found, verification.Verified), found
    assert [c.subject for c in found.path] == [
        leaf.cert.subject,
        *(c.cert.subject for c in reversed(chain)),
    ]


# ---------------------------------------------------------------- trusted proxies


def _through_proxy(
    headers: list[tuple[bytes, bytes]], tls: dict[str, Any], cert_header: bytes | None
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(inner: Any, receive: Any, send: Any) -> None:
        seen.update(inner)

    scope = {
        "type": "http",
        "scheme": "https",
        "client": ("10.0.0.1", 1),
        "headers": headers,
        "extensions": {"tls": tls},
    }
    trusted = TrustedProxies([ipaddress.ip_network("10.0.0.0/8")])
    asyncio.run(ProxyHeadersMiddleware(app, trusted, cert_header=cert_header)(scope, None, None))  # type: ignore[arg-type]
    return seen


@pytest.mark.parametrize("cert_header", [NGINX, None])
def test_a_trusted_proxys_own_tls_certificate_never_becomes_the_callers(
    cert_header: bytes | None,
) -> None:
    """A trusted proxy that connects with its own client certificate (direct TLS) has that
    certificate dropped: it is the proxy's, not the caller's. A client adding a
    client-certificate header that is not the configured one (nginx passes it through)
    must not keep the proxy's certificate in place as the caller's."""
    own = extension((_der(make(name("the-proxy"))),), "tls")
    forged = make(name("anyone")).cert
    header = (RFC9440, b":" + base64.b64encode(_der(forged)) + b":")
    for headers in ([header], [(RFC9440_CHAIN, header[1])]):
        seen = _through_proxy(headers, own, cert_header)
        assert presented(seen) is None, headers
    # With the configured header, the forwarded certificate is the caller's, as before.
    if cert_header is not None:
        leaf = make(name("sender")).cert
        value = quote(leaf.public_bytes(serialization.Encoding.PEM).decode(), safe="").encode()
        seen = _through_proxy([(NGINX, value), header], own, cert_header)
        assert presented(seen) == PresentedCertificate(chain=(_der(leaf),), source="proxy")


# ---------------------------------------------------------------- first uses at once


def test_two_first_uses_at_once_on_two_nodes_still_supersede(
    world: World,  # noqa: F811 (the fixture imported above)
    backend: str,
) -> None:
    """The newer and the older certificate of one subject are first used at the same time
    on two nodes. The older one's transaction looked for a newer one before the newer
    one's committed, and the newer one's looked for older ones before the older one was
    inserted: both were recorded active and the older one was never superseded (it
    authenticated for as long as it was valid). First uses under one trusted CA are
    serialised now."""
    # On SQLite one writer at a time gets in anyway; the outcome must be the same.
    root, trusted_ca_id = _partner(world)
    now = datetime.now(UTC)
    old = make(name("m"), issuer=root, not_before=now - timedelta(days=2))
    new = make(name("m"), issuer=root, not_before=now - timedelta(days=1))
    ctx = world.ctx

    def record(session: Session, leaf: Issued) -> trust.MappedUse:
        sub = session.scalars(select(Subaccount).where(Subaccount.subdomain == "acme")).one()
        user = session.scalars(select(User).where(User.user_id == world.bot)).one()
        tca = session.scalars(
            select(TrustedCA).where(TrustedCA.trusted_ca_id == trusted_ca_id)
        ).one()
        return trust.record_mapped_use(
            session, ctx, subaccount=sub, trusted=tca, user=user, leaf=leaf.cert
        )

    first = ctx.sessions()
    try:
        with first.begin():
            assert record(first, new).admitted
            done: list[bool] = []

            def second() -> None:
                with transaction(ctx.sessions) as session:
                    done.append(record(session, old).admitted)

            racer = threading.Thread(target=second)
            racer.start()
            racer.join(timeout=1.0)  # blocks on the first's lock (with the fix)
        racer.join(timeout=10)
        assert done == [False]  # the older one, first used second: superseded at once
    finally:
        first.close()
    with transaction(ctx.read_sessions) as s:
        statuses = {
            r.not_before.replace(tzinfo=UTC) if r.not_before.tzinfo is None else r.not_before: (
                r.status.value
            )
            for r in s.scalars(select(Certificate).where(Certificate.source == "mapped"))
        }
    assert sorted(statuses.values()) == ["active", "superseded"], statuses
    assert statuses[min(statuses)] == "superseded"
