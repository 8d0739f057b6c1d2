"""Trusted external CAs per sub-account, the rules mapping their certificates' subjects to
technical users, and what happens when such a mapped certificate is used.

SAP's unpinned mode: any certificate with a mapped subject under a trusted CA
authenticates, and a newer one (later not-before) with the same subject and issuer
supersedes the older after its first successful use, which is audited.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.certificates import service, verification
from ostiary.certificates.models import (
    Certificate,
    CertificateMappingRule,
    CertificateSource,
    CertificateStatus,
    TrustedCA,
)
from ostiary.context import AppContext
from ostiary.errors import Conflict, InvalidInput, NotFound
from ostiary.identity.models import User
from ostiary.tenancy.models import Subaccount


def bundle(trusted: TrustedCA) -> list[x509.Certificate]:
    """The trusted CA's certificates (issuing CA first); each one is a trust anchor."""
    return x509.load_pem_x509_certificates(trusted.certificate_pem.encode())


def add_trusted_ca(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    certificate_pem: str,
    description: str = "",
) -> TrustedCA:
    """Trust an uploaded CA: one CA certificate, or a chain that verifies by signatures up
    to a self-signed root inside the upload; each must be valid now."""
    ordered = verification.order_ca_bundle(verification.parse_pem_certificates(certificate_pem))
    now = ctx.clock.now()
    for cert in ordered:
        window = verification.validity_failure(cert, at=now)
        if window is not None:
            raise InvalidInput(f"the upload holds a certificate not valid now: {window.detail}")
    issuing = ordered[0]
    fp = verification.fingerprint(issuing)
    if session.scalar(
        select(TrustedCA.trusted_ca_id).where(
            TrustedCA.subaccount_id == subaccount.id, TrustedCA.fingerprint_sha256 == fp
        )
    ):
        raise Conflict(f"this CA is trusted already in {subaccount.subdomain}")
    trusted = TrustedCA(
        id=uuid.uuid4(),
        trusted_ca_id=service.public_id("tca"),
        subaccount_id=subaccount.id,
        certificate_pem="".join(verification.to_pem(c) for c in ordered),
        fingerprint_sha256=fp,
        subject_dn=verification.normalise_dn(issuing.subject),
        not_after=min(c.not_valid_after_utc for c in ordered),
        description=description,
        created_at=now,
    )
    session.add(trusted)
    session.flush()
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.trusted_ca_added,
        target=trusted.trusted_ca_id,
        subdomain=subaccount.subdomain,
        after={
            "subject": trusted.subject_dn,
            "fingerprint_sha256": fp,
            "chain": [verification.normalise_dn(c.subject) for c in ordered],
            "not_after": trusted.not_after,
        },
    )
    return trusted


def list_trusted_cas(session: Session, *, subaccount: Subaccount) -> list[TrustedCA]:
    """The sub-account's trusted CAs, oldest first."""
    return list(
        session.scalars(
            select(TrustedCA)
            .where(TrustedCA.subaccount_id == subaccount.id)
            .order_by(TrustedCA.created_at, TrustedCA.trusted_ca_id)
        )
    )


def get_trusted_ca(session: Session, *, subaccount: Subaccount, trusted_ca_id: str) -> TrustedCA:
    """One trusted CA, or ``NotFound``."""
    found = session.scalar(
        select(TrustedCA).where(
            TrustedCA.trusted_ca_id == trusted_ca_id, TrustedCA.subaccount_id == subaccount.id
        )
    )
    if found is None:
        raise NotFound(f"no trusted CA {trusted_ca_id} in {subaccount.subdomain}")
    return found


def delete_trusted_ca(
    session: Session, ctx: AppContext, *, actor: str, subaccount: Subaccount, trusted: TrustedCA
) -> None:
    """Stop trusting a CA; its mapping rules and mapped certificates go with it."""
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.trusted_ca_deleted,
        target=trusted.trusted_ca_id,
        subdomain=subaccount.subdomain,
        before={"subject": trusted.subject_dn, "fingerprint_sha256": trusted.fingerprint_sha256},
    )
    session.delete(trusted)


# ---------------------------------------------------------------- mapping rules


def add_mapping_rule(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    trusted: TrustedCA,
    subject_dn: str,
    user: User,
) -> CertificateMappingRule:
    """Certificates under ``trusted`` whose subject is exactly ``subject_dn`` act as ``user``."""
    service.require_technical_user(session, user=user, subaccount=subaccount)
    dn = verification.normalise_dn(subject_dn)
    if session.scalar(
        select(CertificateMappingRule.rule_id).where(
            CertificateMappingRule.trusted_ca_id == trusted.id,
            CertificateMappingRule.subject_dn == dn,
        )
    ):
        raise Conflict(f"{dn} under {trusted.trusted_ca_id} is mapped already")
    rule = CertificateMappingRule(
        id=uuid.uuid4(),
        rule_id=service.public_id("cmr"),
        subaccount_id=subaccount.id,
        trusted_ca_id=trusted.id,
        subject_dn=dn,
        user_id=user.id,
        created_at=ctx.clock.now(),
    )
    session.add(rule)
    session.flush()
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.mapping_rule_added,
        target=rule.rule_id,
        subdomain=subaccount.subdomain,
        after={"trusted_ca": trusted.trusted_ca_id, "subject": dn, "user": user.user_id},
    )
    return rule


