"""Security → Certificates: the sub-account's CA and CRL, technical users' certificates
(signed CSRs, generated keys, pinned external ones), trusted CAs and mapping rules.

Who may: the OAuth clients' permissions (``credentials:read`` / ``credentials:write``),
checked by the same ``authorized`` helper. The CRL is public: relying parties fetch it
without credentials.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Literal

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator

from ostiary.access.permissions import Permission
from ostiary.api.authn import Principal, authenticated
from ostiary.api.deps import Cursor, Limit, Page, authorized, context, paginate
from ostiary.api.users import _managed
from ostiary.certificates import authority, issuing, service, trust
from ostiary.certificates.models import (
    CAStatus,
    Certificate,
    CertificateAuthority,
    CertificateMappingRule,
    CertificateSource,
    CertificateStatus,
    RevocationReason,
    TrustedCA,
)
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.identity import service as identity
from ostiary.identity.models import User
from ostiary.tenancy import service as tenancy

router = APIRouter(tags=["certificates"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]
SUB = "/api/v1/subaccounts/{subdomain}"
PEM = Annotated[str, Field(min_length=1, max_length=65536)]
UserId = Annotated[str, Field(min_length=1, max_length=32)]


class CAOut(BaseModel):
    """One CA of the sub-account."""

    certificate_pem: str
    not_after: datetime
    fingerprint_sha256: str
    subject_dn: str
    not_before: datetime
    status: CAStatus
    #: A retired CA vouches for its certificates until then.
    trusted_until: datetime | None
    crl_url: str


class CertificateIn(BaseModel):
    """Exactly one of: ``csr_pem`` (our CA signs it), ``generate_key: true`` (we make the key
    and return it once as PKCS#12), or ``certificate_pem`` (an external certificate, pinned)."""

    user_id: UserId
    csr_pem: PEM | None = None
    certificate_pem: PEM | None = None
    generate_key: bool = False
    validity_days: Annotated[int, Field(ge=1, le=365)] | None = Field(
        default=None, description="1-365, default 365; not for external certificates."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> CertificateIn:
        chosen = [self.csr_pem is not None, self.certificate_pem is not None, self.generate_key]
        if sum(chosen) != 1:
            raise ValueError("give exactly one of csr_pem, certificate_pem, generate_key: true")
        if self.certificate_pem is not None and self.validity_days is not None:
            raise ValueError("validity_days applies to certificates our CA signs, not external")
        return self


class CertificateOut(BaseModel):
    """A certificate authenticating a technical user."""

    certificate_id: str
    subdomain: str
    user_id: str
    source: CertificateSource
    status: CertificateStatus
    fingerprint_sha256: str
    serial_number: str
    subject_dn: str
    issuer_dn: str
    not_before: datetime
    not_after: datetime
    certificate_pem: str
    created_at: datetime
    revoked_at: datetime | None
    revocation_reason: RevocationReason | None
    last_used_at: datetime | None


class IssuedOut(CertificateOut):
    """A new certificate; for a generated key also the PKCS#12 bundle and its passphrase,
    shown this once."""

    chain_pem: str
    pkcs12_base64: str | None = None
    pkcs12_passphrase: str | None = None


class RevokeIn(BaseModel):
    """Why the certificate is revoked (RFC 5280 reason, into the CRL)."""

    reason: RevocationReason = RevocationReason.unspecified


class TrustedCAIn(BaseModel):
    """A CA certificate, or a chain up to its self-signed root, in PEM."""

    certificate_pem: PEM
    description: Annotated[str, Field(max_length=2000)] = ""


class TrustedCAOut(BaseModel):
    """A trusted external CA."""

    trusted_ca_id: str
    subject_dn: str
    fingerprint_sha256: str
    not_after: datetime
    description: str
    certificate_pem: str
    created_at: datetime


class MappingRuleIn(BaseModel):
    """Certificates under this trusted CA with exactly this subject act as ``user_id``."""

    subject_dn: Annotated[str, Field(min_length=1, max_length=2000, examples=["CN=orders,O=Acme"])]
    user_id: UserId


class MappingRuleOut(BaseModel):
    """A mapping rule."""

    rule_id: str
    trusted_ca_id: str
    subject_dn: str
    user_id: str
    created_at: datetime


def ca_out(ctx: AppContext, subdomain: str, ca: CertificateAuthority) -> CAOut:
    """A CA as the API shows it (never its key)."""
    base = ctx.settings.public_url.rstrip("/")
    return CAOut(
        certificate_pem=ca.certificate_pem,
        not_after=ca.not_after,
        fingerprint_sha256=ca.fingerprint_sha256,
        subject_dn=ca.subject_dn,
        not_before=ca.not_before,
        status=ca.status,
        trusted_until=ca.trusted_until,
        crl_url=f"{base}/api/v1/subaccounts/{subdomain}/ca/crl?ca={ca.fingerprint_sha256}",
    )


def certificate_out(row: Certificate, user: User, subdomain: str) -> CertificateOut:
    """A certificate as the API shows it."""
    reason = row.revocation_reason
    return CertificateOut(
        certificate_id=row.certificate_id,
        subdomain=subdomain,
        user_id=user.user_id,
        source=row.source,
        status=row.status,
        fingerprint_sha256=row.fingerprint_sha256,
        serial_number=row.serial_number,
        subject_dn=row.subject_dn,
        issuer_dn=row.issuer_dn,
        not_before=row.not_before,
        not_after=row.not_after,
        certificate_pem=row.certificate_pem,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        revocation_reason=RevocationReason(reason) if reason else None,
        last_used_at=row.last_used_at,
    )


def trusted_out(row: TrustedCA) -> TrustedCAOut:
    """A trusted CA as the API shows it."""
    return TrustedCAOut(
        trusted_ca_id=row.trusted_ca_id,
        subject_dn=row.subject_dn,
        fingerprint_sha256=row.fingerprint_sha256,
        not_after=row.not_after,
        description=row.description,
        certificate_pem=row.certificate_pem,
        created_at=row.created_at,
    )


def rule_out(rule: CertificateMappingRule, trusted: TrustedCA, user: User) -> MappingRuleOut:
    """A mapping rule as the API shows it."""
    return MappingRuleOut(
        rule_id=rule.rule_id,
        trusted_ca_id=trusted.trusted_ca_id,
        subject_dn=rule.subject_dn,
        user_id=user.user_id,
        created_at=rule.created_at,
    )


# ---------------------------------------------------------------- the CA and its CRL


@router.get(f"{SUB}/ca", response_model=CAOut)
def get_ca(subdomain: str, ctx: Ctx, principal: Caller) -> CAOut:
    """The active CA (created at the first use, so this may create it)."""
    with authorized(ctx, principal, subdomain, Permission.credentials_read, write=True) as (
        session,
        subaccount,
        _,
    ):
        ca = authority.ensure_ca(session, ctx, actor=principal.user_id, subaccount=subaccount)
        return ca_out(ctx, subdomain, ca)


@router.get(f"{SUB}/cas", response_model=list[CAOut])
def list_cas(subdomain: str, ctx: Ctx, principal: Caller) -> list[CAOut]:
    """Every CA of the sub-account, newest first (retired ones stay while they vouch)."""
    with authorized(ctx, principal, subdomain, Permission.credentials_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        return [
            ca_out(ctx, subdomain, c) for c in authority.authorities(session, subaccount=subaccount)
        ]


@router.post(f"{SUB}/ca/rotate", status_code=201, response_model=CAOut)
def rotate_ca(subdomain: str, ctx: Ctx, principal: Caller) -> CAOut:
    """A new active CA; the old one is trusted until the last certificate it issued expires."""
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        ca = authority.rotate_ca(session, ctx, actor=principal.user_id, subaccount=subaccount)
        return ca_out(ctx, subdomain, ca)


@router.get(
    f"{SUB}/ca/crl",
    response_class=Response,
    responses={200: {"content": {"application/pkix-crl": {}, "application/x-pem-file": {}}}},
)
def get_crl(
    subdomain: str,
    ctx: Ctx,
    ca: Annotated[
        str | None,
        Query(max_length=64, description="A CA's fingerprint_sha256; default the active CA."),
    ] = None,
    format: Annotated[Literal["der", "pem"], Query()] = "der",
) -> Response:
    """The CRL of a CA of the sub-account, freshly signed, without authentication."""
    with transaction(ctx.read_sessions) as session:
        subaccount = tenancy.get(session, subdomain=subdomain)
        crl = authority.crl(session, ctx, subaccount=subaccount, ca_fingerprint=ca)
    headers = {"Cache-Control": "public, max-age=60"}
    if format == "pem":
        body = crl.public_bytes(serialization.Encoding.PEM)
        return Response(body, media_type="application/x-pem-file", headers=headers)
    body = crl.public_bytes(serialization.Encoding.DER)
    return Response(body, media_type="application/pkix-crl", headers=headers)


# ---------------------------------------------------------------- certificates


@router.post(f"{SUB}/certificates", status_code=201, response_model=IssuedOut)
def create_certificate(
    subdomain: str, body: CertificateIn, ctx: Ctx, principal: Caller
) -> IssuedOut:
    """Sign a CSR, generate a key (PKCS#12 in this answer only), or pin an external one."""
    days = body.validity_days or issuing.DEFAULT_VALIDITY_DAYS
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        user = identity.get_user(session, user_id=body.user_id)
        actor = principal.user_id
        bundle: bytes | None = None
        passphrase: str | None = None
        if body.csr_pem is not None:
            issued = issuing.sign_csr(
                session,
                ctx,
                actor=actor,
                subaccount=subaccount,
                user=user,
                csr_pem=body.csr_pem,
                validity_days=days,
            )
            row, chain = issued.certificate, issued.chain_pem
        elif body.generate_key:
            made = issuing.generate(
                session, ctx, actor=actor, subaccount=subaccount, user=user, validity_days=days
            )
            row, chain = made.certificate, made.chain_pem
            bundle, passphrase = made.pkcs12, made.passphrase
        else:
            assert body.certificate_pem is not None
            row = service.upload_external(
                session,
                ctx,
                actor=actor,
                subaccount=subaccount,
                user=user,
                certificate_pem=body.certificate_pem,
            )
            chain = row.certificate_pem
        out = certificate_out(row, user, subdomain)
    return IssuedOut(
        **out.model_dump(),
        chain_pem=chain,
        pkcs12_base64=base64.b64encode(bundle).decode() if bundle is not None else None,
        pkcs12_passphrase=passphrase,
    )


@router.get(f"{SUB}/certificates", response_model=Page[CertificateOut])
def list_certificates(
    subdomain: str,
    ctx: Ctx,
    principal: Caller,
    user_id: Annotated[str | None, Query(max_length=32)] = None,
    status: CertificateStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[CertificateOut]:
    """The sub-account's certificates (filter by technical user or status)."""
    with authorized(ctx, principal, subdomain, Permission.credentials_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        user = identity.get_user(session, user_id=user_id) if user_id else None
        items = [
            certificate_out(c, u, subdomain)
            for c, u in service.list_certificates(session, subaccount=subaccount, user=user)
            if status is None or c.status is status
        ]
    return paginate(items, key=lambda c: c.certificate_id, limit=limit, cursor=cursor)


@router.get(f"{SUB}/certificates/{{certificate_id}}", response_model=CertificateOut)
def get_certificate(
    subdomain: str, certificate_id: str, ctx: Ctx, principal: Caller
) -> CertificateOut:
    """One certificate."""
    with authorized(ctx, principal, subdomain, Permission.credentials_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        row = service.get(session, subaccount=subaccount, certificate_id=certificate_id)
        return certificate_out(row, service.owner_of(session, row), subdomain)


@router.post(f"{SUB}/certificates/{{certificate_id}}/revoke", response_model=CertificateOut)
def revoke_certificate(
    subdomain: str, certificate_id: str, ctx: Ctx, principal: Caller, body: RevokeIn | None = None
) -> CertificateOut:
    """Revoke a certificate (again: nothing changes); refused everywhere within a second."""
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        row = service.get(session, subaccount=subaccount, certificate_id=certificate_id)
        service.revoke(
            session,
            ctx,
            actor=principal.user_id,
            subaccount=subaccount,
            certificate=row,
            reason=(body or RevokeIn()).reason,
        )
        return certificate_out(row, service.owner_of(session, row), subdomain)


@router.get("/api/v1/technical-users/{user_id}/certificates", response_model=list[CertificateOut])
def certificates_of_user(user_id: str, ctx: Ctx, principal: Caller) -> list[CertificateOut]:
    """A technical user's certificates in every sub-account (owners and administrators)."""
    with transaction(ctx.read_sessions) as session:
        _, user = _managed(session, principal, user_id)
        return [
            certificate_out(c, user, s.subdomain)
            for c, s in service.certificates_of_user(session, user=user)
        ]


# ---------------------------------------------------------------- trusted CAs and rules


@router.post(f"{SUB}/trusted-cas", status_code=201, response_model=TrustedCAOut)
def add_trusted_ca(subdomain: str, body: TrustedCAIn, ctx: Ctx, principal: Caller) -> TrustedCAOut:
    """Trust an external CA (its upload must verify by signatures, never by DN text)."""
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        row = trust.add_trusted_ca(
            session,
            ctx,
            actor=principal.user_id,
            subaccount=subaccount,
            certificate_pem=body.certificate_pem,
            description=body.description,
        )
        return trusted_out(row)


@router.get(f"{SUB}/trusted-cas", response_model=Page[TrustedCAOut])
def list_trusted_cas(
    subdomain: str, ctx: Ctx, principal: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[TrustedCAOut]:
    """The sub-account's trusted external CAs."""
    with authorized(ctx, principal, subdomain, Permission.credentials_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        items = [trusted_out(t) for t in trust.list_trusted_cas(session, subaccount=subaccount)]
    return paginate(items, key=lambda t: t.trusted_ca_id, limit=limit, cursor=cursor)


@router.get(f"{SUB}/trusted-cas/{{trusted_ca_id}}", response_model=TrustedCAOut)
def get_trusted_ca(subdomain: str, trusted_ca_id: str, ctx: Ctx, principal: Caller) -> TrustedCAOut:
    """One trusted CA."""
    with authorized(ctx, principal, subdomain, Permission.credentials_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        return trusted_out(
            trust.get_trusted_ca(session, subaccount=subaccount, trusted_ca_id=trusted_ca_id)
        )


@router.delete(f"{SUB}/trusted-cas/{{trusted_ca_id}}", status_code=204)
def delete_trusted_ca(subdomain: str, trusted_ca_id: str, ctx: Ctx, principal: Caller) -> None:
    """Stop trusting a CA; its mapping rules and mapped certificates go with it."""
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        row = trust.get_trusted_ca(session, subaccount=subaccount, trusted_ca_id=trusted_ca_id)
        trust.delete_trusted_ca(
            session, ctx, actor=principal.user_id, subaccount=subaccount, trusted=row
        )


@router.post(
    f"{SUB}/trusted-cas/{{trusted_ca_id}}/mapping-rules",
    status_code=201,
    response_model=MappingRuleOut,
)
def add_mapping_rule(
    subdomain: str, trusted_ca_id: str, body: MappingRuleIn, ctx: Ctx, principal: Caller
) -> MappingRuleOut:
    """Map a subject DN under this trusted CA to a technical user of the sub-account."""
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        trusted = trust.get_trusted_ca(session, subaccount=subaccount, trusted_ca_id=trusted_ca_id)
        user = identity.get_user(session, user_id=body.user_id)
        rule = trust.add_mapping_rule(
            session,
            ctx,
            actor=principal.user_id,
            subaccount=subaccount,
            trusted=trusted,
            subject_dn=body.subject_dn,
            user=user,
        )
        return rule_out(rule, trusted, user)


@router.get(
    f"{SUB}/trusted-cas/{{trusted_ca_id}}/mapping-rules", response_model=Page[MappingRuleOut]
)
def list_mapping_rules(
    subdomain: str,
    trusted_ca_id: str,
    ctx: Ctx,
    principal: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[MappingRuleOut]:
    """The mapping rules under one trusted CA."""
    with authorized(ctx, principal, subdomain, Permission.credentials_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        trusted = trust.get_trusted_ca(session, subaccount=subaccount, trusted_ca_id=trusted_ca_id)
        items = [
            rule_out(r, t, u)
            for r, t, u in trust.list_mapping_rules(session, subaccount=subaccount, trusted=trusted)
        ]
    return paginate(items, key=lambda r: r.rule_id, limit=limit, cursor=cursor)


@router.delete(f"{SUB}/trusted-cas/{{trusted_ca_id}}/mapping-rules/{{rule_id}}", status_code=204)
def delete_mapping_rule(
    subdomain: str, trusted_ca_id: str, rule_id: str, ctx: Ctx, principal: Caller
) -> None:
    """Remove a mapping rule."""
    with authorized(ctx, principal, subdomain, Permission.credentials_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        trusted = trust.get_trusted_ca(session, subaccount=subaccount, trusted_ca_id=trusted_ca_id)
        trust.delete_mapping_rule(
            session,
            ctx,
            actor=principal.user_id,
            subaccount=subaccount,
            rule_id=rule_id,
            trusted=trusted,
        )
