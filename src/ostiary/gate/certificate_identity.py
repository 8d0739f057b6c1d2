"""Which technical user a presented client certificate names in one sub-account, by the
read model alone (issue 10, point 4).

Two ways a certificate names a user:

- **pinned**: its SHA-256 fingerprint is registered in the sub-account (issued or generated
  by the sub-account's CA, or an uploaded external certificate), active, and valid now;
- **mapped**: the chain verifies by signatures (``certificates.verification.verify_chain``)
  up to a CA the sub-account trusts, and a mapping rule names a technical user for
  ``(trusted CA, subject DN)``. The first use of such a certificate is recorded by the
  certificates domain (``trust.record_mapped_use``), which may find it superseded.

The transport checks no validity dates (``ostiary.tls.contexts``): they are checked here.
Successful identifications are cached per (chain, sub-account) for one snapshot and the
time window in which the answer holds, so a keep-alive sender costs a dict lookup.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cryptography import x509

from ostiary.access.certificate_facts import CertificateFacts
from ostiary.access.snapshot import GrantSnapshot
from ostiary.certificates import verification
from ostiary.gate.client_certs import PresentedCertificate

#: Cached identifications at most (a sender's connection presents the same chain again).
CACHE_SIZE = 4096


class CertificateFailure(StrEnum):
    """Why a certificate does not authenticate: the first word of the audit reason (the
    caller sees the same 401 as for every other failure)."""

    unknown = "unknown_certificate"
    expired = "certificate_expired"
    not_yet_valid = "certificate_not_yet_valid"
    revoked = "certificate_revoked"
    superseded = "certificate_superseded"
    wrong_subaccount = "wrong_subaccount"
    untrusted_chain = "untrusted_chain"
    not_a_client_certificate = "not_a_client_certificate"
    unparseable = "unparseable_certificate"
    untrusted_peer_header = "untrusted_peer_header"
    user = "certificate_user"


@dataclass(frozen=True)
class Identified:
    """The certificate names ``user_id``. ``certificate`` is its registration (``None`` for
    a mapped certificate not yet seen: ``first_use`` then carries what recording it needs)."""

    user_id: str
    certificate: CertificateFacts | None
    first_use: FirstUse | None = None


@dataclass(frozen=True)
class FirstUse:
    """A mapped certificate seen for the first time: the domain records it (and decides
    whether an older or newer one supersedes)."""

    subdomain: str
    trusted_ca_id: str
    leaf: x509.Certificate


@dataclass(frozen=True)
class NotIdentified:
    """Why not, for the audit trail."""

    failure: CertificateFailure
    detail: str
    #: The technical user the certificate is registered to, when one is known.
    user_id: str | None = None

    @property
    def reason(self) -> str:
        """``<failure>: <detail>``, as the audit trail records it."""
        return f"{self.failure.value}: {self.detail}"


@dataclass(frozen=True)
class _Entry:
    snapshot: GrantSnapshot
    identified: Identified
    valid_from: datetime
    valid_until: datetime


_cache: dict[tuple[tuple[bytes, ...], str], _Entry] = {}
_lock = threading.Lock()


def identify(
    snapshot: GrantSnapshot, presented: PresentedCertificate, *, subdomain: str, at: datetime
) -> Identified | NotIdentified:
    """The technical user ``presented`` names in ``subdomain`` at ``at``, per ``snapshot``."""
    key = (presented.chain, subdomain)
    entry = _cache.get(key)
    if (
        entry is not None
        and entry.snapshot is snapshot
        and entry.valid_from <= at <= entry.valid_until
    ):
        return entry.identified
    try:
        chain = [verification.load_der(der) for der in presented.chain]
    except ValueError as exc:
        return NotIdentified(
            CertificateFailure.unparseable, f"the certificate does not parse: {exc}"
        )
    found = _identify(snapshot, chain, presented.thumbprint.hex(), subdomain, at)
    if isinstance(found, tuple):
        identified, valid_from, valid_until = found
        if identified.first_use is None:
            with _lock:
                if len(_cache) >= CACHE_SIZE:
                    _cache.clear()
                _cache[key] = _Entry(snapshot, identified, valid_from, valid_until)
        return identified
    return found


def _identify(
    snapshot: GrantSnapshot,
    chain: list[x509.Certificate],
    fp: str,
    subdomain: str,
    at: datetime,
) -> tuple[Identified, datetime, datetime] | NotIdentified:
    model = snapshot.certificates
    leaf = chain[0]
    known = model.certificate(fp, subdomain)
    if known is not None:
        if known.status == "revoked":
            return NotIdentified(
                CertificateFailure.revoked, f"{known.certificate_id} is revoked", known.user_id
            )
        if known.status == "superseded":
            return NotIdentified(
                CertificateFailure.superseded,
                f"{known.certificate_id} was superseded by a newer certificate",
                known.user_id,
            )
        if known.pinned:
            window = verification.validity_failure(leaf, at=at)
            if window is not None:
                return _refused(window, f"{known.certificate_id}: {window.detail}", known.user_id)
            return (
                Identified(known.user_id, known),
                leaf.not_valid_before_utc,
                leaf.not_valid_after_utc,
            )
    trust = model.trust.get(subdomain)
    anchors = (*trust.ca_anchors(at=at), *trust.external_anchors()) if trust else ()
    verified = verification.verify_chain(chain, anchors, at=at)
    if isinstance(verified, verification.Refused):
        elsewhere = model.elsewhere(fp, subdomain)
        if elsewhere and known is None:
            return NotIdentified(
                CertificateFailure.wrong_subaccount,
                f"{elsewhere[0].certificate_id} belongs to sub-account "
                f"{elsewhere[0].subdomain}, not {subdomain}",
                elsewhere[0].user_id,
            )
        if verified.reason is verification.Failure.untrusted_chain and (
            len(chain) == 1 and leaf.subject == leaf.issuer
        ):
            return NotIdentified(
                CertificateFailure.unknown,
                f"{leaf.subject.rfc4514_string()} (SHA-256 {fp}) is not registered in {subdomain}",
            )
        detail = verified.detail
        return _refused(verified, detail, known.user_id if known else None)
    assert trust is not None
    mapping = verification.mapping_key(verified, trust.anchor_owners)
    user_id = trust.mappings.get(mapping) if mapping is not None else None
    if mapping is None or user_id is None:
        return NotIdentified(
            CertificateFailure.unknown,
            f"no mapping rule in {subdomain} for subject {verification.normalise_dn(leaf.subject)}"
            + (f" under {mapping[0]}" if mapping else " (our CA issued no such certificate)"),
        )
    valid_from = max(c.not_valid_before_utc for c in verified.path)
    valid_until = min(c.not_valid_after_utc for c in verified.path)
    if known is not None:  # mapped, active, and its rule still holds
        if known.user_id != user_id:
            # The rule now names another user: let the domain move the registration.
            return Identified(user_id, None, FirstUse(subdomain, mapping[0], leaf)), at, at
        return Identified(user_id, known), valid_from, valid_until
    return Identified(user_id, None, FirstUse(subdomain, mapping[0], leaf)), at, at


def _refused(refused: verification.Refused, detail: str, user_id: str | None) -> NotIdentified:
    failure = {
        verification.Failure.expired: CertificateFailure.expired,
        verification.Failure.not_yet_valid: CertificateFailure.not_yet_valid,
        verification.Failure.untrusted_chain: CertificateFailure.untrusted_chain,
        verification.Failure.not_a_client_certificate: CertificateFailure.not_a_client_certificate,
    }[refused.reason]
    return NotIdentified(failure, detail, user_id)


def clear_cache() -> None:
    """Forget every cached identification (tests)."""
    with _lock:
        _cache.clear()
