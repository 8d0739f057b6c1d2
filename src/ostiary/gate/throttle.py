"""Throttling of failed authentications, typed by account and shared by every worker and node.

Keys are typed: an ``Account`` is a ``(kind, id)`` pair, never a name in a shared string
namespace, so a console sign-in with the identifier ``client:oc-…`` counts against a name
that belongs to nobody, not against the OAuth client ``oc-…``.

Policy (every number is a setting; README's configuration table lists them). Failures count
in a moving window of ``OSTIARY_SIGNIN_WINDOW_SECONDS`` (900), so throttling always ends by
itself, and ``Retry-After`` is the time until the oldest counted failure leaves it.

* **Human-chosen passwords** (kinds ``person`` and ``unknown``). Guessing is feasible, so
  an attempt is refused *before* verification (which also spares the slow argon2) once the
  failures in the window reach:

  - 10 for the account from this address (``OSTIARY_SIGNIN_FAILURES_PER_ACCOUNT``): a
    guesser at one address cannot lock the owner out from another;
  - 100 for the account from all addresses together
    (``OSTIARY_SIGNIN_FAILURES_PER_ACCOUNT_CEILING``): distributed guessing gets at most
    100 guesses per window (9,600 a day), and only then does the owner wait too;
  - 100 for the address over all accounts (``OSTIARY_SIGNIN_FAILURES_PER_ADDRESS``):
    one address spraying a common password over many accounts.

  ``clear`` forgets an account's failures after a password reset, so the reset mail always
  gets the owner back in.

* **Machine credentials** (kinds ``technical`` and ``client``: generated secrets, client
  secrets, client assertions, certificates, bearer tokens). A 256-bit secret cannot be
  guessed and checking one is a keyed hash (microseconds), so nothing is refused before
  verification and a correct credential is always admitted, whatever anyone else did. Only
  a *failure* from an address that already has 100 machine-credential failures in the
  window (``OSTIARY_AUTH_FAILURES_PER_ADDRESS``) is answered 429 instead of 401, to limit
  load. Human and machine failures are counted apart per address, so a broken integration
  behind a shared NAT does not stop the people behind it from signing in.

Unknown identifiers count exactly like known ones of the kind their syntax says (callers
pass the ``Account``; ``unknown_account`` is the rule used today). A failure the throttle
refused is not counted again, so one address writes at most its limit of rows per window.

Sharing: only failures write, and the success path makes no query. Each failure counts in
this process at once and goes to ``auth_failures`` through the small writer thread of
``ostiary.gate.failure_log`` (best effort: one that cannot be stored is logged and still
counts here). A poller reads every 0.2 s (less often under a flood) which keys are at or
over a limit in the whole installation, in one grouped query, so other processes follow
within a write and a poll. Below a limit a process counts only its own failures: counts of
several processes add up once their sum reaches the limit in the database.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ostiary.clock import Clock
from ostiary.db import WriteGate
from ostiary.errors import Throttled
from ostiary.gate.failure_log import FailureLog, Polled, cleanup
from ostiary.gate.keys import (
    Account,
    Address,
    Failure,
    Key,
    Kind,
    Limits,
    Pair,
    Tally,
    clean,
    unknown_account,
)
from ostiary.gate.models import ADDRESS_LENGTH, AuthFailure, AuthFailureClear

__all__ = ["Account", "Kind", "Limits", "Throttle", "cleanup", "unknown_account"]

#: Failures this process keeps counted locally at most: a flood from very many addresses
#: must not grow memory without bound. Dropping the oldest forgets only this process's own
#: failures below a limit; the database still has them.
MAX_LOCAL = 100_000


class Throttle:
    """Decides from memory whether a credential may be tried, or a failure gets 429."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session],
        clock: Clock,
        limits: Limits,
        gate: WriteGate | None = None,
        interval: float = 0.2,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._log = FailureLog(
            sessions=sessions,
            read_sessions=read_sessions,
            clock=clock,
            limits=limits,
            on_poll=self._polled,
            gate=gate,
            interval=interval,
        )
        self._tallies: dict[Key, Tally] = {}  # replaced whole by each poll
        self._local: dict[Key, deque[Failure]] = {}
        self._order: deque[Failure] = deque()  # the same failures, oldest first
        # Accounts cleared within the window, and when: a poll that read just before a
        # clear committed hands over counts the clear removed; they are dropped from every
        # poll, not only from the one that reported the clear.
        self._cleared: dict[Account, datetime] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the writer and poller threads (after one first poll, if it works)."""
        self._log.start()

    def stop(self) -> None:
        """Write what is queued, then stop both threads."""
        self._log.stop()

    def refresh(self) -> None:
        """Poll now, in this thread (tests; the poller does the same every interval)."""
        self._log.poll()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every failure counted so far is written (or given up on)."""
        return self._log.flush(timeout)

    # ------------------------------------------------------------ decisions

    def quiet(self) -> bool:
        """Whether no failure is counted anywhere now: nothing can be refused, and callers
        may skip building keys on the hot path."""
        return not (self._tallies or self._local)

    def check(self, account: Account, address: str) -> None:
        """Before verifying a human-chosen password: raise ``Throttled`` if it may not be
        tried now. Machine credentials are never refused here. Reads memory only."""
        if not account.human or not (self._tallies or self._local):
            return
        address = clean(address, ADDRESS_LENGTH)
        limits = self.limits
        wait = self._over(
            (
                (Pair(account, address), limits.per_account_address),
                (account, limits.per_account),
                (Address(True, address), limits.per_address),
            )
        )
        if wait:
            raise Throttled("too many failed sign-in attempts; try again later", retry_after=wait)

    def failed(self, account: Account, address: str) -> Throttled | None:
        """Count a failed authentication. For a machine credential from an address at its
        limit, return the ``Throttled`` to answer instead of 401 (and count nothing)."""
        address = clean(address, ADDRESS_LENGTH)
        keys: tuple[Key, ...]
        if account.human:
            keys = (Pair(account, address), account, Address(True, address))
        else:
            keys = (Address(False, address),)
            wait = self._over(((keys[0], self.limits.machine_per_address),))
            if wait:
                return Throttled(
                    "too many failed authentications from this address; try again later",
                    retry_after=wait,
                )
        failure = Failure(account, address, self._clock.now(), keys)
        with self._lock:
            self._order.append(failure)
            for key in keys:
                self._local.setdefault(key, deque()).append(failure)
            while len(self._order) > MAX_LOCAL:
                self._forget(self._order[0])
        self._log.queue(failure)
        return None

    def clear(self, session: Session, account: Account) -> None:
        """Forget the account's failures, in the caller's transaction (after a password
        reset); other processes forget the ones they counted at their next poll."""
        now = self._clock.now()
        session.execute(
            delete(AuthFailure).where(
                AuthFailure.kind == account.kind, AuthFailure.account == account.id
            )
        )
        marked = session.execute(
            update(AuthFailureClear)
            .where(AuthFailureClear.kind == account.kind, AuthFailureClear.account == account.id)
            .values(at=now)
        )
        if not getattr(marked, "rowcount", 0):
            try:
                with session.begin_nested():
                    session.execute(
                        insert(AuthFailureClear).values(
                            kind=account.kind, account=account.id, at=now
                        )
                    )
            except IntegrityError:
                pass  # a concurrent clear of the same account marked it just now
        with self._lock:
            self._clear([(account, now)])

    # ------------------------------------------------------------ counting

    def _over(self, limited: Iterable[tuple[Key, int]]) -> int:
        """Seconds until every key is under its limit again (0: none is at it)."""
        now = self._clock.now()
        window = self.limits.window
        start = now - window
        wait = 0
        with self._lock:
            tallies = self._tallies
            for key, limit in limited:
                entries = [f for f in self._local.get(key, ()) if f.at > start]
                tally = tallies.get(key)
                if tally is not None and tally.newest > start:
                    # The shared count includes every failure of ours a poll has seen.
                    fresh = [f.at for f in entries if not f.polled]
                    count, oldest = tally.count + len(fresh), min([tally.oldest, *fresh])
                else:
                    # Under every limit elsewhere (or not polled yet): our own count.
                    count, oldest = len(entries), min((f.at for f in entries), default=now)
                if count >= limit:
                    seconds = (oldest + window - now).total_seconds()
                    wait = max(wait, 1, math.ceil(seconds))
        return wait

    def _polled(self, polled: Polled) -> None:
        """Take a poll's counts: mark the failures they include, forget failures that left
        the window and the ones other processes cleared."""
        with self._lock:
            for failure in polled.seen:
                failure.polled = True
            self._tallies = polled.over
            start = polled.now - self.limits.window
            while self._order and self._order[0].at <= start:
                self._forget(self._order[0])
            self._cleared = {a: at for a, at in self._cleared.items() if at > start}
            self._clear(polled.clears)

    def _clear(self, clears: Iterable[tuple[Account, datetime]]) -> None:
        """Forget accounts' failures up to the time they were cleared, and drop the shared
        counts every clear in the window removed (lock held)."""
        cleared = self._cleared
        for account, at in clears:
            if account in cleared and cleared[account] >= at:
                continue  # this process already forgot up to then
            cleared[account] = at
            for failure in [f for f in self._order if f.account == account and f.at <= at]:
                failure.forgotten = True
                self._forget(failure)
        if not cleared:
            return

        def gone(key: Key, tally: Tally) -> bool:
            # A shared count newer than the clear holds failures made after it (the
            # clearing transaction deleted the older rows): it still counts.
            account = key.account if isinstance(key, Pair) else key
            at = cleared.get(account) if isinstance(account, Account) else None
            return at is not None and tally.newest <= at

        self._tallies = {k: t for k, t in self._tallies.items() if not gone(k, t)}

    def _forget(self, failure: Failure) -> None:
        """Drop one failure from the local counts (lock held)."""
        if self._order and self._order[0] is failure:
            self._order.popleft()
        else:
            self._order.remove(failure)
        for key in failure.keys:
            entries = self._local.get(key)
            if entries is None:
                continue
            if entries[0] is failure:
                entries.popleft()
            else:
                entries.remove(failure)
            if not entries:
                del self._local[key]
