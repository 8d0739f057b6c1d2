"""uvicorn's HTTP protocols with the ASGI TLS extension, which uvicorn 0.54 does not fill.

uvicorn 0.54 builds the request scope in ``HttpToolsProtocol.on_message_begin`` and in
``H11Protocol.handle_events`` and puts no ``extensions`` key into it; nothing in either
protocol reads the peer certificate. These subclasses read it once per connection (in
``connection_made``, which asyncio and uvloop call after the handshake) and add one dict per
request: ``scope["extensions"] = {"tls": <the connection's extension>}``. The extension
itself is shared by the requests of a connection and must not be changed.

Python 3.11 has no API for the verified chain (``get_verified_chain`` arrived in 3.13), so
``client_cert_chain`` holds the leaf alone; the gate builds the chain from its anchors.
They are installed only when TLS is on (``ostiary.tls.serving``): plain HTTP runs uvicorn's
own classes and pays nothing.
"""

from __future__ import annotations

import asyncio
import ssl
from functools import cache
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from ostiary.gate.client_certs import extension
from ostiary.http_protocol import CoalescingHttpToolsProtocol

_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@cache
def _cipher_ids() -> dict[str, int]:
    # OpenSSL's ids are 0x0300XXXX; the low 16 bits are the IANA number the ASGI spec wants.
    ciphers = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).get_ciphers()
    return {c["name"]: c["id"] & 0xFFFF for c in ciphers}


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension of a connection (``None`` if it is not TLS)."""
    connection: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if connection is None:
        return None
    der = connection.getpeercert(binary_form=True)
    cipher = connection.cipher()
    return extension(
        () if der is None else (der,),
        "tls",
        tls_version=_VERSIONS.get(connection.version() or ""),
        cipher_suite=None if cipher is None else _cipher_ids().get(cipher[0]),
    )


class TLSHttpToolsProtocol(CoalescingHttpToolsProtocol):
    """uvicorn's httptools protocol, adding the connection's TLS extension to each request
    (and, like plain HTTP, writing each small answer in one TLS record)."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Read the peer certificate once, then set up as uvicorn does."""
        self._tls = tls_extension(transport)
        super().connection_made(transport)

    def on_message_begin(self) -> None:
        """The scope uvicorn builds, plus ``extensions.tls``."""
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]


class TLSH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, adding the connection's TLS extension to each request."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Read the peer certificate once, then set up as uvicorn does."""
        self._tls = tls_extension(transport)
        super().connection_made(transport)

    def handle_events(self) -> None:
        """uvicorn's event loop step; a request it started gets ``extensions.tls``.

        The application task it created has not run yet (it is scheduled, and this runs
        synchronously in ``data_received``), so the scope is complete before anyone reads it.
        """
        super().handle_events()
        scope: Any = self.scope
        if self._tls is not None and scope is not None and "extensions" not in scope:
            scope["extensions"] = {"tls": self._tls}
