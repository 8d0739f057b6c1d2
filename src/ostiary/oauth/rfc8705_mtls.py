"""OAuth 2.0 Mutual-TLS client authentication and certificate-bound access tokens, RFC 8705.

§2: "the client MUST include the ``client_id`` parameter": the ``client_id`` names the
client, and the TLS client certificate proves it is that client. Two methods:

- ``tls_client_auth`` (§2.1, PKI): "the client is successfully authenticated if the
  certificate that it presented during the handshake matches the expected subject DN (…)
  and the certificate chains to a trusted certificate authority". The trusted CAs are the
  client's sub-account's: its own CA (also a retired one still in its overlap) and the
  external CAs it trusts. Names are compared as normalised RFC 4514 strings
  (§2.1.2: "the expected subject distinguished name … using the string representation
  defined in [RFC4514]"), never as raw text, and only after the chain verified by
  signatures: a forged CA with the right DN text vouches for nothing.
- ``self_signed_tls_client_auth`` (§2.2): "the client is successfully authenticated if the
  certificate that it presented during the handshake matches one of the certificates
  configured or registered for that particular client". The registered certificate is
  pinned by its SHA-256; no chain is built (§2.2: "there is no need to validate the
  certificate's chain").

§3: access tokens bound to the certificate. "The authorization server … associates the
access token with the certificate" by ``cnf: {"x5t#S256": base64url(SHA-256(DER))}``
(§3.1), and "the protected resource MUST obtain … the client certificate used for mutual
TLS and MUST verify that the certificate matches the certificate associated with the
access token" (§3.2), else it refuses with ``invalid_token`` (401).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from cryptography import x509

from ostiary.certificates import verification
from ostiary.certificates.verification import Refused
from ostiary.errors import InvalidClientMetadata, InvalidInput
from ostiary.gate.client_certs import PresentedCertificate
from ostiary.oauth.errors import InvalidClient
from ostiary.oauth.models import AuthMethod

T = TypeVar("T")

#: The confirmation method of RFC 8705 §3.1 (registered in RFC 7800's ``cnf`` registry).
X5T_S256 = "x5t#S256"

#: The metadata of §3.3 and §2.1.1/§2.2.1 (``token_endpoint_auth_methods_supported``).
METHODS = (AuthMethod.tls_client_auth.value, AuthMethod.self_signed_tls_client_auth.value)


# ---------------------------------------------------------------- registration


@dataclass(frozen=True)
class Registration:
    """What a client registers for an mTLS method, checked and normalised."""

    method: AuthMethod
    subject_dn: str | None = None
    certificate_pem: str | None = None
    certificate_fingerprint: str | None = None


def _checked(parse: Callable[[str], T], text: str) -> T:
    """``parse(text)``, its ``InvalidInput`` as the registration's 422."""
    try:
        return parse(text)
    except InvalidInput as exc:
        raise InvalidClientMetadata(exc.detail) from exc


def registration(
    method: AuthMethod | None,
    *,
    subject_dn: str | None,
    certificate_pem: str | None,
    jwks: bool,
    at: datetime,
) -> Registration | None:
    """Check the mTLS fields of a new client; ``None`` for a client of the secret methods.

    §2.1.2: a ``tls_client_auth`` client registers exactly one of the subject parameters;
    Ostiary offers ``tls_client_auth_subject_dn``. §2.2: a ``self_signed_tls_client_auth``
    client registers its certificate (here the PEM itself, not a JWK Set's ``x5c``)."""
    if method is None or not method.mutual_tls:
        if subject_dn is not None or certificate_pem is not None:
            raise InvalidClientMetadata(
                "tls_client_auth_subject_dn and certificate_pem belong to the mutual-TLS "
                "methods: set token_endpoint_auth_method to tls_client_auth or "
                "self_signed_tls_client_auth (a client with a secret has neither)"
            )
        return None
    if jwks:
        raise InvalidClientMetadata(
            f"a {method.value} client authenticates by certificate: no jwks"
        )
    if method is AuthMethod.tls_client_auth:
        if certificate_pem is not None:
            raise InvalidClientMetadata(
                "tls_client_auth registers the subject DN only; certificate_pem is for "
                "self_signed_tls_client_auth"
            )
        if not subject_dn or not subject_dn.strip():
            raise InvalidClientMetadata("tls_client_auth needs tls_client_auth_subject_dn")
        return Registration(method, subject_dn=_checked(verification.normalise_dn, subject_dn))
    if subject_dn is not None:
        raise InvalidClientMetadata(
            "self_signed_tls_client_auth pins certificate_pem; tls_client_auth_subject_dn is "
            "for tls_client_auth"
        )
    if not certificate_pem:
        raise InvalidClientMetadata("self_signed_tls_client_auth needs certificate_pem")
    certs = _checked(verification.parse_pem_certificates, certificate_pem)
    if len(certs) != 1:
        raise InvalidClientMetadata(
            "certificate_pem must hold exactly one certificate (the client's)"
        )
    cert = certs[0]
    refused = verification.client_usage_failure(cert) or verification.validity_failure(cert, at=at)
    if refused is not None:
        raise InvalidClientMetadata(
            f"certificate_pem cannot authenticate a client: {refused.detail}"
        )
    return Registration(
        method,
        certificate_pem=verification.to_pem(cert),
        certificate_fingerprint=verification.fingerprint(cert),
    )


