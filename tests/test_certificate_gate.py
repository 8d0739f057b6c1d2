"""The certificate authenticator at the runtime (issue 10, point 4), on SQLite and
PostgreSQL: who is admitted, every denial reason in the audit log behind the same 401,
precedence of an Authorization header, first use and supersession of mapped certificates,
last use, the explanation's certificate link, and the per-chain cache."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import select

from ostiary.access import service as access
from ostiary.audit.models import AuditEvent
from ostiary.certificates import issuing, service, trust
from ostiary.certificates.models import Certificate
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.gate import certificate_identity
from ostiary.gate.admission import explain
from ostiary.gate.client_certs import extension
from ostiary.identity import technical
from ostiary.identity.models import User, UserStatus
from ostiary.runtime import flows
from ostiary.runtime.certificate_use import certificate_caller
from ostiary.runtime.models import Message
from ostiary.runtime.usage import LastUse
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan, Subaccount
from tests import factories as f
from tests.pki import Issued, make, name
from tests.presenting import chain_header, presenting

ACTOR = "test"
T = TypeVar("T")
FLOW = "/t/acme/http/orders"


@dataclass
class World:
    http: TestClient
    tls: TestClient
    ctx: AppContext
    bot: str
    secret: str
    key: ec.EllipticCurvePrivateKey
    issued_pem: str
    certificate_id: str
    taken: int = 0

    def call(self, *certs: x509.Certificate | str, path: str = FLOW, **headers: str) -> int:
        sent = {**(chain_header(certs) if certs else {}), **headers}
        answer = self.tls.post(path, content=b"<o/>", headers=sent)
        return answer.status_code

    def reasons(self) -> list[str]:
        with transaction(self.ctx.read_sessions) as s:
            return [
                str(d.get("reason", ""))
                for d in s.scalars(
                    select(AuditEvent.detail)
                    .where(AuditEvent.action.in_(["runtime:denied", "credential:expired"]))
                    .order_by(AuditEvent.id)
                )
            ]

    def new_reasons(self, count: int = 1) -> list[str]:
        """The next ``count`` denials' reasons (written in the background: poll for them)."""
        taken = self.taken
        found = wait_for(lambda: r if len(r := self.reasons()) >= taken + count else None)
        self.taken = len(found)
        return found[taken:]

    def last_reason(self) -> str:
        """The reason of the next denial."""
        return self.new_reasons()[-1]


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Poll ``probe`` until it answers (waiting on state, not on time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.01)
    raise AssertionError("timed out")


def csr(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name("x"))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


@pytest.fixture
def world(client: TestClient, ctx: AppContext) -> Iterator[World]:
    certificate_identity.clear_cache()
    root = f.admin(ctx)
    key = ec.generate_private_key(ec.SECP256R1())
    with transaction(ctx.sessions) as s:
        subs = {
            sd: tenancy.create(
                s, clock=ctx.clock, actor=ACTOR, subdomain=sd, display_name=sd, plan=Plan.trial
            )
            for sd in ("acme", "other")
        }
        made = technical.create(s, ctx, creator=root, display_name="bot", home=subs["acme"])
        for sub in subs.values():
            access.create_collection(
                s,
                clock=ctx.clock,
                actor=ACTOR,
                subaccount=sub,
                name="S",
                roles=["ESBMessaging.send"],
            )
            access.add_user_collection(
                s, clock=ctx.clock, actor=ACTOR, subaccount=sub, user=made.user, name="S"
            )
            flows.create(
                s,
                clock=ctx.clock,
                actor=ACTOR,
                subaccount=sub,
                path="orders",
                auth=["basic", "certificate"],
            )
        flows.create(s, clock=ctx.clock, actor=ACTOR, subaccount=subs["acme"], path="basic-only")
        issued = issuing.sign_csr(
            s, ctx, actor=ACTOR, subaccount=subs["acme"], user=made.user, csr_pem=csr(key)
        )
        bot = made.user.user_id
        certificate_id = issued.certificate.certificate_id
        pem = issued.certificate.certificate_pem
    tls = TestClient(presenting(client.app), raise_server_exceptions=False)
    yield World(client, tls, ctx, bot, made.secret, key, pem, certificate_id)


