"""What ``ostiary serve`` gives uvicorn when TLS is on, and where the trust anchors come from."""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ostiary.tls.anchors import AnchorSource, no_anchors
from ostiary.tls.contexts import ServerContexts
from ostiary.tls.protocol import TLSH11Protocol, TLSHttpToolsProtocol


def process_anchors() -> AnchorSource:
    """The anchor source of a worker process: the one place the certificates domain plugs in.

    Called once per worker, when uvicorn builds its SSL context (before the application
    exists); the source it returns is then asked on every handshake.
    """
    return no_anchors


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
