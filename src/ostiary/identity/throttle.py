"""Throttling of failed sign-ins per account name and per client address.

Counts live in a moving window, so a throttled account opens again by itself: an
attacker can slow a user down for one window at most, never lock them out for good.
Unknown account names are counted exactly like known ones, so throttling reveals
nothing about which names exist. Counts are per process (see README).
"""

from __future__ import annotations

import time

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ostiary.errors import Throttled


class SigninThrottle:
    """Refuses attempts once too many failures were seen for an account or an address."""

    def __init__(self, *, per_account: int, per_address: int, window_seconds: int) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._account = RateLimitItemPerSecond(per_account, window_seconds)
        self._address = RateLimitItemPerSecond(per_address, window_seconds)
        self._window = window_seconds
        self._last_failure = -float(window_seconds) - 1.0

    def check(self, *, account: str, address: str) -> None:
        """Raise ``Throttled`` if either the account or the address used up its failures."""
        # No failure within the window: nothing can be throttled, and the hot path (runtime
        # calls with good credentials) skips both moving-window lookups. Wall-clock time,
        # like the limits library's own windows.
        if time.time() - self._last_failure > self._window + 1:
            return
        if not self._limiter.test(self._account, "account", account.lower()) or not (
            self._limiter.test(self._address, "address", address)
        ):
            raise Throttled(
                "too many failed sign-in attempts; try again later", retry_after=self._window
            )

    def failed(self, *, account: str, address: str) -> None:
        """Count one failed attempt against the account and the address."""
        self._last_failure = time.time()
        self._limiter.hit(self._account, "account", account.lower())
        self._limiter.hit(self._address, "address", address)

    def reset(self) -> None:
        """Forget all counts (administrative unlock, tests)."""
        self._limiter.storage.reset()
