"""The certificate part of the grants snapshot: what the gate needs to admit a caller by
X.509 client certificate, and what the TLS handshake needs to let one through.

Read in the snapshot's one transaction (``snapshot.load``) and parsed once there, never per
request: per sub-account its trust (the CA certificates of its own active CA and of retired
CAs still trusted, every certificate of its trusted external CAs' bundles, and the mapping
rules), and every known certificate by SHA-256 fingerprint. A revocation, a new trust or a
deleted rule moves the grants version (the four tables are in ``READ_MODEL``), so every
worker and node sees it within one poll.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.certificates.verification import fingerprint, well_formed

log = logging.getLogger("ostiary.access")


@dataclass(frozen=True)
class AuthorityFacts:
    """One of a sub-account's own CAs (active, or retired and still trusted for a while)."""

    id: uuid.UUID
    fingerprint: str
    certificate: x509.Certificate
    pem: str
    not_before: datetime
    not_after: datetime
    active: bool
    #: A retired CA vouches for what it issued until then (``None`` while active).
    trusted_until: datetime | None

    def trusted_at(self, at: datetime) -> bool:
        """Whether certificates this CA issued may authenticate at ``at`` (the rule of
        ``certificates.authority.still_trusted``, on the read model)."""
        if not (self.not_before <= at <= self.not_after):
            return False
        return self.active or (self.trusted_until is not None and at < self.trusted_until)


@dataclass(frozen=True)
class TrustedCAFacts:
    """A trusted external CA: every certificate of its bundle is an anchor."""

    id: uuid.UUID
    trusted_ca_id: str
    #: Issuing CA first, root last (as uploaded and verified).
    bundle: tuple[x509.Certificate, ...]
    pem: str


@dataclass(frozen=True)
class CertificateTrust:
    """What one sub-account trusts for client certificates."""

    subdomain: str
    authorities: tuple[AuthorityFacts, ...] = ()
    trusted_cas: dict[str, TrustedCAFacts] = field(default_factory=dict)
    #: Anchor fingerprint → public ID of the trusted CA whose bundle holds it
    #: (``verification.mapping_key``'s ``anchor_ids``).
    anchor_owners: dict[str, str] = field(default_factory=dict)
    #: (trusted CA public ID, normalised subject DN) → user ID of the technical user.
    mappings: dict[tuple[str, str], str] = field(default_factory=dict)

    def ca_anchors(self, *, at: datetime) -> tuple[x509.Certificate, ...]:
        """The sub-account's own CA certificates that vouch at ``at``."""
        return tuple(a.certificate for a in self.authorities if a.trusted_at(at))

    def external_anchors(self) -> tuple[x509.Certificate, ...]:
        """Every certificate of every trusted external CA's bundle."""
        return tuple(c for t in self.trusted_cas.values() for c in t.bundle)


@dataclass(frozen=True)
class CertificateFacts:
    """A known certificate of a technical user in one sub-account."""

    id: uuid.UUID
    certificate_id: str
    fingerprint: str
    subdomain: str
    #: The technical user's ID (``users.user_id``).
    user_id: str
    #: ``CertificateSource`` value: issued, generated, external or mapped.
    source: str
    #: ``CertificateStatus`` value: active, revoked or superseded.
    status: str
    not_before: datetime
    not_after: datetime
    #: Public ID of the trusted CA a mapped certificate chains to.
    trusted_ca_id: str | None
    #: PEM of pinned certificates (external, issued, generated): the handshake's leaf
    #: anchors. Mapped ones chain to their trusted CA and carry none.
    pem: str | None = None

    @property
    def pinned(self) -> bool:
        """Matched by its fingerprint (not by a mapping rule)."""
        return self.source != "mapped"


@dataclass(frozen=True)
class CertificateModel:
    """The certificate facts of one snapshot."""

    #: Subdomain → its trust (sub-accounts without any certificate trust are absent).
    trust: dict[str, CertificateTrust] = field(default_factory=dict)
    #: Fingerprint → subdomain → the certificate (a pin is unique per sub-account only).
    by_fingerprint: dict[str, dict[str, CertificateFacts]] = field(default_factory=dict)
    #: Public certificate ID → the certificate.
    by_id: dict[str, CertificateFacts] = field(default_factory=dict)

    def certificate(self, fingerprint: str, subdomain: str) -> CertificateFacts | None:
        """The certificate with this fingerprint in this sub-account."""
        return self.by_fingerprint.get(fingerprint, {}).get(subdomain)

    def elsewhere(self, fingerprint: str, subdomain: str) -> tuple[CertificateFacts, ...]:
        """The certificate's registrations in other sub-accounts (for "wrong sub-account")."""
        found = self.by_fingerprint.get(fingerprint, {})
        return tuple(c for sd, c in found.items() if sd != subdomain)

    def links(self, user_id: str, subdomain: str, *, at: datetime) -> list[str]:
        """How ``user_id`` can authenticate by certificate in ``subdomain`` at ``at``: its
        active certificates valid now, and the mapping rules naming it (for ``explain``)."""
        found = [
            f"certificate {c.certificate_id} ({c.source}, valid until {c.not_after:%Y-%m-%d})"
            for by_sub in self.by_fingerprint.values()
            if (c := by_sub.get(subdomain)) is not None
            and c.user_id == user_id
            and c.status == "active"
            and c.not_before <= at <= c.not_after
        ]
        trust = self.trust.get(subdomain)
        if trust is not None:
            found += [
                f"mapping rule {subject} under {trusted_ca}"
                for (trusted_ca, subject), mapped in sorted(trust.mappings.items())
                if mapped == user_id
            ]
        return sorted(found)

    def tls_anchors(self) -> tuple[str, ...]:
        """PEM texts every TLS handshake may accept: all sub-accounts' CA certificates
        (also those no longer trusted by date: the gate says why), trusted CA bundles, and
        pinned leaf certificates. Whether the chain fits the flow's sub-account and is
        valid now is the gate's question, per request."""
        pems: dict[str, None] = {}
        for trust in self.trust.values():
            for authority in trust.authorities:
                pems[authority.pem] = None
            for trusted in trust.trusted_cas.values():
                pems[trusted.pem] = None
        for by_sub in self.by_fingerprint.values():
            for cert in by_sub.values():
                if cert.pem is not None and cert.status == "active":
                    pems[cert.pem] = None
        return tuple(pems)


