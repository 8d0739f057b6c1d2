"""Chain walks by signature, validity windows, CA constraints, pins, subject mappings and
trusted-CA uploads: the pure functions the gate and the services share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ostiary.certificates import verification as v
from ostiary.errors import InvalidInput
from tests.pki import make, name

NOW = datetime.now(UTC)


def test_a_leaf_under_an_intermediate_verifies_to_the_root_by_signatures() -> None:
    root = make(name("Root"), ca=True, days=3650)
    mid = make(name("Issuing"), issuer=root, ca=True, path_length=0, days=365)
    leaf = make(name("sender"), issuer=mid)
    found = v.verify_chain([leaf.cert, mid.cert], [root.cert], at=NOW)
    assert isinstance(found, v.Verified)
    assert [c.subject for c in found.path] == [
        leaf.cert.subject,
        mid.cert.subject,
        root.cert.subject,
    ]
    # The intermediate alone may be the anchor too.
    assert isinstance(v.verify_chain([leaf.cert], [mid.cert], at=NOW), v.Verified)


def test_a_forged_issuer_with_the_same_dn_text_vouches_for_nothing() -> None:
    root = make(name("Root"), ca=True, days=3650)
    forged = make(
        name("sender"),
        issuer_name=root.cert.subject,
        signing_key=ec.generate_private_key(ec.SECP256R1()),
    )
    found = v.verify_chain([forged.cert], [root.cert], at=NOW)
    assert isinstance(found, v.Refused) and found.reason is v.Failure.untrusted_chain


def test_validity_windows_of_leaf_and_cas_are_checked() -> None:
    root = make(name("Root"), ca=True, days=10)
    leaf = make(name("sender"), issuer=root, days=5)
    expired = v.verify_chain([leaf.cert], [root.cert], at=NOW + timedelta(days=6))
    assert isinstance(expired, v.Refused) and expired.reason is v.Failure.expired
    early = v.verify_chain([leaf.cert], [root.cert], at=NOW - timedelta(days=1))
    assert isinstance(early, v.Refused) and early.reason is v.Failure.not_yet_valid
    old_root = make(name("Old"), ca=True, days=1, not_before=NOW - timedelta(days=5))
    under_old = make(name("sender"), issuer=old_root, days=30, not_before=NOW - timedelta(days=5))
    found = v.verify_chain([under_old.cert], [old_root.cert], at=NOW)
    assert isinstance(found, v.Refused) and found.reason is v.Failure.expired


def test_ca_constraints_are_enforced() -> None:
    root = make(name("Root"), ca=True, days=3650)
    # Signed by a certificate that is no CA: refused although the signature is real.
    not_ca = make(name("Plain"), issuer=root)
    below = make(name("sender"), issuer=not_ca)
    assert isinstance(v.verify_chain([below.cert, not_ca.cert], [root.cert], at=NOW), v.Refused)
    # pathLenConstraint 0 on the root forbids an intermediate under it.
    strict = make(name("Strict"), ca=True, path_length=0, days=3650)
    mid = make(name("Mid"), issuer=strict, ca=True, days=365)
    leaf = make(name("sender"), issuer=mid)
    assert isinstance(v.verify_chain([leaf.cert, mid.cert], [strict.cert], at=NOW), v.Refused)
    # A CA certificate is no client certificate.
    found = v.verify_chain([mid.cert], [strict.cert], at=NOW)
    assert isinstance(found, v.Refused) and found.reason is v.Failure.not_a_client_certificate


def test_pins_match_by_fingerprint_only_and_check_the_window() -> None:
    self_signed = make(name("sender"), days=1)
    twin = make(name("sender"), days=1)  # same DN, other key
    pins = {v.fingerprint(self_signed.cert): "crt-1"}
    assert v.pinned(self_signed.cert, pins, at=NOW) == "crt-1"
    assert v.pinned(twin.cert, pins, at=NOW) is None
    late = v.pinned(self_signed.cert, pins, at=NOW + timedelta(days=2))
    assert isinstance(late, v.Refused) and late.reason is v.Failure.expired


def test_the_mapping_key_is_the_anchors_trusted_ca_and_the_normalised_subject() -> None:
    root = make(name("Root"), ca=True, days=3650)
    leaf = make(name("sender", org="Acme"), issuer=root)
    found = v.verify_chain([leaf.cert], [root.cert], at=NOW)
    assert isinstance(found, v.Verified)
    assert v.mapping_key(found, {v.fingerprint(root.cert): "tca-1"}) == (
        "tca-1",
        "CN=sender,O=Acme",
    )
    assert v.mapping_key(found, {}) is None
    assert v.normalise_dn(" CN=sender, O=Acme ") == "CN=sender,O=Acme"
    assert v.normalise_dn("/O=Acme/CN=sender") == "CN=sender,O=Acme"
    with pytest.raises(InvalidInput):
        v.normalise_dn("not a dn")


def test_trusted_ca_uploads_must_verify_as_one_chain() -> None:
    root = make(name("Root"), ca=True, days=3650)
    mid = make(name("Issuing"), issuer=root, ca=True, days=365)
    assert v.order_ca_bundle([root.cert, mid.cert]) == [mid.cert, root.cert]
    assert v.order_ca_bundle([mid.cert]) == [mid.cert]
    forged_mid = make(
        name("Issuing"),
        ca=True,
        issuer_name=root.cert.subject,
        signing_key=ec.generate_private_key(ec.SECP256R1()),
    )
    with pytest.raises(InvalidInput, match="does not verify"):
        v.order_ca_bundle([forged_mid.cert, root.cert])
    with pytest.raises(InvalidInput, match="not a CA"):
        v.order_ca_bundle([make(name("leaf")).cert])
    with pytest.raises(InvalidInput, match="self-signed root"):
        v.order_ca_bundle([mid.cert, make(name("Other"), issuer=root, ca=True).cert])


def test_pem_parsing_says_what_is_wrong() -> None:
    with pytest.raises(InvalidInput, match="no PEM certificate"):
        v.parse_pem_certificates("hello")
    with pytest.raises(InvalidInput, match="not a valid PEM"):
        v.parse_pem_certificates("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    root = make(name("Root"), ca=True)
    assert v.parse_pem_certificates(root.pem) == [root.cert]
