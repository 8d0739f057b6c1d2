"""The client certificate a caller presented, wherever TLS ended.

The one place the gate asks "which certificate did this caller present?". The answer is
carried in the request's ASGI scope in the shape of the ASGI TLS extension
(``scope["extensions"]["tls"]["client_cert_chain"]``: PEM strings, leaf first), filled by
whoever terminated TLS:

- ``ostiary serve --tls-certfile … --tls-keyfile …``: Ostiary's own protocol hook, from the
  TLS connection (``ostiary.tls``);
- a trusted reverse proxy: ``ProxyHeadersMiddleware`` (``ostiary.gate.proxies``), from its
  client-certificate header, and only for peers in ``OSTIARY_TRUSTED_PROXIES``.

``source`` says which of the two it was (the ``"ostiary.source"`` key of the extension).
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from typing import Literal

from starlette.types import Scope

Source = Literal["tls", "proxy"]

#: The key under ``scope["extensions"]["tls"]`` that names who filled it.
SOURCE_KEY = "ostiary.source"


@dataclass(frozen=True)
class PresentedCertificate:
    """The certificate chain a caller presented: DER, leaf first."""

    chain: tuple[bytes, ...]
    source: Source

    @property
    def leaf(self) -> bytes:
        """The caller's own certificate (DER)."""
        return self.chain[0]

    @property
    def thumbprint(self) -> bytes:
        """SHA-256 of the leaf's DER: RFC 8705's ``x5t#S256`` before base64url."""
        return hashlib.sha256(self.chain[0]).digest()


#: Where the transport may leave a ready ``PresentedCertificate`` (one per connection),
#: so a keep-alive connection decodes its certificate once, not on every request.
PRESENTED_KEY = "ostiary.presented"


def presented(scope: Scope) -> PresentedCertificate | None:
    """The certificate the caller presented, or ``None`` (none, or no TLS at all)."""
    tls = scope.get("extensions", {}).get("tls")
    if not tls:
        return None
    ready = tls.get(PRESENTED_KEY)
    if isinstance(ready, PresentedCertificate):
        return ready
    pems = tls.get("client_cert_chain") or ()
    if not pems:
        return None
    chain = tuple(ssl.PEM_cert_to_DER_cert(pem) for pem in pems)
    return PresentedCertificate(chain=chain, source=tls.get(SOURCE_KEY, "tls"))
