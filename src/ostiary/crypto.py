"""Generated secrets, keyed hashes, constant-time comparison, private keys sealed at rest.

Generated secrets (tokens, technical-user passwords, client secrets) carry at least
256 bits of entropy, so a keyed HMAC-SHA256 is a safe and fast way to store them:
unlike human-chosen passwords they cannot be guessed from a dictionary.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def generate_secret(nbytes: int = 32) -> str:
    """A URL-safe random secret of ``nbytes`` bytes (default 256 bits)."""
    return secrets.token_urlsafe(nbytes)


class KeyedHasher:
    """HMAC-SHA256 under a key derived from the installation secret for one purpose."""

    def __init__(self, secret_key: bytes, purpose: str) -> None:
        self._key = hmac.new(secret_key, b"ostiary:" + purpose.encode(), hashlib.sha256).digest()

    def hash(self, value: str) -> str:
        """The hex digest of ``value``."""
        return hmac.digest(self._key, value.encode(), "sha256").hex()  # one C call

    def verify(self, value: str, digest: str) -> bool:
        """Whether ``value`` hashes to ``digest``, compared in constant time."""
        return hmac.compare_digest(self.hash(value), digest)


def constant_time_equals(left: str, right: str) -> bool:
    """Compare two strings without leaking where they differ."""
    return hmac.compare_digest(left.encode(), right.encode())


_RANDOM = bytearray()
_RANDOM_LOCK = threading.Lock()


def _after_fork() -> None:
    """A forked worker must not hand out its parent's bytes, nor inherit a held lock."""
    global _RANDOM_LOCK
    _RANDOM.clear()
    _RANDOM_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def random_bytes(count: int) -> bytes:
    """``count`` bytes from ``os.urandom``, fetched 4 KiB at a time (for IDs on hot paths).

    One ``getrandom`` call per request releases the GIL, and the event loop then waited to
    get it back from the writer thread (py-spy: ~5 % of the runtime loop's time, ~2 % of the
    token endpoint's)."""
    with _RANDOM_LOCK:
        if len(_RANDOM) < count:
            _RANDOM.extend(os.urandom(max(4096, count)))
        taken = bytes(_RANDOM[:count])
        del _RANDOM[:count]
    return taken


# ---------------------------------------------------------------- private keys at rest

#: HKDF salts, one per kind of key, so a blob of one kind never opens as another.
SIGNING_KEYS = b"ostiary-signing-keys"
CA_KEYS = b"ostiary-ca-keys"


def _wrapping_key(secret_key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=purpose, info=b"aes-256-gcm").derive(
        secret_key
    )


def encrypt_private(secret_key: bytes, pem: bytes, *, purpose: bytes) -> str:
    """``nonce || ciphertext`` of a private key's PEM under AES-256-GCM, base64; the key is
    derived (HKDF-SHA256) from the installation secret and ``purpose``."""
    nonce = os.urandom(12)
    return base64.b64encode(
        nonce + AESGCM(_wrapping_key(secret_key, purpose)).encrypt(nonce, pem, None)
    ).decode()


def decrypt_private(secret_key: bytes, blob: str, *, purpose: bytes) -> bytes:
    """The PEM sealed by ``encrypt_private`` (raises if the secret key or purpose differ)."""
    raw = base64.b64decode(blob)
    return AESGCM(_wrapping_key(secret_key, purpose)).decrypt(raw[:12], raw[12:], None)
