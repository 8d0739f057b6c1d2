"""Human-chosen passwords: argon2id hashing off the event loop, and the common-password list."""

from __future__ import annotations

import threading
from functools import cache

import anyio
import anyio.to_thread
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    """argon2id with OWASP's parameters by default (m = 19 MiB, t = 2, p = 1).

    Hashing costs tens of milliseconds and lots of memory, so at most ``concurrency``
    hashes run at once (a semaphore), and async callers run them in a worker thread.
    """

    def __init__(
        self,
        *,
        memory_kib: int = 19 * 1024,
        time_cost: int = 2,
        parallelism: int = 1,
        concurrency: int = 4,
    ) -> None:
        self._hasher = Argon2Hasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._gate = threading.BoundedSemaphore(concurrency)
        self._limiter = anyio.CapacityLimiter(concurrency)
        # A hash to verify against when the user is unknown, so both paths cost the same.
        self._dummy = self._hasher.hash("ostiary-timing-equaliser")

    def hash(self, password: str) -> str:
        """The argon2id hash of ``password``."""
        with self._gate:
            return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; an absent hash costs as much as a wrong one."""
        with self._gate:
            try:
                return self._hasher.verify(stored or self._dummy, password) and stored is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    async def averify(self, stored: str | None, password: str) -> bool:
        """``verify`` in a worker thread, never on the event loop."""
        return await anyio.to_thread.run_sync(self.verify, stored, password, limiter=self._limiter)

    async def ahash(self, password: str) -> str:
        """``hash`` in a worker thread, never on the event loop."""
        return await anyio.to_thread.run_sync(self.hash, password, limiter=self._limiter)


@cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords, as shipped with zxcvbn."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def is_common(password: str) -> bool:
    """Whether the password (case-insensitively) is on the common-password list."""
    return password.lower() in common_passwords()
