"""A cache of recently verified password credentials, so Basic auth with a human-chosen
password does not pay for argon2 on every request.

Keys are keyed hashes of (identifier, password), so the cache holds no password. An entry
only counts while the user's stored hash is still the one it was verified against: a
password change (on any worker) makes every entry for the old password useless at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from ostiary.crypto import KeyedHasher


class VerifiedCredentialCache:
    """LRU of ``hash(identifier, password) -> stored password hash`` with a time to live."""

    def __init__(
        self, hasher: KeyedHasher, *, ttl_seconds: float = 300.0, max_entries: int = 10_000
    ) -> None:
        self._hasher = hasher
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, identifier: str, password: str) -> str:
        """The cache key of a credential pair (a keyed hash; the password is not kept)."""
        return self._hasher.hash(f"{identifier.strip().lower()}\x00{password}")

    def matches(self, key: str, stored_hash: str | None) -> bool:
        """Whether ``key`` was verified against exactly ``stored_hash`` recently."""
        if stored_hash is None:
            return False
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False
            verified_hash, expires = entry
            if expires < time.monotonic():
                del self._entries[key]
                return False
            self._entries.move_to_end(key)
        return verified_hash == stored_hash

    def remember(self, key: str, stored_hash: str) -> None:
        """Record a successful verification."""
        with self._lock:
            self._entries[key] = (stored_hash, time.monotonic() + self._ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
