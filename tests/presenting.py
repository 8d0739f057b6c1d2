"""Presenting a client certificate through the ASGI TLS extension in in-process tests.

``presenting(app)`` wraps an application the way Ostiary's TLS protocol hook does: the
chain in the ``x-test-client-chain`` header (base64 DER, leaf first, comma-separated) goes
into ``scope["extensions"]["tls"]`` and the header is dropped, so the gate sees exactly
what a direct TLS connection gives it. Real TLS and real nginx are in tests/e2e.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.types import ASGIApp, Receive, Scope, Send

from ostiary.gate.client_certs import extension

HEADER = b"x-test-client-chain"


def presenting(app: ASGIApp) -> ASGIApp:
    """``app`` behind a pretend TLS terminator that takes the chain from ``HEADER``."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            chain = [v for k, v in scope["headers"] if k == HEADER]
            if chain:
                ders = tuple(base64.b64decode(part) for part in chain[0].split(b","))
                scope = {
                    **scope,
                    "headers": [(k, v) for k, v in scope["headers"] if k != HEADER],
                    "extensions": {**scope.get("extensions", {}), "tls": extension(ders, "tls")},
                }
        await app(scope, receive, send)

    return wrapped


def chain_header(certs: Sequence[x509.Certificate | str]) -> dict[str, str]:
    """The header ``presenting`` reads, for certificates or PEM texts (leaf first)."""
    parsed: list[x509.Certificate] = []
    for cert in certs:
        if isinstance(cert, str):
            parsed += x509.load_pem_x509_certificates(cert.encode())
        else:
            parsed.append(cert)
    value = b",".join(base64.b64encode(c.public_bytes(serialization.Encoding.DER)) for c in parsed)
    return {HEADER.decode(): value.decode()}
