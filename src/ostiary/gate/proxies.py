"""Trusted proxies: the caller's real address and scheme, believed only from proxies we trust.

Behind a reverse proxy every connection comes from the proxy, so the proxy's address would
be throttled, logged and audited for everyone. ``ProxyHeadersMiddleware`` rewrites
``scope["client"]`` and ``scope["scheme"]`` once, at the outside of the application, so
every reader of ``request.client.host`` (throttling, the message log, the audit trail) and
of ``request.url.scheme`` (``Secure`` cookies) sees the one real value.

The rules:

- Only a peer inside ``OSTIARY_TRUSTED_PROXIES`` is believed; from any other peer the
  forwarding headers are ignored and the client-certificate headers (``X-SSL-Client-Cert``,
  ``Client-Cert``, ``X-Forwarded-Client-Cert``) are removed, so whatever reads them later
  sees them only as set by a trusted proxy. With no trusted proxies the middleware is not
  installed at all: nothing is believed, and nothing may read those headers.
- The address comes from ``X-Forwarded-For`` or, when a request has none, from
  ``Forwarded`` (RFC 7239 §5.2 ``for=``). ``X-Forwarded-For`` wins when both are present:
  nginx, HAProxy, Envoy, Traefik and Caddy append to it and pass a client's own
  ``Forwarded`` through untouched, so preferring ``Forwarded`` would let any client behind a
  default nginx name its own address.
- Each proxy appends the address it received the request from, so the list is walked from
  the right: addresses that are themselves trusted proxies are skipped, the first one that
  is not is the client. Everything left of it was written by the client and is never read.
  Several header lines are joined in order (RFC 9110 §5.3).
- An entry that is no address (garbage, ``unknown``, an obfuscated ``_hidden``, RFC 7239
  §6.3) ends the walk without an answer: it was written by a trusted proxy that did not know
  or would not say, and reading further left would believe the client. The peer's address
  is kept. Empty list elements are skipped. Nothing here raises on request data.
- The client certificate comes only from the one header ``OSTIARY_CLIENT_CERT_HEADER`` names
  (``ostiary.gate.client_cert_headers``: a proxy passes the others through from the client),
  into ``scope["extensions"]["tls"]`` with ``"ostiary.source": "proxy"``; any other
  client-certificate header is named for the audit (``client_certs.ignored_header``). From
  a trusted proxy, a certificate of the TCP connection itself (direct TLS) is the proxy's,
  not the caller's, and is dropped.
- The scheme comes from the rightmost ``X-Forwarded-Proto`` value (set by the proxy next to
  us), else from ``proto=`` of the ``Forwarded`` element that named the client; only
  ``http`` and ``https`` count (``ws``/``wss`` for websockets).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from starlette.types import ASGIApp, Receive, Scope, Send

from ostiary.gate import client_cert_headers
from ostiary.gate.client_certs import (
    CLIENT_CERT_HEADERS,
    IGNORED_KEY,
    PRESENTED_KEY,
    SOURCE_KEY,
    extension,
)

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

__all__ = ["CLIENT_CERT_HEADERS", "ProxyHeadersMiddleware", "TrustedProxies"]

# Peers remembered (every caller's address when Ostiary is reachable directly); past that
# the cache starts over, so a flood of distinct peers costs a parse each, never memory.
_CACHE_SIZE = 4096
# Forwarded certificates remembered: keep-alive callers send the same header again and again.
_CERT_CACHE_SIZE = 256
# "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535" is 54 characters.
_LONGEST_ADDRESS = 64
_WS_SCHEMES = {"http": "ws", "https": "wss"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 §5.6.2
_ESCAPE = re.compile(r"\\(.)")  # a quoted-pair inside a quoted string, RFC 9110 §5.6.4


class TrustedProxies:
    """The trusted networks, parsed once, and a small cache of what entries mean."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self._networks = tuple(networks)
        self._cache: dict[str, tuple[str | None, bool]] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, host: str) -> bool:
        """Whether ``host`` (a peer address as the server reports it) is a trusted proxy."""
        return self.lookup(host)[1]

    def lookup(self, text: str) -> tuple[str | None, bool]:
        """The address ``text`` names, normalised (``None`` if it names none), and whether it
        is a trusted proxy. Cached: parsing costs ~2 µs, and the same proxies and callers
        come again and again."""
        known = self._cache.get(text)
        if known is None:
            address = parse_address(text)
            known = (None, False) if address is None else (str(address), self.contains(address))
            if len(text) <= _LONGEST_ADDRESS:  # longer is never an address: not worth a slot
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                self._cache[text] = known
        return known

    def contains(self, address: Address) -> bool:
        """Whether ``address`` lies in one of the trusted networks."""
        return any(address in network for network in self._networks)


