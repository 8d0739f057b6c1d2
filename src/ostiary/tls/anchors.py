"""The trust anchors the handshake verifies client certificates against: a small port.

Python's ``ssl`` cannot take a client certificate without verifying it, so the server's
``SSLContext`` must already hold every certificate that may vouch for a caller: the
sub-accounts' own CAs, their trusted external CAs, and pinned external leaf certificates.
The certificates domain knows them; the TLS stack only asks an ``AnchorSource``:

    anchors() -> (version, certificates)

``version`` is any hashable value that changes whenever the set changes (a counter, the
newest ``created_at``, a hash); ``certificates`` are PEM strings (one or several
certificates each) or DER bytes. It is called on every TLS handshake, so it must answer
from memory; the certificates are read only when ``version`` differs from the last call.
The handshake only decides whether *some* anchor vouches for the chain; which sub-account
and which technical user it belongs to is the gate's question, asked again per request.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Sequence
from typing import Protocol

#: One anchor: PEM text (one or more certificates) or one certificate's DER bytes.
Anchor = str | bytes


class AnchorSource(Protocol):
    """Answers ``(version, certificates)``; cheap, called once per handshake."""

    def __call__(self) -> tuple[Hashable, Sequence[Anchor]]:
        """The current version of the anchor set and its certificates."""
        ...


def no_anchors() -> tuple[Hashable, Sequence[Anchor]]:
    """The placeholder until the certificates domain is wired in: nothing is trusted, so
    requests without a client certificate work and any presented certificate is refused."""
    return 0, ()


class MemoryAnchors:
    """An in-memory ``AnchorSource`` (tests, and a fixed bundle): add and remove at will."""

    def __init__(self, anchors: Iterable[Anchor] = ()) -> None:
        self._lock = threading.Lock()
        self._anchors: tuple[Anchor, ...] = tuple(anchors)
        self._version = 0

    def __call__(self) -> tuple[Hashable, Sequence[Anchor]]:
        """The current version and anchors (one consistent pair)."""
        with self._lock:
            return self._version, self._anchors

    def add(self, anchor: Anchor) -> None:
        """Trust ``anchor`` from the next handshake on."""
        with self._lock:
            self._anchors = (*self._anchors, anchor)
            self._version += 1

    def remove(self, anchor: Anchor) -> None:
        """Stop trusting ``anchor`` from the next handshake on."""
        with self._lock:
            self._anchors = tuple(a for a in self._anchors if a != anchor)
            self._version += 1
