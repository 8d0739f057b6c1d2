"""Certificates of technical users: who may hold one, pinned external certificates, listing,
reading and revocation. Issuing by the sub-account's CA is ``issuing``; trusted external
CAs, mapping rules and mapped certificates are ``trust``; the CA itself is ``authority``."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.certificates import verification
from ostiary.certificates.models import (
    Certificate,
    CertificateSource,
    CertificateStatus,
    RevocationReason,
)
from ostiary.context import AppContext
from ostiary.errors import Conflict, InvalidInput, NotFound
from ostiary.identity.models import User, UserKind, UserStatus
from ostiary.identity.technical import subaccounts_of
from ostiary.tenancy.models import Subaccount


def public_id(prefix: str) -> str:
    """A public ID: ``prefix``, a dash and 24 hex digits."""
    return f"{prefix}-{secrets.token_hex(12)}"


def require_technical_user(session: Session, *, user: User, subaccount: Subaccount) -> None:
    """Certificates authenticate active technical users of the sub-account only.

    The OAuth clients' rule (technical, active) and the inventory's meaning of "of the
    sub-account" (at home there, a member, or holding a role collection there)."""
    if user.kind is not UserKind.technical:
        raise InvalidInput(
            f"{user.user_id} is not a technical user; certificates authenticate technical users"
        )
    if user.status is not UserStatus.active:
        raise InvalidInput(f"{user.user_id} is {user.status.value}")
    if subaccount.id not in subaccounts_of(session, user=user):
        raise InvalidInput(
            f"{user.user_id} is not a technical user of {subaccount.subdomain} (not at home "
            "there, not a member, holds no role collection there)"
        )


def _refuse_known(session: Session, *, subaccount: Subaccount, fp: str) -> None:
    found = session.scalar(
        select(Certificate.certificate_id).where(
            Certificate.subaccount_id == subaccount.id, Certificate.fingerprint_sha256 == fp
        )
    )
    if found is not None:
        raise Conflict(f"this certificate is registered already in {subaccount.subdomain}: {found}")


def add_certificate(
    session: Session,
    ctx: AppContext,
    *,
    subaccount: Subaccount,
    user: User,
    cert: x509.Certificate,
    source: CertificateSource,
    ca_id: uuid.UUID | None = None,
    trusted_ca_id: uuid.UUID | None = None,
    status: CertificateStatus = CertificateStatus.active,
) -> Certificate:
    """Store a certificate row (the caller audits); ``Conflict`` if its pin is known."""
    fp = verification.fingerprint(cert)
    _refuse_known(session, subaccount=subaccount, fp=fp)
    row = Certificate(
        id=uuid.uuid4(),
        certificate_id=public_id("crt"),
        subaccount_id=subaccount.id,
        user_id=user.id,
        source=source,
        fingerprint_sha256=fp,
        serial_number=verification.serial_hex(cert),
        subject_dn=verification.normalise_dn(cert.subject),
        issuer_dn=verification.normalise_dn(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        certificate_pem=verification.to_pem(cert),
        ca_id=ca_id,
        trusted_ca_id=trusted_ca_id,
        status=status,
        revoked_at=None,
        revocation_reason=None,
        created_at=ctx.clock.now(),
        last_used_at=None,
        last_address=None,
    )
    session.add(row)
    session.flush()
    return row


def facts(row: Certificate, user: User) -> dict[str, object]:
    """What the audit trail records about a certificate (never a key)."""
    return {
        "certificate_id": row.certificate_id,
        "user": user.user_id,
        "source": row.source.value,
        "fingerprint_sha256": row.fingerprint_sha256,
        "serial_number": row.serial_number,
        "subject": row.subject_dn,
        "issuer": row.issuer_dn,
        "not_after": row.not_after,
    }


def upload_external(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    user: User,
    certificate_pem: str,
) -> Certificate:
    """Pin an external certificate (self-signed allowed) by its SHA-256 fingerprint.

    Refused: more than one certificate, a CA certificate, one outside its validity window,
    and one already registered in the sub-account (409)."""
    require_technical_user(session, user=user, subaccount=subaccount)
    certs = verification.parse_pem_certificates(certificate_pem)
    if len(certs) != 1:
        raise InvalidInput("certificate_pem must hold exactly one certificate (the client's)")
    cert = certs[0]
    if verification.is_ca(cert):
        raise InvalidInput(
            "a CA certificate cannot be pinned as a client certificate (basicConstraints "
            "CA:TRUE); make it with -addext basicConstraints=critical,CA:FALSE, or add the CA "
            "under trusted-cas"
        )
    usage = verification.client_usage_failure(cert)
    if usage is not None:
        raise InvalidInput(f"not a client certificate: {usage.detail}")
    window = verification.validity_failure(cert, at=ctx.clock.now())
    if window is not None:
        raise InvalidInput(f"the certificate is not valid now: {window.detail}")
    row = add_certificate(
        session, ctx, subaccount=subaccount, user=user, cert=cert, source=CertificateSource.external
    )
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.certificate_pinned,
        target=row.certificate_id,
        subdomain=subaccount.subdomain,
        after=facts(row, user),
    )
    return row