def _denied(w: World, status: int, reason: str) -> None:
    assert status == 401
    assert w.last_reason().startswith(reason), w.reasons()


def test_an_issued_certificate_calls_the_flow_and_the_log_names_it(world: World) -> None:
    answer = world.tls.post(FLOW, content=b"<o/>", headers=chain_header([world.issued_pem]))
    assert answer.status_code == 200, answer.text
    with transaction(world.ctx.read_sessions) as s:
        message = s.scalars(select(Message)).one()
        assert (message.auth_method, message.credential_id) == ("certificate", world.certificate_id)
    seen, addresses = world.http.app.state.runtime.last_use.take_all()
    with transaction(world.ctx.sessions) as s:  # what the 5-second flush writes
        LastUse.flush(s, seen, addresses)
        row = s.scalars(
            select(Certificate).where(Certificate.certificate_id == world.certificate_id)
        ).one()
        assert row.last_used_at == world.ctx.clock.now()
        assert row.last_address == "testclient"


def test_the_401_is_the_one_every_authentication_failure_gets(world: World) -> None:
    stranger = make(name("stranger"))
    by_cert = world.tls.post(FLOW, content=b"x", headers=chain_header([stranger.cert]))
    by_basic = world.tls.post(FLOW, content=b"x", headers=f.basic(world.bot, "wrong"))
    assert by_cert.status_code == by_basic.status_code == 401
    assert by_cert.content == by_basic.content
    assert by_cert.headers["www-authenticate"] == by_basic.headers["www-authenticate"]
    first, second = world.new_reasons(2)
    assert first.startswith("unknown_certificate") and second == "wrong password"


def test_expired_and_not_yet_valid(world: World) -> None:
    world.ctx.clock.advance(timedelta(days=366))  # type: ignore[attr-defined]
    _denied(world, world.call(world.issued_pem), "certificate_expired")
    with transaction(world.ctx.read_sessions) as s:  # an ended credential, like every kind
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions[-1] == "credential:expired"
    world.ctx.clock.advance(-timedelta(days=366, minutes=10))  # type: ignore[attr-defined]
    _denied(world, world.call(world.issued_pem), "certificate_not_yet_valid")


def test_a_cached_admission_still_honours_the_clock(world: World) -> None:
    assert world.call(world.issued_pem) == 200
    assert world.call(world.issued_pem) == 200  # from the cache
    world.ctx.clock.advance(timedelta(days=366))  # type: ignore[attr-defined]
    _denied(world, world.call(world.issued_pem), "certificate_expired")


def test_revoked(world: World) -> None:
    assert world.call(world.issued_pem) == 200
    with transaction(world.ctx.sessions) as s:
        row = s.scalars(
            select(Certificate).where(Certificate.certificate_id == world.certificate_id)
        ).one()
        sub = s.get(Subaccount, row.subaccount_id)
        assert sub is not None
        service.revoke(s, world.ctx, actor=ACTOR, subaccount=sub, certificate=row)
    _denied(world, world.call(world.issued_pem), "certificate_revoked")


def test_wrong_subaccount(world: World) -> None:
    _denied(world, world.call(world.issued_pem, path="/t/other/http/orders"), "wrong_subaccount")


def test_untrusted_chain(world: World) -> None:
    ca = make(name("Elsewhere CA"), ca=True)
    leaf = make(name("leaf"), issuer=ca)
    _denied(world, world.call(leaf.cert, ca.cert), "untrusted_chain")


def test_a_flow_without_certificate_refuses_it(world: World) -> None:
    assert world.call(world.issued_pem, path="/t/acme/http/basic-only") == 401
    assert "does not accept certificate" in world.last_reason()


