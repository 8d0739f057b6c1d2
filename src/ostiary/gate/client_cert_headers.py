"""Client certificates a TLS-terminating proxy forwards in a header: three formats.

Read only from peers in ``OSTIARY_TRUSTED_PROXIES`` and only from the one header
``OSTIARY_CLIENT_CERT_HEADER`` names (``ProxyHeadersMiddleware``): a proxy sets its own
header but passes the others through from the client, so reading any other would let a
client name a certificate. Certificates are public; a header carries no proof of possession.

- ``X-SSL-Client-Cert``: nginx's ``$ssl_client_escaped_cert``, the URL-escaped PEM of the
  leaf (more PEM blocks, leaf first, are read as its chain);
- ``Client-Cert`` (RFC 9440): a structured-field Byte Sequence ``:<base64 DER>:``, with the
  rest of the chain in ``Client-Cert-Chain`` (a list of Byte Sequences) when present;
- ``X-Forwarded-Client-Cert`` (Envoy): elements ``Key=value;…``, one per proxy hop, each
  appended on the right; the rightmost element is the one the proxy next to us added and the
  only one read. Its ``Cert`` is the URL-encoded PEM leaf, ``Chain`` the URL-encoded PEM
  chain (leaf included).

A value that does not parse gives no certificate and a reason (``Forwarded.error``) the gate
can audit; nothing here raises on request data. Every certificate must parse as X.509 DER.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from ostiary.certificates import verification

#: Which header a proxy uses (lower-case names, as in the ASGI scope).
NGINX = b"x-ssl-client-cert"
RFC9440 = b"client-cert"
RFC9440_CHAIN = b"client-cert-chain"
ENVOY = b"x-forwarded-client-cert"

MAX_BYTES = 64 * 1024  # a chain of ten 4 KiB RSA certificates fits several times
MAX_CHAIN = 10
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_WHITESPACE = re.compile(r"\s+")
# RFC 8941 §3.3.5 Byte Sequence, then parameters (§3.1.2), which RFC 9440 defines none of.
_SF_BINARY = re.compile(r":([A-Za-z0-9+/]*={0,2}):((?:;[a-z*][a-z0-9_.*-]*(?:=[^;]*)?)*)")


@dataclass(frozen=True)
class Forwarded:
    """What a client-certificate header said: a chain (DER, leaf first), or why not."""

    chain: tuple[bytes, ...] = ()
    error: str | None = None


class Malformed(ValueError):
    """A header value that is not a certificate in the format its name promises."""


def parse(name: bytes, values: Sequence[bytes], chain_values: Sequence[bytes] = ()) -> Forwarded:
    """The chain in header ``name`` (its ``values``, one per header line); never raises.

    ``chain_values`` are the ``Client-Cert-Chain`` lines, read only with ``Client-Cert``.
    """
    try:
        if sum(len(v) for v in values) + sum(len(v) for v in chain_values) > MAX_BYTES:
            raise Malformed("longer than 64 KiB")
        if len(values) != 1:
            raise Malformed("sent more than once")
        text = values[0].decode("latin-1")
        if name == NGINX:
            chain = _pem_chain(unquote(text, errors="strict"))
        elif name == RFC9440:
            chain = (_sf_binary(text), *_sf_list(b",".join(chain_values).decode("latin-1")))
        elif name == ENVOY:
            chain = _envoy(text)
        else:
            raise Malformed("not a client-certificate header")
        if len(chain) > MAX_CHAIN:
            raise Malformed(f"a chain of more than {MAX_CHAIN} certificates")
        for der in chain:
            _check_der(der)
    except (Malformed, UnicodeDecodeError) as exc:
        return Forwarded(error=f"{name.decode('latin-1')}: {exc}")
    return Forwarded(chain=chain)


def _check_der(der: bytes) -> None:
    try:
        verification.load_der(der)
    except ValueError:
        raise Malformed("not an X.509 certificate") from None


def _pem_chain(text: str) -> tuple[bytes, ...]:
    """The certificates of PEM text, in order; at least one."""
    blocks = _PEM.findall(text)
    if not blocks:
        raise Malformed("no PEM certificate")
    return tuple(_base64(_WHITESPACE.sub("", block)) for block in blocks)


def _base64(text: str) -> bytes:
    if not text:
        raise Malformed("an empty certificate")
    try:
        # Lenient about missing "=" padding (RFC 8941 §3.3.5), strict about the alphabet.
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise Malformed("invalid base64") from None


def _sf_binary(text: str) -> bytes:
    """An RFC 8941 Byte Sequence item (parameters allowed and ignored)."""
    found = _SF_BINARY.fullmatch(text.strip(" \t"))
    if found is None:
        raise Malformed("not a structured-field byte sequence (:base64:)")
    return _base64(found.group(1).rstrip("="))


def _sf_list(text: str) -> tuple[bytes, ...]:
    """An RFC 8941 List of Byte Sequences (``Client-Cert-Chain``); empty text: none."""
    if not text.strip(" \t"):
        return ()
    return tuple(_sf_binary(member) for member in text.split(","))


def _envoy(text: str) -> tuple[bytes, ...]:
    """The chain in the rightmost element of an ``X-Forwarded-Client-Cert`` value."""
    elements = [e for e in _split(text, ",") if e.strip()]
    if not elements:
        raise Malformed("no element")
    pairs: dict[str, str] = {}
    for pair in _split(elements[-1], ";"):
        key, equals, value = pair.strip().partition("=")
        if not equals or not key:
            raise Malformed("an element that is not Key=value;…")
        if value.startswith('"'):
            if len(value) < 2 or not value.endswith('"'):
                raise Malformed("an unterminated quoted value")
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        pairs.setdefault(key.lower(), value)
    cert = pairs.get("cert")
    if cert is None:
        raise Malformed("no Cert in the element our proxy added")
    leaf = _pem_chain(unquote(cert, errors="strict"))
    if len(leaf) != 1:
        raise Malformed("Cert holds more than one certificate")
    rest = _pem_chain(unquote(pairs["chain"], errors="strict")) if "chain" in pairs else ()
    return (leaf[0], *(der for der in rest if der != leaf[0]))


def _split(value: str, separator: str) -> list[str]:
    """``value`` split at ``separator`` outside double-quoted strings."""
    if '"' not in value:
        return value.split(separator)
    parts: list[str] = []
    start, quoted, escaped = 0, False, False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(value[start:index])
            start = index + 1
    if quoted:
        raise Malformed("an unterminated quoted value")
    parts.append(value[start:])
    return parts
