"""Tables of X.509 client certificates: the sub-account CAs, technical users' certificates,
trusted external CAs and the rules that map their subjects to technical users."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


def _enum(enum: type[StrEnum]) -> Enum:
    return Enum(enum, native_enum=False, length=16, values_callable=_values)


class CAStatus(StrEnum):
    """``active`` signs new certificates; ``retired`` only vouches for those it issued."""

    active = "active"
    retired = "retired"


class CertificateSource(StrEnum):
    """How a certificate came to be known."""

    #: Our CA signed the technical user's CSR.
    issued = "issued"
    #: Our CA signed a key Ostiary generated (handed out once as PKCS#12, never stored).
    generated = "generated"
    #: Uploaded and pinned by its SHA-256 fingerprint (self-signed allowed).
    external = "external"
    #: Seen first at use, issued by a trusted external CA and mapped by a subject rule.
    mapped = "mapped"


class CertificateStatus(StrEnum):
    """Only ``active`` certificates authenticate."""

    active = "active"
    revoked = "revoked"
    #: A newer certificate with the same subject and issuer was used (mapped ones only).
    superseded = "superseded"


class RevocationReason(StrEnum):
    """RFC 5280 §5.3.1 reasons a certificate is revoked for (the CRL carries them)."""

    unspecified = "unspecified"
    key_compromise = "key_compromise"
    affiliation_changed = "affiliation_changed"
    superseded = "superseded"
    cessation_of_operation = "cessation_of_operation"
    privilege_withdrawn = "privilege_withdrawn"


class CertificateAuthority(Base):
    """A sub-account's own CA; its private key is sealed like the token signing keys."""

    __tablename__ = "certificate_authorities"
    __table_args__ = (
        # One active CA per sub-account; two first uses at once cannot both create one.
        Index(
            "uq_certificate_authorities_active",
            "subaccount_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    subaccount_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), index=True
    )
    certificate_pem: Mapped[str] = mapped_column(Text)
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    #: Lower-case hex SHA-256 of the DER.
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: RFC 4514.
    subject_dn: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    status: Mapped[CAStatus] = mapped_column(_enum(CAStatus))
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    #: Set at retirement: the last not-after of what it issued. A retired CA is trusted
    #: until then (``None`` while active: trusted as long as it is valid).
    trusted_until: Mapped[datetime | None]


class Certificate(Base):
    """A certificate that authenticates one technical user in one sub-account."""

    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("subaccount_id", "fingerprint_sha256"),
        Index("ix_certificates_mapped_subject", "subaccount_id", "trusted_ca_id", "subject_dn"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    #: Public ID, ``crt-`` and 24 hex digits.
    certificate_id: Mapped[str] = mapped_column(String(64), unique=True)
    subaccount_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[CertificateSource] = mapped_column(_enum(CertificateSource))
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), index=True)
    #: Lower-case hex, no separators.
    serial_number: Mapped[str] = mapped_column(String(64))
    subject_dn: Mapped[str] = mapped_column(Text)
    issuer_dn: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    certificate_pem: Mapped[str] = mapped_column(Text)
    #: Our CA that issued it (``issued`` and ``generated``).
    ca_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("certificate_authorities.id", ondelete="CASCADE"), index=True
    )
    #: The trusted external CA it chains to (``mapped``); deleting the trust deletes it.
    trusted_ca_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("trusted_cas.id", ondelete="CASCADE")
    )
    status: Mapped[CertificateStatus] = mapped_column(_enum(CertificateStatus))
    revoked_at: Mapped[datetime | None]
    #: RFC 5280 reason (``RevocationReason``), also written into the CRL.
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    last_address: Mapped[str | None] = mapped_column(String(64))


class TrustedCA(Base):
    """An external CA a sub-account trusts for mapped certificates.

    ``certificate_pem`` holds the whole verified upload, the issuing CA first and its
    issuers after it (each one is a trust anchor); the other columns describe the first.
    """

    __tablename__ = "trusted_cas"
    __table_args__ = (UniqueConstraint("subaccount_id", "fingerprint_sha256"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    #: Public ID, ``tca-`` and 24 hex digits.
    trusted_ca_id: Mapped[str] = mapped_column(String(64), unique=True)
    subaccount_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), index=True
    )
    certificate_pem: Mapped[str] = mapped_column(Text)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64))
    subject_dn: Mapped[str] = mapped_column(Text)
    #: The earliest not-after of the uploaded chain.
    not_after: Mapped[datetime]
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class CertificateMappingRule(Base):
    """Certificates under ``trusted_ca_id`` with exactly this subject act as ``user_id``."""

    __tablename__ = "certificate_mapping_rules"
    __table_args__ = (UniqueConstraint("trusted_ca_id", "subject_dn"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    #: Public ID, ``cmr-`` and 24 hex digits.
    rule_id: Mapped[str] = mapped_column(String(64), unique=True)
    subaccount_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), index=True
    )
    trusted_ca_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("trusted_cas.id", ondelete="CASCADE")
    )
    #: RFC 4514, normalised (``verification.normalise_dn``).
    subject_dn: Mapped[str] = mapped_column(Text)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