def _parse(pem: str, what: str) -> list[x509.Certificate]:
    """Certificates of a stored PEM; a row that no longer parses is skipped, not fatal."""
    try:
        return [well_formed(c) for c in x509.load_pem_x509_certificates(pem.encode())]
    except ValueError:
        log.warning("stored %s does not parse; it vouches for nothing", what)
        return []


def load_certificates(
    session: Session, subdomains: Mapping[uuid.UUID, str], user_ids: Mapping[uuid.UUID, str]
) -> CertificateModel:
    """Read the four certificate tables (named columns only: last use is outside the read
    model) and parse every stored certificate once."""
    from ostiary.certificates.models import (
        CAStatus,
        Certificate,
        CertificateAuthority,
        CertificateMappingRule,
        TrustedCA,
    )

    trust: dict[str, CertificateTrust] = {}

    def trust_of(subaccount_id: uuid.UUID) -> CertificateTrust | None:
        subdomain = subdomains.get(subaccount_id)
        if subdomain is None:
            return None
        return trust.setdefault(subdomain, CertificateTrust(subdomain))

    authorities: dict[str, list[AuthorityFacts]] = {}
    for ca in session.execute(
        select(
            CertificateAuthority.id,
            CertificateAuthority.subaccount_id,
            CertificateAuthority.certificate_pem,
            CertificateAuthority.fingerprint_sha256,
            CertificateAuthority.subject_dn,
            CertificateAuthority.not_before,
            CertificateAuthority.not_after,
            CertificateAuthority.status,
            CertificateAuthority.trusted_until,
        )
    ):
        owner = trust_of(ca.subaccount_id)
        parsed = _parse(ca.certificate_pem, f"CA {ca.subject_dn}")
        if owner is None or not parsed:
            continue
        authorities.setdefault(owner.subdomain, []).append(
            AuthorityFacts(
                ca.id,
                ca.fingerprint_sha256,
                parsed[0],
                ca.certificate_pem,
                ca.not_before,
                ca.not_after,
                ca.status is CAStatus.active,
                ca.trusted_until,
            )
        )
    trusted_by_id: dict[uuid.UUID, TrustedCAFacts] = {}
    for t in session.execute(
        select(
            TrustedCA.id,
            TrustedCA.trusted_ca_id,
            TrustedCA.subaccount_id,
            TrustedCA.certificate_pem,
            TrustedCA.fingerprint_sha256,
        )
    ):
        owner = trust_of(t.subaccount_id)
        bundle = _parse(t.certificate_pem, f"trusted CA {t.trusted_ca_id}")
        if owner is None or not bundle:
            continue
        facts = TrustedCAFacts(t.id, t.trusted_ca_id, tuple(bundle), t.certificate_pem)
        trusted_by_id[t.id] = facts
        owner.trusted_cas[t.trusted_ca_id] = facts
        for anchor in bundle:
            owner.anchor_owners[fingerprint(anchor)] = t.trusted_ca_id
    for rule in session.execute(
        select(
            CertificateMappingRule.id,
            CertificateMappingRule.rule_id,
            CertificateMappingRule.subaccount_id,
            CertificateMappingRule.trusted_ca_id,
            CertificateMappingRule.subject_dn,
            CertificateMappingRule.user_id,
        )
    ):
        owner = trust_of(rule.subaccount_id)
        trusted = trusted_by_id.get(rule.trusted_ca_id)
        mapped_to = user_ids.get(rule.user_id)
        if owner is None or trusted is None or mapped_to is None:
            continue
        owner.mappings[(trusted.trusted_ca_id, rule.subject_dn)] = mapped_to
    for subdomain, cas in authorities.items():
        old = trust[subdomain]
        trust[subdomain] = CertificateTrust(
            subdomain, tuple(cas), old.trusted_cas, old.anchor_owners, old.mappings
        )
    by_fingerprint: dict[str, dict[str, CertificateFacts]] = {}
    by_id: dict[str, CertificateFacts] = {}
    for c in session.execute(
        select(
            Certificate.id,
            Certificate.certificate_id,
            Certificate.subaccount_id,
            Certificate.user_id,
            Certificate.source,
            Certificate.fingerprint_sha256,
            Certificate.not_before,
            Certificate.not_after,
            Certificate.certificate_pem,
            Certificate.trusted_ca_id,
            Certificate.status,
        )
    ):
        where = subdomains.get(c.subaccount_id)
        owned_by = user_ids.get(c.user_id)
        if where is None or owned_by is None:
            continue
        trusted = trusted_by_id.get(c.trusted_ca_id) if c.trusted_ca_id else None
        source = c.source.value
        cert = CertificateFacts(
            c.id,
            c.certificate_id,
            c.fingerprint_sha256,
            where,
            owned_by,
            source,
            c.status.value,
            c.not_before,
            c.not_after,
            trusted.trusted_ca_id if trusted is not None else None,
            c.certificate_pem if source != "mapped" else None,
        )
        by_fingerprint.setdefault(c.fingerprint_sha256, {})[where] = cert
        by_id[c.certificate_id] = cert
    return CertificateModel(trust, by_fingerprint, by_id)