# ---------------------------------------------------------------- client authentication


def _refuse(reason: str) -> InvalidClient:
    return InvalidClient("client authentication failed", reason=reason)


def _parsed(certificate: PresentedCertificate) -> list[x509.Certificate]:
    try:
        return [verification.load_der(der) for der in certificate.chain]
    except ValueError as exc:
        raise _refuse(f"the client certificate does not parse: {exc}") from exc


def _because(refused: Refused) -> InvalidClient:
    return _refuse(f"{refused.reason.value}: {refused.detail}")


def tls_client_auth(
    certificate: PresentedCertificate | None,
    *,
    subject_dn: str,
    anchors: Iterable[x509.Certificate],
    revoked: Callable[[str], bool] = lambda fingerprint: False,
    at: datetime,
) -> None:
    """§2.1: the presented chain verifies up to one of ``anchors`` (the client's
    sub-account's trusted CAs) and its leaf's subject is ``subject_dn`` (normalised RFC
    4514). ``revoked`` says whether a leaf (by fingerprint) was revoked there. Raises
    ``InvalidClient`` with the real reason."""
    if certificate is None:
        raise _refuse("tls_client_auth without a client certificate")
    chain = _parsed(certificate)
    verified = verification.verify_chain(chain, anchors, at=at)
    if isinstance(verified, Refused):
        raise _because(verified)
    if revoked(verification.fingerprint(verified.leaf)):
        raise _refuse("the client certificate is revoked")
    presented_dn = verification.normalise_dn(verified.leaf.subject)
    if presented_dn != subject_dn:
        raise _refuse(f"certificate subject {presented_dn!r} is not the registered {subject_dn!r}")


def self_signed_tls_client_auth(
    certificate: PresentedCertificate | None, *, pinned_fingerprint: str, at: datetime
) -> None:
    """§2.2: the presented leaf is the registered certificate (SHA-256 of its DER), within
    its validity window. Raises ``InvalidClient`` with the real reason."""
    if certificate is None:
        raise _refuse("self_signed_tls_client_auth without a client certificate")
    leaf = _parsed(certificate)[0]
    found = verification.pinned(leaf, {pinned_fingerprint: True}, at=at)
    if found is None:
        raise _refuse("the client certificate is not the one registered for the client")
    if isinstance(found, Refused):
        raise _because(found)


# ---------------------------------------------------------------- bound access tokens


def thumbprint(certificate: PresentedCertificate) -> str:
    """§3.1: ``x5t#S256``, the base64url (unpadded) SHA-256 of the leaf's DER."""
    return base64.urlsafe_b64encode(certificate.thumbprint).rstrip(b"=").decode("ascii")


def confirmation(certificate: PresentedCertificate | None) -> dict[str, str] | None:
    """The ``cnf`` claim binding a token to ``certificate`` (§3.1), ``None`` without one."""
    if certificate is None:
        return None
    return {X5T_S256: thumbprint(certificate)}


def bound_thumbprint(claims: dict[str, Any]) -> str | None:
    """The ``x5t#S256`` a token is bound to; ``None`` for an unbound token. A ``cnf`` that is
    not an object with a string ``x5t#S256`` binds to nothing a certificate can match."""
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    value = cnf.get(X5T_S256) if isinstance(cnf, dict) else None
    return value if isinstance(value, str) else ""


def binding_mismatch(bound: str, certificate: PresentedCertificate | None) -> str | None:
    """§3.2: ``None`` if ``certificate`` is the one the token is bound to, else why not."""
    if certificate is None:
        return "certificate binding mismatch: the token is bound, no client certificate"
    if not hmac.compare_digest(bound.encode(), thumbprint(certificate).encode()):
        return "certificate binding mismatch: another client certificate"
    return None
