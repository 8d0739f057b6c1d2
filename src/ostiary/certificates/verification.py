"""Verifying client certificates: pure functions over parsed certificates, no database.

The gate calls these with what its read model holds; the services call them on uploads.
Trust is decided by signatures only: a distinguished name merely picks the candidates
whose signature is then checked (``verify_directly_issued_by``), so a forged CA with the
right DN text vouches for nothing. Expiry, not-yet-valid and CA constraints are checked
on every certificate of the path, the anchor included.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from ostiary.errors import InvalidInput

#: Longest path from a leaf to its anchor (leaf, intermediates, anchor).
MAX_DEPTH = 6
T = TypeVar("T")


class Failure(StrEnum):
    """Why a certificate does not authenticate (the audit trail's reason; callers see 401)."""

    expired = "certificate_expired"
    not_yet_valid = "certificate_not_yet_valid"
    untrusted_chain = "untrusted_chain"
    not_a_client_certificate = "not_a_client_certificate"


@dataclass(frozen=True)
class Verified:
    """A chain that ends, by signatures, at one of the anchors."""

    #: Leaf first, the anchor last.
    path: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        """The client's own certificate."""
        return self.path[0]

    @property
    def anchor(self) -> x509.Certificate:
        """The trusted certificate the path ends at."""
        return self.path[-1]


@dataclass(frozen=True)
class Refused:
    """A chain that does not authenticate, and why."""

    reason: Failure
    detail: str


# ---------------------------------------------------------------- parsing and facts


def fingerprint(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the DER (the pin, and ``x5t#S256`` before base64url)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def serial_hex(cert: x509.Certificate) -> str:
    """The serial number as lower-case hex without separators."""
    return format(cert.serial_number, "x")


def to_pem(cert: x509.Certificate) -> str:
    """The PEM text of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def well_formed(cert: x509.Certificate) -> x509.Certificate:
    """``cert`` once its names and extensions were read; ``ValueError`` if one does not.

    ``cryptography`` parses these lazily: a certificate that loads may still raise on
    ``.extensions`` (``DuplicateExtension``, a malformed extension, which are not
    ``ValueError``), and every check here reads them. Reading them once at the edge turns
    what a caller presents or uploads into a refusal with a reason, never a 500."""
    try:
        _ = cert.subject, cert.issuer, cert.extensions
    except Exception as exc:  # any of cryptography's parse errors: the input is malformed
        raise ValueError(str(exc) or type(exc).__name__) from exc
    return cert


def load_der(der: bytes) -> x509.Certificate:
    """One DER certificate, well formed (``well_formed``); ``ValueError`` otherwise."""
    return well_formed(x509.load_der_x509_certificate(der))


def parse_pem_certificates(
    pem: str | bytes, *, what: str = "certificate_pem"
) -> list[x509.Certificate]:
    """Every certificate in a PEM text, in order; ``InvalidInput`` if there is none or one
    is malformed."""
    data = pem.encode() if isinstance(pem, str) else pem
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise InvalidInput(f"{what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        certs = [well_formed(c) for c in x509.load_pem_x509_certificates(data)]
    except ValueError as exc:
        raise InvalidInput(f"{what} is not a valid PEM certificate: {exc}") from exc
    if not certs:
        raise InvalidInput(f"{what} holds no certificate")
    return certs


def normalise_dn(dn: str | x509.Name) -> str:
    """The RFC 4514 form of a distinguished name, as Ostiary compares and stores them.

    Text may use spaces after the separators (``CN=a, O=b``) or OpenSSL's ``/O=b/CN=a``."""
    if isinstance(dn, str):
        text = dn.strip()
        if text.startswith("/"):
            text = ",".join(reversed([p for p in re.split(r"(?<!\\)/", text) if p]))
        text = re.sub(r"(?<!\\)\s*([,+])\s*", r"\1", text)
        try:
            parsed = x509.Name.from_rfc4514_string(text)
        except ValueError as exc:
            raise InvalidInput(f"not an RFC 4514 distinguished name: {dn!r}") from exc
        if not list(parsed):
            raise InvalidInput("the distinguished name is empty")
        dn = parsed
    return dn.rfc4514_string()


def is_ca(cert: x509.Certificate) -> bool:
    """Whether basic constraints mark the certificate as a CA."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def may_sign_certificates(cert: x509.Certificate) -> bool:
    """A CA whose key usage, if present, allows signing certificates."""
    if not is_ca(cert):
        return False
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return bool(usage.key_cert_sign)


def _path_length(cert: x509.Certificate) -> int | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    except x509.ExtensionNotFound:
        return None


def is_self_signed(cert: x509.Certificate) -> bool:
    """Subject equals issuer and the certificate's own key verifies its signature."""
    return cert.subject == cert.issuer and signed_by(cert, cert)


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key made ``cert``'s signature (and the names chain)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False  # an issuer key of a type we cannot use vouches for nothing
    return True


def validity_failure(cert: x509.Certificate, *, at: datetime) -> Refused | None:
    """``None`` if ``at`` lies in the certificate's validity window, else why not."""
    if at < cert.not_valid_before_utc:
        return Refused(
            Failure.not_yet_valid,
            f"{cert.subject.rfc4514_string()} is valid only from {cert.not_valid_before_utc}",
        )
    if at > cert.not_valid_after_utc:
        return Refused(
            Failure.expired,
            f"{cert.subject.rfc4514_string()} expired at {cert.not_valid_after_utc}",
        )
    return None


def client_usage_failure(leaf: x509.Certificate) -> Refused | None:
    """A CA certificate, or one whose extended key usage excludes client authentication,
    is not a client certificate."""
    if is_ca(leaf):
        return Refused(Failure.not_a_client_certificate, "a CA certificate is not a client's")
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages and (
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages
    ):
        return Refused(
            Failure.not_a_client_certificate, "its extended key usage excludes clientAuth"
        )
    return None


# ---------------------------------------------------------------- the chain walk


def verify_chain(
    chain: Sequence[x509.Certificate],
    anchors: Iterable[x509.Certificate],
    *,
    at: datetime,
) -> Verified | Refused:
    """Walk from ``chain[0]`` (the leaf) through the presented intermediates
    (``chain[1:]``) to one of ``anchors``, checking each signature, CA constraints and
    validity window at ``at``. The leaf itself must not be a CA."""
    if not chain:
        return Refused(Failure.untrusted_chain, "no certificate presented")
    leaf = chain[0]
    refused = client_usage_failure(leaf) or validity_failure(leaf, at=at)
    if refused is not None:
        return refused
    trusted = {fingerprint(a): a for a in anchors}
    # One candidate per DER, anchors first (an anchor the chain repeats is the anchor).
    presented = {fingerprint(c): c for c in chain[1:]}
    pool = [*trusted.items(), *((fp, c) for fp, c in presented.items() if fp not in trusted)]
    found = _Walk(trusted, pool, at=at).walk(((fingerprint(leaf), leaf),))
    if isinstance(found, Verified):
        return found
    return found or Refused(
        Failure.untrusted_chain,
        f"no trusted CA signed {leaf.subject.rfc4514_string()} "
        f"(issuer {leaf.issuer.rfc4514_string()})",
    )


class _Walk:
    """Depth-first over the candidate issuers; the first refusal met on the way is kept
    so an expired CA is reported as such, not as an untrusted chain.

    The caller chooses the intermediates (a proxy's chain header carries ten), so the work
    is bounded: a certificate is expanded again only when reached by a shorter path than
    before (fewer CAs below it can only loosen pathLen constraints), and each signature is
    checked once. Without that, nine CA certificates sharing one subject and one key make
    every ordering a path: 60,480 of them, seconds of CPU for one request."""

    def __init__(
        self,
        trusted: Mapping[str, x509.Certificate],
        pool: Sequence[tuple[str, x509.Certificate]],
        *,
        at: datetime,
    ) -> None:
        self.trusted = trusted
        self.pool = pool
        self.at = at
        self.expanded: dict[str, int] = {}
        self.signatures: dict[tuple[str, str], bool] = {}

    def signed(self, cert: tuple[str, x509.Certificate], by: tuple[str, x509.Certificate]) -> bool:
        key = (cert[0], by[0])
        known = self.signatures.get(key)
        if known is None:
            known = self.signatures[key] = may_sign_certificates(by[1]) and signed_by(
                cert[1], by[1]
            )
        return known

    def walk(self, path: tuple[tuple[str, x509.Certificate], ...]) -> Verified | Refused | None:
        current = path[-1]
        if len(path) > MAX_DEPTH:
            return None
        shortest = self.expanded.get(current[0])
        if shortest is not None and shortest <= len(path):
            return None  # explored already from a path at least this short
        self.expanded[current[0]] = len(path)
        on_path = {fp for fp, _ in path}
        first: Refused | None = None
        for candidate in self.pool:
            fp, cert = candidate
            if fp in on_path or cert.subject != current[1].issuer:
                continue
            if not self.signed(current, candidate):
                continue
            limit = _path_length(cert)
            if limit is not None and len(path) - 1 > limit:
                continue  # more CAs below it than its pathLenConstraint allows
            invalid = validity_failure(cert, at=self.at)
            if invalid is not None:
                first = first or invalid
                continue
            extended = (*path, candidate)
            if fp in self.trusted:
                return Verified(tuple(c for _, c in extended))
            deeper = self.walk(extended)
            if isinstance(deeper, Verified):
                return deeper
            first = first or deeper
        return first


# ---------------------------------------------------------------- pins and mappings


def pinned(leaf: x509.Certificate, pins: Mapping[str, T], *, at: datetime) -> T | Refused | None:
    """The pinned entry whose fingerprint is the leaf's (its window checked), ``None`` if the
    leaf is pinned nowhere."""
    entry = pins.get(fingerprint(leaf))
    if entry is None:
        return None
    return validity_failure(leaf, at=at) or entry


def mapping_key(verified: Verified, anchor_ids: Mapping[str, T]) -> tuple[T, str] | None:
    """``(trusted CA, normalised subject DN)`` under which a mapping rule is looked up:
    the trusted CA is the one whose bundle holds the path's anchor (``anchor_ids`` maps an
    anchor's fingerprint to it)."""
    owner = anchor_ids.get(fingerprint(verified.anchor))
    if owner is None:
        return None
    return owner, normalise_dn(verified.leaf.subject)


def order_ca_bundle(certs: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """A trusted-CA upload, issuing CA first and root last, every link checked by signature.

    One CA certificate alone is accepted as it is; several must form one path ending at a
    self-signed root inside the upload. ``InvalidInput`` says what is wrong otherwise.
    """
    for cert in certs:
        if not may_sign_certificates(cert):
            raise InvalidInput(
                f"{cert.subject.rfc4514_string()} is not a CA certificate "
                "(basicConstraints CA:TRUE with keyCertSign)"
            )
    if len({fingerprint(c) for c in certs}) != len(certs):
        raise InvalidInput("the upload holds the same certificate twice")
    if len(certs) == 1:
        return list(certs)
    roots = [c for c in certs if is_self_signed(c)]
    if len(roots) != 1:
        raise InvalidInput(
            "a chain upload must end at exactly one self-signed root whose signature verifies"
        )
    ordered = [roots[0]]
    rest = [c for c in certs if c is not roots[0]]
    while rest:
        below = [c for c in rest if signed_by(c, ordered[-1])]
        if len(below) != 1:
            names = ", ".join(c.subject.rfc4514_string() for c in rest)
            raise InvalidInput(
                f"the chain does not verify: no single certificate among {names} carries a "
                f"valid signature of {ordered[-1].subject.rfc4514_string()}"
            )
        ordered.append(below[0])
        rest.remove(below[0])
    return list(reversed(ordered))
