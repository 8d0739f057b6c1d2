"""The certificate services on SQLite and PostgreSQL: the CA on first use and its rotation,
issuing from CSRs and generated keys, pins, trusted CAs, mapping rules and supersession,
revocation, CRLs, the audit trail and the grants version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from ostiary.access import versions
from ostiary.audit.models import AuditEvent
from ostiary.certificates import authority, issuing, service, trust, verification
from ostiary.certificates.models import CAStatus, CertificateSource, CertificateStatus
from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import Conflict, InvalidInput
from ostiary.identity import technical
from ostiary.identity.models import User
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan, Subaccount
from tests import factories as f
from tests.pki import make, name

ACTOR = "test"


@dataclass(frozen=True)
class World:
    """A sub-account with a technical user at home in it, a person, and another sub-account."""

    sub: Subaccount
    other: Subaccount
    bot: User
    person: User


@pytest.fixture
def world(ctx: AppContext) -> World:
    root = f.admin(ctx)
    person = f.person(ctx)
    with transaction(ctx.sessions) as s:
        sub = tenancy.create(
            s, clock=ctx.clock, actor=ACTOR, subdomain="acme", display_name="Acme", plan=Plan.trial
        )
        other = tenancy.create(
            s, clock=ctx.clock, actor=ACTOR, subdomain="other", display_name="O", plan=Plan.trial
        )
        bot = technical.create(s, ctx, creator=root, display_name="bot", home=sub).user
    return World(sub, other, bot, person)


def csr_pem(key: ec.EllipticCurvePrivateKey | None = None, cn: str = "whatever") -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def actions(ctx: AppContext) -> list[str]:
    with transaction(ctx.read_sessions) as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_the_ca_is_made_once_on_first_use_and_signs_what_it_issues(
    ctx: AppContext, world: World
) -> None:
    with transaction(ctx.sessions) as s:
        sub, bot = s.merge(world.sub), s.merge(world.bot)
        assert authority.active_ca(s, subaccount=sub) is None
        issued = issuing.sign_csr(
            s, ctx, actor=ACTOR, subaccount=sub, user=bot, csr_pem=csr_pem(), validity_days=30
        )
        again = issuing.sign_csr(s, ctx, actor=ACTOR, subaccount=sub, user=bot, csr_pem=csr_pem())
        ca = authority.ensure_ca(s, ctx, actor=ACTOR, subaccount=sub)
        assert len(authority.authorities(s, subaccount=sub)) == 1
    assert ca.subject_dn == "CN=Ostiary CA acme,O=Ostiary"
    assert "PRIVATE" not in ca.private_key_encrypted
    leaf = x509.load_pem_x509_certificate(issued.certificate.certificate_pem.encode())
    ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    assert leaf.subject.rfc4514_string() == f"CN={world.bot.user_id},O=acme"  # not the CSR's
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=30, minutes=5)
    assert leaf.serial_number.bit_length() <= 159
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert isinstance(
        verification.verify_chain([leaf], [ca_cert], at=ctx.clock.now()), verification.Verified
    )
    dp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert (
        dp[0]
        .full_name[0]
        .value.endswith(f"/api/v1/subaccounts/acme/ca/crl?ca={ca.fingerprint_sha256}")
    )
    assert issued.chain_pem == issued.certificate.certificate_pem + ca.certificate_pem
    assert again.certificate.not_after - again.certificate.not_before == timedelta(
        days=365, minutes=5
    )
    assert actions(ctx).count("ca:created") == 1
    assert actions(ctx).count("certificate:issued") == 2


def test_csrs_and_users_are_checked(ctx: AppContext, world: World) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    good = csr_pem(key)
    forged = x509.load_pem_x509_csr(good.encode())
    # Swap the signature's last bytes: the CSR still parses, the proof of possession fails.
    der = bytearray(forged.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01
    bad = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    with transaction(ctx.sessions) as s:
        sub, bot, person = s.merge(world.sub), s.merge(world.bot), s.merge(world.person)
        other = s.merge(world.other)
        cases = [
            (dict(user=bot, csr_pem=bad), "does not verify"),
            (dict(user=bot, csr_pem="nonsense"), "no PEM CSR"),
            (dict(user=person, csr_pem=good), "not a technical user"),
            (dict(user=bot, csr_pem=good, validity_days=0), "between 1 and 365"),
            (dict(user=bot, csr_pem=good, validity_days=366), "between 1 and 365"),
        ]
        for kwargs, message in cases:
            with pytest.raises(InvalidInput, match=message):
                issuing.sign_csr(s, ctx, actor=ACTOR, subaccount=sub, **kwargs)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="not a technical user of other"):
            issuing.sign_csr(s, ctx, actor=ACTOR, subaccount=other, user=bot, csr_pem=good)


def test_a_generated_key_leaves_only_in_the_pkcs12_bundle(ctx: AppContext, world: World) -> None:
    with transaction(ctx.sessions) as s:
        made = issuing.generate(
            s,
            ctx,
            actor=ACTOR,
            subaccount=s.merge(world.sub),
            user=s.merge(world.bot),
            validity_days=7,
        )
    assert len(made.passphrase) >= 32
    key, cert, cas = pkcs12.load_key_and_certificates(made.pkcs12, made.passphrase.encode())
    assert cert is not None and key is not None and len(cas) == 1
    assert verification.fingerprint(cert) == made.certificate.fingerprint_sha256
    assert made.certificate.source is CertificateSource.generated
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(made.pkcs12, b"wrong")
    with transaction(ctx.read_sessions) as s:
        details = [str(e.detail) for e in s.scalars(select(AuditEvent))]
    assert not any(made.passphrase in d or "PRIVATE KEY" in d for d in details)


def test_external_pins_refuse_cas_expired_and_duplicates(ctx: AppContext, world: World) -> None:
    own = make(name("sender"), days=30)
    with transaction(ctx.sessions) as s:
        sub, bot = s.merge(world.sub), s.merge(world.bot)
        row = service.upload_external(
            s, ctx, actor=ACTOR, subaccount=sub, user=bot, certificate_pem=own.pem
        )
        assert row.source is CertificateSource.external and row.ca_id is None
        assert row.fingerprint_sha256 == verification.fingerprint(own.cert)
    with transaction(ctx.sessions) as s:
        sub, bot = s.merge(world.sub), s.merge(world.bot)
        with pytest.raises(Conflict):
            service.upload_external(
                s, ctx, actor=ACTOR, subaccount=sub, user=bot, certificate_pem=own.pem
            )
        with pytest.raises(InvalidInput, match="CA certificate"):
            service.upload_external(
                s,
                ctx,
                actor=ACTOR,
                subaccount=sub,
                user=bot,
                certificate_pem=make(name("ca"), ca=True).pem,
            )
        old = make(name("old"), not_before=ctx.clock.now() - timedelta(days=10), days=1)
        with pytest.raises(InvalidInput, match="not valid now"):
            service.upload_external(
                s, ctx, actor=ACTOR, subaccount=sub, user=bot, certificate_pem=old.pem
            )
    assert "certificate:pinned" in actions(ctx)


def test_revocation_is_idempotent_and_the_crl_lists_the_serial(
    ctx: AppContext, world: World
) -> None:
    with transaction(ctx.sessions) as s:
        sub, bot = s.merge(world.sub), s.merge(world.bot)
        issued = issuing.sign_csr(s, ctx, actor=ACTOR, subaccount=sub, user=bot, csr_pem=csr_pem())
        kept = issuing.sign_csr(s, ctx, actor=ACTOR, subaccount=sub, user=bot, csr_pem=csr_pem())
        cert_id, kept_serial = issued.certificate.certificate_id, kept.certificate.serial_number
    for expected in (True, False):
        with transaction(ctx.sessions) as s:
            sub = s.merge(world.sub)
            row = service.get(s, subaccount=sub, certificate_id=cert_id)
            done = service.revoke(
                s,
                ctx,
                actor=ACTOR,
                subaccount=sub,
                certificate=row,
                reason=service.RevocationReason.key_compromise,
            )
            assert done.changed is expected
    assert actions(ctx).count("certificate:revoked") == 1
    with transaction(ctx.read_sessions) as s:
        sub = s.merge(world.sub)
        row = service.get(s, subaccount=sub, certificate_id=cert_id)
        crl = authority.crl(s, ctx, subaccount=sub)
        ca = authority.active_ca(s, subaccount=sub)
    assert row.status is CertificateStatus.revoked
    assert ca is not None
    ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    assert crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
    listed = crl.get_revoked_certificate_by_serial_number(int(row.serial_number, 16))
    assert listed is not None
    assert listed.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise
    )
    assert crl.get_revoked_certificate_by_serial_number(int(kept_serial, 16)) is None


def test_rotation_keeps_the_old_ca_trusted_until_its_last_certificate_expires(
    ctx: AppContext, world: World, clock: FrozenClock
) -> None:
    with transaction(ctx.sessions) as s:
        sub, bot = s.merge(world.sub), s.merge(world.bot)
        old = issuing.sign_csr(
            s, ctx, actor=ACTOR, subaccount=sub, user=bot, csr_pem=csr_pem(), validity_days=10
        )
        new_ca = authority.rotate_ca(s, ctx, actor=ACTOR, subaccount=sub)
        fresh = issuing.sign_csr(s, ctx, actor=ACTOR, subaccount=sub, user=bot, csr_pem=csr_pem())
        cas = authority.authorities(s, subaccount=sub)
        assert [c.status for c in cas] == [CAStatus.active, CAStatus.retired]
        assert fresh.certificate.ca_id == new_ca.id != old.certificate.ca_id
        assert cas[1].trusted_until == old.certificate.not_after
        old_crl = authority.crl(s, ctx, subaccount=sub, ca_fingerprint=cas[1].fingerprint_sha256)
    leaf = x509.load_pem_x509_certificate(old.certificate.certificate_pem.encode())
    assert old_crl.issuer == leaf.issuer
    now = clock.now()
    assert isinstance(
        verification.verify_chain([leaf], authority.trusted_anchors(cas, at=now), at=now),
        verification.Verified,
    )
    later = now + timedelta(days=11)
    assert len(authority.trusted_anchors(cas, at=later)) == 1
    assert "ca:rotated" in actions(ctx)


def test_trusted_ca_uploads_and_mapping_rules(ctx: AppContext, world: World) -> None:
    root = make(name("Partner Root"), ca=True, days=3650)
    mid = make(name("Partner Issuing"), issuer=root, ca=True, days=365)
    forged = make(
        name("Partner Issuing"),
        ca=True,
        issuer_name=root.cert.subject,
        signing_key=ec.generate_private_key(ec.SECP256R1()),
    )
    with transaction(ctx.sessions) as s:
        sub, bot = s.merge(world.sub), s.merge(world.bot)
        with pytest.raises(InvalidInput, match="does not verify"):
            trust.add_trusted_ca(
                s, ctx, actor=ACTOR, subaccount=sub, certificate_pem=forged.pem + root.pem
            )
        trusted = trust.add_trusted_ca(
            s, ctx, actor=ACTOR, subaccount=sub, certificate_pem=root.pem + mid.pem
        )
        assert trusted.subject_dn == "CN=Partner Issuing,O=Partner"
        assert [c.subject for c in trust.bundle(trusted)] == [mid.cert.subject, root.cert.subject]
        with pytest.raises(Conflict):
            trust.add_trusted_ca(s, ctx, actor=ACTOR, subaccount=sub, certificate_pem=mid.pem)
        rule = trust.add_mapping_rule(
            s,
            ctx,
            actor=ACTOR,
            subaccount=sub,
            trusted=trusted,
            subject_dn="CN=sender, O=Acme",
            user=bot,
        )
        assert rule.subject_dn == "CN=sender,O=Acme"
        with pytest.raises(Conflict):
            trust.add_mapping_rule(
                s,
                ctx,
                actor=ACTOR,
                subaccount=sub,
                trusted=trusted,
                subject_dn="CN=sender,O=Acme",
                user=bot,
            )
        assert len(trust.list_mapping_rules(s, subaccount=sub, trusted=trusted)) == 1
    assert {"trusted_ca:added", "certificate_mapping_rule:added"} <= set(actions(ctx))


def test_a_newer_mapped_certificate_supersedes_the_older_at_its_first_use(
    ctx: AppContext, world: World
) -> None:
    root = make(name("Partner Root"), ca=True, days=3650)
    start = ctx.clock.now() - timedelta(days=2)
    first = make(name("sender", org="Acme"), issuer=root, not_before=start)
    second = make(name("sender", org="Acme"), issuer=root, not_before=start + timedelta(days=1))
    with transaction(ctx.sessions) as s:
        sub, bot = s.merge(world.sub), s.merge(world.bot)
        trusted = trust.add_trusted_ca(
            s, ctx, actor=ACTOR, subaccount=sub, certificate_pem=root.pem
        )
        use = trust.record_mapped_use(
            s, ctx, subaccount=sub, trusted=trusted, user=bot, leaf=first.cert, address="10.0.0.1"
        )
        assert use.admitted and use.certificate.source is CertificateSource.mapped
        assert use.certificate.last_address == "10.0.0.1"
        again = trust.record_mapped_use(
            s, ctx, subaccount=sub, trusted=trusted, user=bot, leaf=first.cert
        )
        assert again.admitted and again.certificate.id == use.certificate.id
        newer = trust.record_mapped_use(
            s, ctx, subaccount=sub, trusted=trusted, user=bot, leaf=second.cert
        )
        assert newer.admitted and newer.superseded == (use.certificate.certificate_id,)
        assert use.certificate.status is CertificateStatus.superseded
        stale = trust.record_mapped_use(
            s, ctx, subaccount=sub, trusted=trusted, user=bot, leaf=first.cert
        )
        assert not stale.admitted
        # An even older one never seen before is refused too, and remembered as superseded.
        oldest = make(name("sender", org="Acme"), issuer=root, not_before=start - timedelta(days=1))
        late = trust.record_mapped_use(
            s, ctx, subaccount=sub, trusted=trusted, user=bot, leaf=oldest.cert
        )
        assert not late.admitted and late.certificate.status is CertificateStatus.superseded
    assert actions(ctx).count("certificate:superseded") == 2
    assert actions(ctx).count("certificate:mapped") == 2


def test_changes_of_certificates_move_the_grants_version_but_last_use_does_not(
    ctx: AppContext, world: World
) -> None:
    def version() -> int:
        with transaction(ctx.read_sessions) as s:
            return versions.current(s)

    with transaction(ctx.sessions) as s:
        issued = issuing.sign_csr(
            s,
            ctx,
            actor=ACTOR,
            subaccount=s.merge(world.sub),
            user=s.merge(world.bot),
            csr_pem=csr_pem(),
        )
    before = version()
    with transaction(ctx.sessions) as s:
        row = service.get(
            s, subaccount=s.merge(world.sub), certificate_id=issued.certificate.certificate_id
        )
        row.last_used_at = ctx.clock.now()
        row.last_address = "10.1.1.1"
    assert version() == before
    with transaction(ctx.sessions) as s:
        sub = s.merge(world.sub)
        row = service.get(s, subaccount=sub, certificate_id=issued.certificate.certificate_id)
        service.revoke(s, ctx, actor=ACTOR, subaccount=sub, certificate=row)
    assert version() == before + 1


def test_the_ca_key_is_sealed_under_its_own_purpose(ctx: AppContext, world: World) -> None:
    from cryptography.exceptions import InvalidTag

    from ostiary import crypto

    with transaction(ctx.sessions) as s:
        ca = authority.ensure_ca(s, ctx, actor=ACTOR, subaccount=s.merge(world.sub))
    assert authority.signing_key(ctx, ca) is not None
    with pytest.raises(InvalidTag):  # a signing-key blob never opens as a CA key, nor back
        crypto.decrypt_private(
            ctx.secret_key, ca.private_key_encrypted, purpose=crypto.SIGNING_KEYS
        )
    with pytest.raises(InvalidTag):
        crypto.decrypt_private(
            b"another-installation-secret", ca.private_key_encrypted, purpose=crypto.CA_KEYS
        )


def test_the_watched_certificate_tables_name_real_columns_and_leave_last_use_out() -> None:
    from ostiary.access.snapshot import READ_MODEL
    from ostiary.models import Base

    for table in ("certificate_authorities", "certificates", "trusted_cas"):
        assert READ_MODEL[table] <= set(Base.metadata.tables[table].columns.keys()), table
    assert not {"last_used_at", "last_address"} & READ_MODEL["certificates"]
    assert versions.changes_read_model("certificates", {"status"})
    assert not versions.changes_read_model("certificates", {"last_used_at", "last_address"})