def list_mapping_rules(
    session: Session, *, subaccount: Subaccount, trusted: TrustedCA | None = None
) -> list[tuple[CertificateMappingRule, TrustedCA, User]]:
    """Mapping rules of the sub-account (under one trusted CA if given), oldest first."""
    query = (
        select(CertificateMappingRule, TrustedCA, User)
        .join(TrustedCA, TrustedCA.id == CertificateMappingRule.trusted_ca_id)
        .join(User, User.id == CertificateMappingRule.user_id)
        .where(CertificateMappingRule.subaccount_id == subaccount.id)
        .order_by(CertificateMappingRule.created_at, CertificateMappingRule.rule_id)
    )
    if trusted is not None:
        query = query.where(CertificateMappingRule.trusted_ca_id == trusted.id)
    return [(r, t, u) for r, t, u in session.execute(query)]


def delete_mapping_rule(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    rule_id: str,
    trusted: TrustedCA | None = None,
) -> None:
    """Remove a mapping rule (its certificates stop authenticating)."""
    query = select(CertificateMappingRule).where(
        CertificateMappingRule.rule_id == rule_id,
        CertificateMappingRule.subaccount_id == subaccount.id,
    )
    if trusted is not None:
        query = query.where(CertificateMappingRule.trusted_ca_id == trusted.id)
    rule = session.scalar(query)
    if rule is None:
        raise NotFound(f"no mapping rule {rule_id} in {subaccount.subdomain}")
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.mapping_rule_deleted,
        target=rule.rule_id,
        subdomain=subaccount.subdomain,
        before={"subject": rule.subject_dn},
    )
    session.delete(rule)


# ---------------------------------------------------------------- use of a mapped certificate


@dataclass(frozen=True)
class MappedUse:
    """What a use of a mapped certificate did: ``admitted`` is false when the certificate
    is revoked or superseded (the gate then refuses); ``superseded`` names the older
    certificates this use superseded."""

    certificate: Certificate
    admitted: bool
    superseded: tuple[str, ...] = ()


def _same_line(
    subaccount: Subaccount, trusted: TrustedCA, subject: str, issuer: str
) -> ColumnElement[bool]:
    """Active mapped certificates with this subject and issuer under this trusted CA."""
    return and_(
        Certificate.subaccount_id == subaccount.id,
        Certificate.trusted_ca_id == trusted.id,
        Certificate.source == CertificateSource.mapped,
        Certificate.subject_dn == subject,
        Certificate.issuer_dn == issuer,
        Certificate.status == CertificateStatus.active,
    )


def record_mapped_use(
    session: Session,
    ctx: AppContext,
    *,
    subaccount: Subaccount,
    trusted: TrustedCA,
    user: User,
    leaf: x509.Certificate,
    address: str | None = None,
) -> MappedUse:
    """Record a successful use of a certificate the gate verified under ``trusted`` and
    mapped to ``user``: remember it at its first use, and supersede older ones with the
    same subject and issuer. An older one than the newest used is refused (superseded).
    Idempotent; the actor of the audit events is ``user``."""
    # One first use at a time per trusted CA, on every node: the newer/older checks below
    # must see each other's rows, or two first uses at once both stay active.
    session.execute(select(TrustedCA.id).where(TrustedCA.id == trusted.id).with_for_update())
    now = ctx.clock.now()
    fp = verification.fingerprint(leaf)
    subject = verification.normalise_dn(leaf.subject)
    issuer = verification.normalise_dn(leaf.issuer)
    row = session.scalar(
        select(Certificate).where(
            Certificate.subaccount_id == subaccount.id, Certificate.fingerprint_sha256 == fp
        )
    )
    if row is not None and row.status is not CertificateStatus.active:
        return MappedUse(row, admitted=False)
    if row is None:
        newer = session.scalar(
            select(Certificate.certificate_id).where(
                _same_line(subaccount, trusted, subject, issuer),
                Certificate.not_before > leaf.not_valid_before_utc,
            )
        )
        status = CertificateStatus.superseded if newer else CertificateStatus.active
        row = service.add_certificate(
            session,
            ctx,
            subaccount=subaccount,
            user=user,
            cert=leaf,
            source=CertificateSource.mapped,
            trusted_ca_id=trusted.id,
            status=status,
        )
        record(
            session,
            clock=ctx.clock,
            actor=user.user_id,
            action=AuditAction.certificate_superseded if newer else AuditAction.certificate_mapped,
            target=row.certificate_id,
            subdomain=subaccount.subdomain,
            after={**service.facts(row, user), "trusted_ca": trusted.trusted_ca_id},
            reason=f"older than {newer}, which was used already" if newer else None,
        )
        if newer:
            return MappedUse(row, admitted=False)
    elif row.user_id != user.id:
        row.user_id = user.id  # the rule now maps this subject to another technical user
    row.last_used_at = now
    row.last_address = address
    older = list(
        session.scalars(
            select(Certificate).where(
                _same_line(subaccount, trusted, subject, issuer),
                Certificate.not_before < row.not_before,
            )
        )
    )
    for old in older:
        old.status = CertificateStatus.superseded
        record(
            session,
            clock=ctx.clock,
            actor=user.user_id,
            action=AuditAction.certificate_superseded,
            target=old.certificate_id,
            subdomain=subaccount.subdomain,
            before={"status": "active"},
            after={"status": "superseded", "by": row.certificate_id},
        )
    return MappedUse(row, admitted=True, superseded=tuple(o.certificate_id for o in older))
