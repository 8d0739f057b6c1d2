"""The CA of a sub-account: created on first use, rotated with overlap, and its CRL.

The CA key is ECDSA P-256 (certificates and CRLs signed ECDSA-SHA256), valid ten years,
subject ``CN=Ostiary CA <subdomain>,O=Ostiary``, sealed at rest like the token signing keys
(``ostiary.crypto``, AES-256-GCM under a key derived from ``OSTIARY_SECRET_KEY``).
A rotation makes a new active CA and retires the old one, which stays trusted until the
last certificate it issued expires (``trusted_until``). Each CA has its own CRL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ostiary import crypto
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.certificates import verification
from ostiary.certificates.models import (
    CAStatus,
    Certificate,
    CertificateAuthority,
    CertificateStatus,
    RevocationReason,
)
from ostiary.context import AppContext
from ostiary.errors import NotFound
from ostiary.tenancy.models import Subaccount

CA_VALIDITY = timedelta(days=3650)
#: Certificates and CAs start a little in the past, for clients whose clocks lag.
BACKDATE = timedelta(minutes=5)
CRL_LIFETIME = timedelta(days=7)
_REASON_FLAGS = {
    RevocationReason.key_compromise: x509.ReasonFlags.key_compromise,
    RevocationReason.affiliation_changed: x509.ReasonFlags.affiliation_changed,
    RevocationReason.superseded: x509.ReasonFlags.superseded,
    RevocationReason.cessation_of_operation: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.privilege_withdrawn: x509.ReasonFlags.privilege_withdrawn,
}


def ca_subject(subaccount: Subaccount) -> x509.Name:
    """``CN=Ostiary CA <subdomain>,O=Ostiary``."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ostiary"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Ostiary CA {subaccount.subdomain}"),
        ]
    )


def _new_ca(session: Session, ctx: AppContext, *, subaccount: Subaccount) -> CertificateAuthority:
    now = ctx.clock.now()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = ca_subject(subaccount)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca = CertificateAuthority(
        id=uuid.uuid4(),
        subaccount_id=subaccount.id,
        certificate_pem=verification.to_pem(cert),
        private_key_encrypted=crypto.encrypt_private(ctx.secret_key, pem, purpose=crypto.CA_KEYS),
        fingerprint_sha256=verification.fingerprint(cert),
        subject_dn=subject.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        status=CAStatus.active,
        created_at=now,
        retired_at=None,
        trusted_until=None,
    )
    session.add(ca)
    session.flush()
    return ca


def _lock(session: Session, subaccount: Subaccount) -> None:
    """Serialise CA creation per sub-account on PostgreSQL (SQLite's writers already are)."""
    if session.get_bind().dialect.name == "postgresql":
        key = subaccount.id.int & 0x3FFF_FFFF_FFFF_FFFF
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def active_ca(session: Session, *, subaccount: Subaccount) -> CertificateAuthority | None:
    """The CA that signs new certificates, if there is one yet."""
    return session.scalar(
        select(CertificateAuthority).where(
            CertificateAuthority.subaccount_id == subaccount.id,
            CertificateAuthority.status == CAStatus.active,
        )
    )


def ensure_ca(
    session: Session, ctx: AppContext, *, actor: str, subaccount: Subaccount
) -> CertificateAuthority:
    """The active CA, created (and audited) at the first use."""
    found = active_ca(session, subaccount=subaccount)
    if found is not None:
        return found
    _lock(session, subaccount)
    found = active_ca(session, subaccount=subaccount)
    if found is not None:
        return found
    ca = _new_ca(session, ctx, subaccount=subaccount)
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.ca_created,
        target=ca.fingerprint_sha256,
        subdomain=subaccount.subdomain,
        after={"subject": ca.subject_dn, "not_after": ca.not_after},
    )
    return ca


def rotate_ca(
    session: Session, ctx: AppContext, *, actor: str, subaccount: Subaccount
) -> CertificateAuthority:
    """A new active CA; the old one is retired, trusted until its last certificate expires."""
    _lock(session, subaccount)
    old = active_ca(session, subaccount=subaccount)
    now = ctx.clock.now()
    if old is not None:
        last = session.scalar(
            select(func.max(Certificate.not_after)).where(Certificate.ca_id == old.id)
        )
        old.status = CAStatus.retired
        old.retired_at = now
        old.trusted_until = last if last is not None else now
        session.flush()  # the partial unique index: at most one active CA
    new = _new_ca(session, ctx, subaccount=subaccount)
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.ca_rotated,
        target=new.fingerprint_sha256,
        subdomain=subaccount.subdomain,
        before={"ca": old.fingerprint_sha256, "trusted_until": old.trusted_until} if old else None,
        after={"ca": new.fingerprint_sha256, "not_after": new.not_after},
    )
    return new