def parse_address(text: str) -> Address | None:
    """An IP address from a header entry or a peer, or ``None``; never raises.

    Accepts ``192.0.2.1``, ``192.0.2.1:4711``, ``2001:db8::1`` and ``[2001:db8::1]:4711``.
    IPv4-mapped IPv6 (``::ffff:192.0.2.1``, what a dual-stack socket reports) becomes IPv4,
    so one caller has one address. Zone IDs (``fe80::1%eth0``) mean nothing beyond the
    proxy's host and are refused.
    """
    text = text.strip()
    if len(text) > _LONGEST_ADDRESS:
        return None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not _is_port(rest)):
            return None
        text = host
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not _is_digits(port):
            return None
    if "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_port(rest: str) -> bool:
    return rest.startswith(":") and _is_digits(rest[1:])


def _is_digits(text: str) -> bool:
    # isdigit() alone takes "²" and other Unicode digits.
    return text.isascii() and text.isdigit()


def client_from_x_forwarded_for(value: str, trusted: TrustedProxies) -> str | None:
    """The client named by an ``X-Forwarded-For`` list: the rightmost entry not trusted."""
    last: str | None = None
    for entry in reversed(value.split(",")):
        entry = entry.strip()
        if not entry:
            continue
        address, is_proxy = trusted.lookup(entry)
        if address is None:
            return None
        if not is_proxy:
            return address
        last = address
    # Every hop is a trusted proxy: the request began at the furthest of them.
    return last


def client_from_forwarded(value: str, trusted: TrustedProxies) -> tuple[str, str | None] | None:
    """The client and its ``proto`` named by a ``Forwarded`` header (RFC 7239 §4, §5.2)."""
    found: tuple[str, str | None] | None = None
    for element in reversed(_forwarded_elements(value)):
        if element is None:
            return None
        node = element.get("for")
        address, is_proxy = trusted.lookup(node) if node is not None else (None, False)
        if address is None:  # no for=, "unknown", "_hidden" or garbage: RFC 7239 §6
            return None
        found = (address, element.get("proto"))
        if not is_proxy:
            return found
    return found


def _forwarded_elements(value: str) -> list[dict[str, str] | None]:
    """The non-empty elements of a ``Forwarded`` value, left to right; ``None`` for an
    element that does not parse."""
    return [_element(e) for e in _split_outside_quotes(value, ",") if e.strip()]


def _element(text: str) -> dict[str, str] | None:
    """One ``Forwarded`` element as lower-cased names and unquoted values (RFC 7239 §4)."""
    pairs: dict[str, str] = {}
    for pair in _split_outside_quotes(text, ";"):
        name, equals, raw = pair.partition("=")
        name, raw = name.strip(), raw.strip()
        if not equals or not _TOKEN.fullmatch(name):
            return None
        if raw.startswith('"'):
            if len(raw) < 2 or not raw.endswith('"'):
                return None
            raw = _ESCAPE.sub(r"\1", raw[1:-1])
        elif not _TOKEN.fullmatch(raw):
            return None
        pairs.setdefault(name.lower(), raw)
    return pairs


