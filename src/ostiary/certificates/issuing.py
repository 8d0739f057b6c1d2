"""The sub-account's CA signs client certificates: from a CSR, or for a key it generates.

The subject is taken from the technical user, never from the CSR:
``CN=<user ID>,O=<subdomain>`` (e.g. ``CN=T000001,O=acme-test``). Extensions:
basicConstraints CA:FALSE (critical), keyUsage digitalSignature (+keyEncipherment for RSA,
critical), extendedKeyUsage clientAuth, subject and authority key identifiers, and the CRL
distribution point. Serial numbers are 159 random bits. A generated key leaves only in
the PKCS#12 bundle of the answer, under a generated passphrase; neither is stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.certificates import authority, service
from ostiary.certificates.models import Certificate, CertificateAuthority, CertificateSource
from ostiary.context import AppContext
from ostiary.errors import InvalidInput
from ostiary.identity.models import User
from ostiary.tenancy.models import Subaccount

MIN_VALIDITY_DAYS = 1
MAX_VALIDITY_DAYS = 365
DEFAULT_VALIDITY_DAYS = 365
_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
IssuablePublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate our CA signed, and the chain to send with it (leaf, then the CA)."""

    certificate: Certificate
    chain_pem: str


@dataclass(frozen=True)
class GeneratedCertificate(IssuedCertificate):
    """The same, plus the generated key in a PKCS#12 bundle: both shown exactly once."""

    pkcs12: bytes
    passphrase: str


def client_subject(subaccount: Subaccount, user: User) -> x509.Name:
    """``CN=<user ID>,O=<subdomain>``: what every certificate our CA signs names."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, subaccount.subdomain),
            x509.NameAttribute(NameOID.COMMON_NAME, user.user_id),
        ]
    )


def parse_csr(csr_pem: str) -> x509.CertificateSigningRequest:
    """A PEM CSR whose signature proves possession of its key; ``InvalidInput`` otherwise."""
    data = csr_pem.encode()
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in data:
        raise InvalidInput("csr_pem holds no PEM CSR (-----BEGIN CERTIFICATE REQUEST-----)")
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise InvalidInput(f"csr_pem is not a valid PEM CSR: {exc}") from exc
    try:
        valid = csr.is_signature_valid
    except Exception as exc:  # an unsupported algorithm cannot prove anything either
        raise InvalidInput(f"the CSR's signature cannot be checked: {exc}") from exc
    if not valid:
        raise InvalidInput("the CSR's signature does not verify (no proof of possession)")
    return csr


def check_key(key: object) -> IssuablePublicKey:
    """EC P-256/P-384/P-521, RSA of at least 2048 bits, or Ed25519."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise InvalidInput(f"curve {key.curve.name} is not accepted (P-256, P-384, P-521)")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if not 2048 <= key.key_size <= 8192:
            raise InvalidInput("RSA keys must have 2048 to 8192 bits")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise InvalidInput("only EC (P-256, P-384, P-521), RSA and Ed25519 keys are accepted")


def check_validity_days(days: int) -> None:
    """1 to 365 days."""
    if not MIN_VALIDITY_DAYS <= days <= MAX_VALIDITY_DAYS:
        raise InvalidInput(
            f"validity_days must be between {MIN_VALIDITY_DAYS} and {MAX_VALIDITY_DAYS}"
        )


def _sign(
    ctx: AppContext,
    ca: CertificateAuthority,
    *,
    subaccount: Subaccount,
    user: User,
    public_key: IssuablePublicKey,
    validity_days: int,
) -> x509.Certificate:
    now = ctx.clock.now()
    # Never beyond the CA: a certificate outliving its issuer could not be verified.
    not_after = min(now + timedelta(days=validity_days), ca.not_after)
    ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    rsa_key = isinstance(public_key, rsa.RSAPublicKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(client_subject(subaccount, user))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(now - authority.BACKDATE, ca.not_before))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=rsa_key,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[
                            x509.UniformResourceIdentifier(authority.crl_url(ctx, subaccount, ca))
                        ],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
    )
    return builder.sign(authority.signing_key(ctx, ca), hashes.SHA256())


def _issue(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    user: User,
    public_key: IssuablePublicKey,
    validity_days: int,
    source: CertificateSource,
) -> tuple[Certificate, x509.Certificate, CertificateAuthority]:
    check_validity_days(validity_days)
    service.require_technical_user(session, user=user, subaccount=subaccount)
    ca = authority.ensure_ca(session, ctx, actor=actor, subaccount=subaccount)
    cert = _sign(
        ctx,
        ca,
        subaccount=subaccount,
        user=user,
        public_key=public_key,
        validity_days=validity_days,
    )
    row = service.add_certificate(
        session, ctx, subaccount=subaccount, user=user, cert=cert, source=source, ca_id=ca.id
    )
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.certificate_issued,
        target=row.certificate_id,
        subdomain=subaccount.subdomain,
        after={**service.facts(row, user), "ca": ca.fingerprint_sha256},
    )
    return row, cert, ca


def sign_csr(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    user: User,
    csr_pem: str,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
) -> IssuedCertificate:
    """Sign the CSR's key for ``user`` (the CSR's subject and extensions are ignored)."""
    check_validity_days(validity_days)
    csr = parse_csr(csr_pem)
    row, _, ca = _issue(
        session,
        ctx,
        actor=actor,
        subaccount=subaccount,
        user=user,
        public_key=check_key(csr.public_key()),
        validity_days=validity_days,
        source=CertificateSource.issued,
    )
    return IssuedCertificate(row, row.certificate_pem + ca.certificate_pem)


def generate(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    user: User,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
) -> GeneratedCertificate:
    """Generate a P-256 key, sign it for ``user``, and hand both out once as PKCS#12
    (AES-256 under a generated 192-bit passphrase); the key is not kept."""
    check_validity_days(validity_days)
    key = ec.generate_private_key(ec.SECP256R1())
    row, cert, ca = _issue(
        session,
        ctx,
        actor=actor,
        subaccount=subaccount,
        user=user,
        public_key=key.public_key(),
        validity_days=validity_days,
        source=CertificateSource.generated,
    )
    passphrase = secrets.token_urlsafe(24)
    bundle = pkcs12.serialize_key_and_certificates(
        name=user.user_id.encode(),
        key=key,
        cert=cert,
        cas=[x509.load_pem_x509_certificate(ca.certificate_pem.encode())],
        encryption_algorithm=serialization.BestAvailableEncryption(passphrase.encode()),
    )
    return GeneratedCertificate(
        row, row.certificate_pem + ca.certificate_pem, pkcs12=bundle, passphrase=passphrase
    )


def chain_pem(session: Session, row: Certificate) -> str:
    """The certificate followed by the CA that issued it (just itself when not ours)."""
    if row.ca_id is None:
        return row.certificate_pem
    ca = session.get(CertificateAuthority, row.ca_id)
    return row.certificate_pem + (ca.certificate_pem if ca else "")