def authorities(session: Session, *, subaccount: Subaccount) -> list[CertificateAuthority]:
    """Every CA of the sub-account, newest first."""
    return list(
        session.scalars(
            select(CertificateAuthority)
            .where(CertificateAuthority.subaccount_id == subaccount.id)
            .order_by(CertificateAuthority.created_at.desc(), CertificateAuthority.status)
        )
    )


def still_trusted(ca: CertificateAuthority, *, at: datetime) -> bool:
    """Whether certificates this CA issued may still authenticate at ``at``."""
    if not (ca.not_before <= at <= ca.not_after):
        return False
    return ca.status is CAStatus.active or (ca.trusted_until is not None and at < ca.trusted_until)


def trusted_anchors(cas: Iterable[CertificateAuthority], *, at: datetime) -> list[x509.Certificate]:
    """The CA certificates a presented chain may end at (active and overlapping retired)."""
    return [
        x509.load_pem_x509_certificate(ca.certificate_pem.encode())
        for ca in cas
        if still_trusted(ca, at=at)
    ]


def signing_key(ctx: AppContext, ca: CertificateAuthority) -> ec.EllipticCurvePrivateKey:
    """The CA's private key, unsealed for one signature (it is never cached or logged)."""
    pem = crypto.decrypt_private(ctx.secret_key, ca.private_key_encrypted, purpose=crypto.CA_KEYS)
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def crl_url(ctx: AppContext, subaccount: Subaccount, ca: CertificateAuthority) -> str:
    """Where the CRL of ``ca`` is served (without authentication)."""
    base = ctx.settings.public_url.rstrip("/")
    return f"{base}/api/v1/subaccounts/{subaccount.subdomain}/ca/crl?ca={ca.fingerprint_sha256}"


def crl(
    session: Session, ctx: AppContext, *, subaccount: Subaccount, ca_fingerprint: str | None = None
) -> x509.CertificateRevocationList:
    """The CRL of one CA (the active one by default) listing its revoked, unexpired
    certificates, signed at most ``CRL_REUSE`` ago and never before the last revocation;
    ``NotFound`` before the sub-account has a CA."""
    cas = authorities(session, subaccount=subaccount)
    if ca_fingerprint is None:
        chosen = next((c for c in cas if c.status is CAStatus.active), None)
    else:
        chosen = next((c for c in cas if c.fingerprint_sha256 == ca_fingerprint.lower()), None)
    if chosen is None:
        raise NotFound(f"no such CA in {subaccount.subdomain}")
    now = ctx.clock.now()
    revoked = [
        (serial, revoked_at or now, reason)
        for serial, revoked_at, reason in session.execute(
            select(Certificate.serial_number, Certificate.revoked_at, Certificate.revocation_reason)
            .where(
                Certificate.ca_id == chosen.id,
                Certificate.status == CertificateStatus.revoked,
                Certificate.not_after > now,
            )
            .order_by(Certificate.revoked_at, Certificate.serial_number)
        )
    ]
    # The CRL is public: an anonymous caller must not make us unseal and sign every time.
    key = (chosen.id, tuple(serial for serial, _, _ in revoked))
    cached = _CRLS.get(key)
    if cached is not None and cached[0] <= now < cached[0] + CRL_REUSE:
        return cached[1]
    made = _build_crl(ctx, chosen, revoked, now=now)
    if len(_CRLS) > 1024:
        _CRLS.clear()
    _CRLS[key] = (now, made)
    return made


#: Signed CRLs by (CA, revoked serials), with when they were made; reused for a while.
_CRLS: dict[tuple[uuid.UUID, tuple[str, ...]], tuple[datetime, x509.CertificateRevocationList]] = {}
#: How long one signed CRL is served again (its next_update is days later).
CRL_REUSE = timedelta(minutes=10)


def _build_crl(
    ctx: AppContext,
    chosen: CertificateAuthority,
    revoked: list[tuple[str, datetime, str | None]],
    *,
    now: datetime,
) -> x509.CertificateRevocationList:
    ca_cert = x509.load_pem_x509_certificate(chosen.certificate_pem.encode())
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - BACKDATE)
        .next_update(now + CRL_LIFETIME)
        # Milliseconds: a CRL made later always carries a larger number (RFC 5280 §5.2.3).
        .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    for serial, revoked_at, reason in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(serial, 16))
            .revocation_date(revoked_at)
        )
        flag = _REASON_FLAGS.get(RevocationReason(reason)) if reason else None
        if flag is not None:
            entry = entry.add_extension(x509.CRLReason(flag), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(signing_key(ctx, chosen), hashes.SHA256())
