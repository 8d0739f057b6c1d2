"""What ``ostiary serve`` gives uvicorn when TLS is on, and where the trust anchors come from."""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ostiary.tls.anchors import Anchor, AnchorSource
from ostiary.tls.contexts import ServerContexts
from ostiary.tls.protocol import TLSH11Protocol, TLSHttpToolsProtocol

if TYPE_CHECKING:
    from ostiary.access.snapshot import GrantSnapshot, SnapshotCache

#: This worker's grants snapshot cache, set by ``create_app`` (``use_grants``). The TLS
#: context is built before the application exists, so the anchors look it up lazily.
_grants: SnapshotCache | None = None


def use_grants(cache: SnapshotCache | None) -> None:
    """Let the handshakes of this process trust what ``cache``'s snapshot trusts (the last
    application built in a process wins; ``ostiary serve`` builds one per worker)."""
    global _grants
    _grants = cache


class SnapshotAnchors:
    """The ``AnchorSource`` over the worker's grants snapshot: every sub-account's CA
    certificates, trusted CA bundles and pinned leaf certificates
    (``CertificateModel.tls_anchors``), versioned by the grants version.

    Answers from memory (``SnapshotCache.peek``, never a query: it runs in the event loop on
    every handshake); the anchors are collected once per snapshot. Before the application
    has loaded its first snapshot it trusts nothing, so a certificate is refused then."""

    def __init__(self) -> None:
        self._seen: GrantSnapshot | None = None
        self._answer: tuple[Hashable, Sequence[Anchor]] = ("unloaded", ())

    def __call__(self) -> tuple[Hashable, Sequence[Anchor]]:
        """``(grants version, PEM texts)`` of the current snapshot."""
        cache = _grants
        snapshot = cache.peek() if cache is not None else None
        if snapshot is None:
            return "unloaded", ()
        if snapshot is not self._seen:
            self._answer = (snapshot.version, snapshot.certificates.tls_anchors())
            self._seen = snapshot
        return self._answer


def process_anchors() -> AnchorSource:
    """The anchor source of a worker process: the one place the certificates domain plugs in.

    Called once per worker, when uvicorn builds its SSL context (before the application
    exists); the source it returns is then asked on every handshake and reads the snapshot
    that ``create_app`` hands over through ``use_grants``.
    """
    return SnapshotAnchors()


class ContextFactory:
    """uvicorn's ``ssl_context_factory``: builds ``ServerContexts`` inside each worker.

    Picklable (worker processes are spawned with the config), so it carries paths and a
    module-level function, never a context.
    """

    def __init__(
        self,
        certfile: str | Path,
        keyfile: str | Path | None,
        anchors: Callable[[], AnchorSource] = process_anchors,
    ) -> None:
        self.certfile = str(certfile)
        self.keyfile = None if keyfile is None else str(keyfile)
        self.anchors = anchors

    def contexts(self) -> ServerContexts:
        """Fresh contexts over this process's anchors (fails on unreadable files)."""
        return ServerContexts(self.certfile, self.keyfile, self.anchors())

    def __call__(self, config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        """The listening context for uvicorn."""
        return self.contexts().listening


def protocol_class() -> type[asyncio.Protocol]:
    """The TLS-aware protocol uvicorn's ``auto`` would have chosen: httptools when present."""
    if importlib.util.find_spec("httptools") is not None:
        return TLSHttpToolsProtocol
    return TLSH11Protocol


def uvicorn_options(certfile: Path | None, keyfile: Path | None) -> dict[str, Any]:
    """Extra ``uvicorn.run`` arguments: none for plain HTTP, the TLS set when a certificate is
    given. The files are loaded once here so a bad path fails before any worker starts."""
    if certfile is None:
        return {}
    factory = ContextFactory(certfile, keyfile)
    factory.contexts()
    return {"http": protocol_class(), "ssl_context_factory": factory}
