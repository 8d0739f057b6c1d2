"""Token signing keys: ES256, private keys encrypted at rest, rotation with a grace period.

The private key is encrypted with AES-256-GCM under a key derived (HKDF-SHA256) from
``OSTIARY_SECRET_KEY``. Rotation publishes the new key at once, signs with it only after
the grace period (so every verifier has fetched it), and keeps each old public key in the
JWKS until every token it signed has expired.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ostiary import crypto
from ostiary.clock import Clock
from ostiary.oauth.models import SigningKey

ALGORITHM = "ES256"
# Stateless, so one instance serves every signature (building it per call showed in profiles).
_ES256 = ec.ECDSA(hashes.SHA256())


def encrypt_private(secret_key: bytes, pem: bytes) -> str:
    """``nonce || ciphertext`` of a PEM, base64 (``ostiary.crypto``, signing-key purpose)."""
    return crypto.encrypt_private(secret_key, pem, purpose=crypto.SIGNING_KEYS)


def decrypt_private(secret_key: bytes, blob: str) -> ec.EllipticCurvePrivateKey:
    """The private key from its encrypted form (raises if the secret key is not the one used)."""
    pem = crypto.decrypt_private(secret_key, blob, purpose=crypto.SIGNING_KEYS)
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 thumbprint of an EC JWK, used as its ``kid``."""
    canonical = json.dumps(
        {k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True
    )
    return (
        base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    )


def _new_key(
    session: Session, *, secret_key: bytes, clock: Clock, signs_from: datetime
) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    kid = thumbprint(jwk)
    jwk.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = SigningKey(
        kid=kid,
        alg=ALGORITHM,
        public_jwk=jwk,
        private_key_encrypted=encrypt_private(secret_key, pem),
        created_at=clock.now(),
        signs_from=signs_from,
        published_until=None,
    )
    session.add(key)
    session.flush()
    return key


def ensure_key(session: Session, *, secret_key: bytes, clock: Clock) -> None:
    """Create the first signing key if there is none."""
    if session.get_bind().dialect.name == "postgresql":
        # Two processes starting at once would each make a key; one is enough.
        session.execute(text("SELECT pg_advisory_xact_lock(7407421875)"))
    if session.scalar(select(SigningKey.kid).limit(1)) is None:
        _new_key(session, secret_key=secret_key, clock=clock, signs_from=clock.now())


def rotate(
    session: Session,
    *,
    secret_key: bytes,
    clock: Clock,
    grace: timedelta,
    token_lifetime: timedelta,
) -> SigningKey:
    """Publish a new key now, sign with it after ``grace``; retire the others' publication
    once their last token has expired."""
    now = clock.now()
    new = _new_key(session, secret_key=secret_key, clock=clock, signs_from=now + grace)
    for key in session.scalars(
        select(SigningKey).where(SigningKey.kid != new.kid, SigningKey.published_until.is_(None))
    ):
        key.published_until = new.signs_from + token_lifetime
    return new


def list_keys(session: Session) -> list[SigningKey]:
    """All keys, newest first."""
    return list(session.scalars(select(SigningKey).order_by(SigningKey.created_at.desc())))


class KeyRing:
    """Decrypted private keys of this process, by kid (decrypting costs ~1 ms; signing ~25 µs)."""

    def __init__(self, secret_key: bytes) -> None:
        self._secret_key = secret_key
        self._keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self._public: dict[str, ec.EllipticCurvePublicKey] = {}
        self._lock = threading.Lock()

    def private(self, kid: str, blob: str) -> ec.EllipticCurvePrivateKey:
        """The private key ``kid``."""
        key = self._keys.get(kid)
        if key is None:
            with self._lock:
                key = self._keys.setdefault(kid, decrypt_private(self._secret_key, blob))
        return key

    def sign(self, kid: str, blob: str, data: bytes) -> bytes:
        """The ES256 signature of ``data`` by the private key ``kid``, in the JWS form:
        ``r || s``, 32 big-endian bytes each (RFC 7518 §3.4), not OpenSSL's DER."""
        r, s = decode_dss_signature(self.private(kid, blob).sign(data, _ES256))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def public(self, kid: str, jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
        """The public key ``kid`` from its JWK."""
        key = self._public.get(kid)
        if key is None:
            loaded = ECAlgorithm.from_jwk(json.dumps(jwk))
            assert isinstance(loaded, ec.EllipticCurvePublicKey)
            key = self._public.setdefault(kid, loaded)
        return key
