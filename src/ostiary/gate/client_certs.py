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

Two more answers for the audit log: ``certificate_error(scope)`` (a trusted proxy sent a
client-certificate header that did not parse: no certificate, and this reason) and
``ignored_header(scope)`` (a client-certificate header that was not believed: from a peer
outside ``OSTIARY_TRUSTED_PROXIES``, with no trusted proxies at all, or not the header
``OSTIARY_CLIENT_CERT_HEADER`` names).
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from typing import Any, Literal

from starlette.types import Scope

Source = Literal["tls", "proxy"]

#: The key under ``scope["extensions"]["tls"]`` that names who filled it.
SOURCE_KEY = "ostiary.source"

#: Client-certificate headers a TLS-terminating proxy sets; believed only from trusted peers.
CLIENT_CERT_HEADERS = frozenset(
    {b"x-ssl-client-cert", b"client-cert", b"client-cert-chain", b"x-forwarded-client-cert"}
)

#: The scope key where ``ProxyHeadersMiddleware`` names a client-certificate header it did
#: not believe (and, for untrusted peers, removed).
IGNORED_KEY = "ostiary.ignored_client_cert_header"


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


def extension(
    chain: tuple[bytes, ...],
    source: Source,
    *,
    error: str | None = None,
    tls_version: int | None = None,
    cipher_suite: int | None = None,
) -> dict[str, Any]:
    """``scope["extensions"]["tls"]`` for a presented ``chain`` (DER, leaf first; may be
    empty), with the ready ``PresentedCertificate``: the one shape both transports fill."""
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der) for der in chain],
        "client_cert_name": None,  # the gate reads the subject from the certificate itself
        "client_cert_error": error,
        "tls_version": tls_version,
        "cipher_suite": cipher_suite,
        SOURCE_KEY: source,
        PRESENTED_KEY: PresentedCertificate(chain=chain, source=source) if chain else None,
    }


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


def certificate_error(scope: Scope) -> str | None:
    """Why a certificate header from a trusted proxy gave no certificate, or ``None``."""
    tls = scope.get("extensions", {}).get("tls")
    if not tls:
        return None
    error: str | None = tls.get("client_cert_error")
    return error


def ignored_header(scope: Scope) -> str | None:
    """The client-certificate header (lower-case name) that was present but not believed.

    Set by ``ProxyHeadersMiddleware`` when it removed or passed over one; without the
    middleware (no trusted proxies) the raw header is still in the scope and found here.
    A header the middleware believed (``"ostiary.source": "proxy"``) is not ignored.
    """
    named: str | None = scope.get(IGNORED_KEY)
    if named is not None:
        return named
    tls = scope.get("extensions", {}).get("tls")
    if tls and tls.get(SOURCE_KEY) == "proxy":
        return None
    for name, _ in scope.get("headers", ()):
        if name in CLIENT_CERT_HEADERS:
            return str(name.decode("latin-1"))
    return None