def test_an_authorization_header_decides_over_a_certificate(world: World) -> None:
    assert world.call(world.issued_pem, **f.basic(world.bot, "wrong")) == 401
    assert world.last_reason() == "wrong password"
    assert world.call(make(name("stranger")).cert, **f.basic(world.bot, world.secret)) == 200


def test_a_disabled_technical_user_is_refused(world: World) -> None:
    with transaction(world.ctx.sessions) as s:
        user = s.scalars(select(User).where(User.user_id == world.bot)).one()
        user.status = UserStatus.disabled
    _denied(world, world.call(world.issued_pem), "certificate_user")


def test_a_header_from_an_untrusted_peer_is_refused_and_named(world: World) -> None:
    status = world.call(**{"X-SSL-Client-Cert": "-----BEGIN%20CERTIFICATE-----"})
    _denied(world, status, "untrusted_peer_header: x-ssl-client-cert from testclient")


def test_an_unparseable_header_from_a_trusted_proxy_is_named(world: World) -> None:
    tls = extension((), "proxy", error="not a PEM certificate")
    found = certificate_caller(
        world.ctx.grants.get(),
        {"type": "http", "headers": [], "extensions": {"tls": tls}},
        subdomain="acme",
        now=world.ctx.clock.now(),
        address="198.51.100.7",
    )
    assert found is not None and not hasattr(found, "user")
    assert found.reason.startswith("unparseable_certificate")  # type: ignore[union-attr]


def _partner(w: World) -> tuple[Issued, str]:
    root = make(name("Partner Root"), ca=True)
    with transaction(w.ctx.sessions) as s:
        sub = s.scalars(select(Subaccount).where(Subaccount.subdomain == "acme")).one()
        user = s.scalars(select(User).where(User.user_id == w.bot)).one()
        tca = trust.add_trusted_ca(s, w.ctx, actor=ACTOR, subaccount=sub, certificate_pem=root.pem)
        trust.add_mapping_rule(
            s,
            w.ctx,
            actor=ACTOR,
            subaccount=sub,
            trusted=tca,
            subject_dn="CN=m,O=Partner",
            user=user,
        )
        return root, tca.trusted_ca_id


def test_a_mapped_certificate_is_recorded_at_first_use_and_older_ones_are_superseded(
    world: World,
) -> None:
    root, _ = _partner(world)
    now = datetime.now(UTC)
    old = make(name("m"), issuer=root, not_before=now - timedelta(days=2))
    new = make(name("m"), issuer=root, not_before=now - timedelta(days=1))
    assert world.call(old.cert) == 200  # first use: recorded as mapped
    assert world.call(old.cert) == 200  # known now
    assert world.call(new.cert) == 200  # supersedes the old one
    _denied(world, world.call(old.cert), "certificate_superseded")
    older = make(name("m"), issuer=root, not_before=now - timedelta(days=3))
    _denied(world, world.call(older.cert), "certificate_superseded")  # first use, too old
    unmapped = make(name("nobody"), issuer=root)
    _denied(world, world.call(unmapped.cert), "unknown_certificate: no mapping rule")
    with transaction(world.ctx.read_sessions) as s:
        sources = sorted((r.source.value, r.status.value) for r in s.scalars(select(Certificate)))
    assert sources == [
        ("issued", "active"),
        ("mapped", "active"),
        ("mapped", "superseded"),
        ("mapped", "superseded"),
    ]


def test_the_explanation_shows_the_certificate_link(world: World) -> None:
    snapshot = world.ctx.grants.refresh()
    result = explain(
        snapshot, user_id=world.bot, subdomain="acme", path="orders", now=world.ctx.clock.now()
    )
    assert result.decision == "allow"
    assert any(world.certificate_id in line for line in result.chain), result.chain


def test_certificate_failures_count_against_the_address_only(world: World) -> None:
    stranger = make(name("stranger"))
    for _ in range(3):
        assert world.call(stranger.cert) == 401
    assert world.call(world.issued_pem) == 200  # the technical user is not locked out
