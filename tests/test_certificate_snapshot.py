"""The certificate facts of the grants snapshot (issue 10), on SQLite and PostgreSQL: trust
per sub-account, certificates by fingerprint, and the version moving on each change."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ostiary.access.snapshot import GrantSnapshot, load
from ostiary.certificates import authority, issuing, service, trust, verification
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.identity import technical
from ostiary.identity.models import User
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan, Subaccount
from tests import factories as f
from tests.pki import make, name

ACTOR = "test"


@dataclass(frozen=True)
class World:
    sub: Subaccount
    bot: User


@pytest.fixture
def world(ctx: AppContext) -> World:
    root = f.admin(ctx)
    with transaction(ctx.sessions) as s:
        sub = tenancy.create(
            s, clock=ctx.clock, actor=ACTOR, subdomain="acme", display_name="Acme", plan=Plan.trial
        )
        tenancy.create(
            s, clock=ctx.clock, actor=ACTOR, subdomain="other", display_name="O", plan=Plan.trial
        )
        bot = technical.create(s, ctx, creator=root, display_name="bot", home=sub).user
    return World(sub, bot)


def csr_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def snapshot(ctx: AppContext) -> GrantSnapshot:
    with transaction(ctx.read_sessions) as s:
        return load(s)


def test_the_snapshot_carries_trust_and_certificates(ctx: AppContext, world: World) -> None:
    root = make(name("Partner Root"), ca=True)
    external = make(name("pinned"))
    with transaction(ctx.sessions) as s:
        sub, bot = s.merge(world.sub), s.merge(world.bot)
        issued = issuing.sign_csr(s, ctx, actor=ACTOR, subaccount=sub, user=bot, csr_pem=csr_pem())
        pinned = service.upload_external(
            s, ctx, actor=ACTOR, subaccount=sub, user=bot, certificate_pem=external.pem
        )
        tca = trust.add_trusted_ca(s, ctx, actor=ACTOR, subaccount=sub, certificate_pem=root.pem)
        trust.add_mapping_rule(
            s, ctx, actor=ACTOR, subaccount=sub, trusted=tca, subject_dn="CN=m, O=Partner", user=bot
        )
        ca = authority.active_ca(s, subaccount=sub)
        assert ca is not None
        ids = (issued.certificate.certificate_id, pinned.certificate_id, tca.trusted_ca_id)
        ca_fp = ca.fingerprint_sha256
    snap = snapshot(ctx)
    model = snap.certificates
    acme = model.trust["acme"]
    assert [verification.fingerprint(c) for c in acme.ca_anchors(at=ctx.clock.now())] == [ca_fp]
    assert acme.external_anchors() == (root.cert,)
    assert acme.anchor_owners == {verification.fingerprint(root.cert): ids[2]}
    assert acme.mappings == {(ids[2], "CN=m,O=Partner"): world.bot.user_id}
    fp = verification.fingerprint(external.cert)
    found = model.certificate(fp, "acme")
    assert found is not None and found.certificate_id == ids[1]
    assert (found.source, found.status, found.user_id) == ("external", "active", world.bot.user_id)
    assert model.certificate(fp, "other") is None
    assert model.elsewhere(fp, "other") == (found,)
    assert model.by_id[ids[0]].source == "issued"
    anchors = model.tls_anchors()
    assert external.pem in anchors and root.pem in anchors
    assert issued.certificate.certificate_pem in anchors
    assert "other" not in model.trust


def test_a_revocation_moves_the_version_and_reaches_the_snapshot(
    ctx: AppContext, world: World
) -> None:
    external = make(name("pinned"))
    with transaction(ctx.sessions) as s:
        sub, bot = s.merge(world.sub), s.merge(world.bot)
        row = service.upload_external(
            s, ctx, actor=ACTOR, subaccount=sub, user=bot, certificate_pem=external.pem
        )
    before = snapshot(ctx)
    with transaction(ctx.sessions) as s:
        sub = s.merge(world.sub)
        service.revoke(
            s,
            ctx,
            actor=ACTOR,
            subaccount=sub,
            certificate=service.get(s, subaccount=sub, certificate_id=row.certificate_id),
        )
    after = snapshot(ctx)
    assert after.version > before.version
    found = after.certificates.by_id[row.certificate_id]
    assert found.status == "revoked"
    assert external.pem not in after.certificates.tls_anchors()