def get(session: Session, *, subaccount: Subaccount, certificate_id: str) -> Certificate:
    """The certificate ``certificate_id`` of the sub-account, or ``NotFound``."""
    row = session.scalar(
        select(Certificate).where(
            Certificate.certificate_id == certificate_id,
            Certificate.subaccount_id == subaccount.id,
        )
    )
    if row is None:
        raise NotFound(f"no certificate {certificate_id} in {subaccount.subdomain}")
    return row


def owner_of(session: Session, row: Certificate) -> User:
    """The technical user a certificate authenticates."""
    user = session.get(User, row.user_id)
    assert user is not None  # the foreign key cascades
    return user


def list_certificates(
    session: Session, *, subaccount: Subaccount, user: User | None = None
) -> list[tuple[Certificate, User]]:
    """The sub-account's certificates (of one user if given), newest first, with owners."""
    query = (
        select(Certificate, User)
        .join(User, User.id == Certificate.user_id)
        .where(Certificate.subaccount_id == subaccount.id)
        .order_by(Certificate.created_at.desc(), Certificate.certificate_id)
    )
    if user is not None:
        query = query.where(Certificate.user_id == user.id)
    return [(c, u) for c, u in session.execute(query)]


def certificates_of_user(session: Session, *, user: User) -> list[tuple[Certificate, Subaccount]]:
    """A technical user's certificates in every sub-account, newest first."""
    rows = session.execute(
        select(Certificate, Subaccount)
        .join(Subaccount, Subaccount.id == Certificate.subaccount_id)
        .where(Certificate.user_id == user.id)
        .order_by(Certificate.created_at.desc(), Certificate.certificate_id)
    )
    return [(c, s) for c, s in rows]


@dataclass(frozen=True)
class Revoked:
    """A revocation's outcome: ``changed`` is false when it was revoked already."""

    certificate: Certificate
    changed: bool


def revoke(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    certificate: Certificate,
    reason: RevocationReason = RevocationReason.unspecified,
) -> Revoked:
    """Revoke a certificate (idempotent: a second call changes and audits nothing). Every
    worker refuses it within the grants poll interval; our CA's CRL lists it."""
    if certificate.status is CertificateStatus.revoked:
        return Revoked(certificate, changed=False)
    before = certificate.status
    certificate.status = CertificateStatus.revoked
    certificate.revoked_at = ctx.clock.now()
    certificate.revocation_reason = reason.value
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.certificate_revoked,
        target=certificate.certificate_id,
        subdomain=subaccount.subdomain,
        before={"status": before.value},
        after={"status": "revoked", "reason": reason.value},
    )
    return Revoked(certificate, changed=True)