def _split_outside_quotes(value: str, separator: str) -> list[str]:
    """``value`` split at ``separator`` where it is not inside a quoted string."""
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
    parts.append(value[start:])
    return parts


class ProxyHeadersMiddleware:
    """Puts the real client address, scheme and client certificate into the scope for requests
    from trusted proxies, and removes client-certificate headers from everyone else's (see
    module doc)."""

    def __init__(
        self, app: ASGIApp, trusted: TrustedProxies, cert_header: bytes | None = None
    ) -> None:
        self.app = app
        self.trusted = trusted
        self.cert_header = cert_header
        self._certificates: dict[tuple[bytes, ...], dict[str, object]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            if client is not None and self.trusted.trusts(client[0]):
                self._believe(scope)
            else:
                headers = scope["headers"]
                found = next((name for name, _ in headers if name in CLIENT_CERT_HEADERS), None)
                if found is not None:
                    scope["headers"] = [h for h in headers if h[0] not in CLIENT_CERT_HEADERS]
                    scope[IGNORED_KEY] = found.decode("latin-1")
        await self.app(scope, receive, send)

    def _believe(self, scope: Scope) -> None:
        xff: list[str] = []
        forwarded: list[str] = []
        protos: list[str] = []
        certificates: list[tuple[bytes, bytes]] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                xff.append(value.decode("latin-1"))
            elif name == b"forwarded":
                forwarded.append(value.decode("latin-1"))
            elif name == b"x-forwarded-proto":
                protos.append(value.decode("latin-1"))
            elif name in CLIENT_CERT_HEADERS:
                certificates.append((name, value))
        host: str | None = None
        proto: str | None = None
        if xff:
            host = client_from_x_forwarded_for(",".join(xff), self.trusted)
        elif forwarded:
            named = client_from_forwarded(",".join(forwarded), self.trusted)
            if named is not None:
                host, proto = named
        if protos:
            proto = next(
                (p.strip() for p in reversed(",".join(protos).split(",")) if p.strip()), proto
            )
        if host is not None:
            scope["client"] = (host, 0)
        if proto is not None:
            proto = proto.lower()
            if proto in _WS_SCHEMES:
                scope["scheme"] = _WS_SCHEMES[proto] if scope["type"] == "websocket" else proto
        # The TCP connection's own certificate is the proxy's: dropped before anything else,
        # so no client-certificate header (believed or not) can leave it standing as the
        # caller's.
        tls = scope.get("extensions", {}).get("tls")
        if tls and tls.get(SOURCE_KEY) == "tls" and tls.get(PRESENTED_KEY) is not None:
            scope["extensions"] = {**scope["extensions"], "tls": extension((), "proxy")}
        if certificates:
            self._forward_certificate(scope, certificates)

    def _forward_certificate(self, scope: Scope, headers: list[tuple[bytes, bytes]]) -> None:
        """The configured header's certificate into the scope; any other one named as ignored."""
        selected = self.cert_header
        chain_header = client_cert_headers.RFC9440_CHAIN if selected == b"client-cert" else None
        values = [v for n, v in headers if n == selected]
        ignored = next((n for n, _ in headers if n != selected and n != chain_header), None)
        if ignored is not None:
            scope[IGNORED_KEY] = ignored.decode("latin-1")
        if selected is None or not values:
            return
        chain = [v for n, v in headers if n == chain_header]
        key = (*values, b"", *chain)
        template = self._certificates.get(key)
        if template is None:
            parsed = client_cert_headers.parse(selected, values, chain)
            template = extension(parsed.chain, "proxy", error=parsed.error)
            if len(self._certificates) >= _CERT_CACHE_SIZE:
                self._certificates.clear()
            self._certificates[key] = template
        # A new dict per request: the template is shared and must not be changed.
        scope["extensions"] = {**scope.get("extensions", {}), "tls": dict(template)}
