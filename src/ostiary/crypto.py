"""Generated secrets, keyed hashes and constant-time comparison.

Generated secrets (tokens, technical-user passwords, client secrets) carry at least
256 bits of entropy, so a keyed HMAC-SHA256 is a safe and fast way to store them:
unlike human-chosen passwords they cannot be guessed from a dictionary.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


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
