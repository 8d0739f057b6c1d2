"""Server ``SSLContext`` objects that follow the trust anchors without a restart.

The listening socket keeps one ``SSLContext`` for its lifetime, and a context's trust store
can only grow (``load_verify_locations``), never shrink. So each anchor set gets its own
context, and the listening context's ``sni_callback`` (OpenSSL's servername callback: it runs
on every ClientHello, with or without a server name, before the client's certificate is
verified) moves the handshake onto the current one with ``sslobj.context = current``. OpenSSL
then verifies the client's chain against the current context's store. README, *Serving TLS
directly*, records the experiment that shows the callback fires without SNI.

Every context:

- TLS 1.2 or newer, HTTP/1.1 over ALPN;
- asks for a client certificate but does not require one (``CERT_OPTIONAL``): a request
  without a certificate goes on to the gate like any other;
- ``VERIFY_X509_PARTIAL_CHAIN``: any certificate in the store is an anchor, so a pinned
  external leaf (not a CA, perhaps issued by a CA we never saw) is accepted as itself;
- ``X509_V_FLAG_NO_CHECK_TIME``: validity periods are not checked in the handshake, so an
  expired or not-yet-valid certificate reaches the gate, which refuses it with the real
  reason in the audit log and the same 401 as every other failure (issue 10, point 4).
  The gate checks the validity window of every chain; nothing else may trust a chain
  from ``presented()`` without that check.

What the handshake still refuses, because Python's ``ssl`` has no verify callback: a chain
that no anchor vouches for (alert ``unknown_ca``), a broken signature, a certificate whose
key usage forbids client authentication.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Hashable, Sequence
from pathlib import Path

from ostiary.tls.anchors import Anchor, AnchorSource

log = logging.getLogger(__name__)

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME; Python's ssl.VerifyFlags does not name it, but the
# verify_flags setter passes the bits to X509_VERIFY_PARAM_set_flags unchanged.
NO_CHECK_TIME = 0x200000
ALPN = ["http/1.1"]


class ServerContexts:
    """The listening context and the current one for the anchors' latest version."""

    def __init__(
        self,
        certfile: str | Path,
        keyfile: str | Path | None,
        anchors: AnchorSource,
        *,
        password: str | None = None,
    ) -> None:
        self._certfile = str(certfile)
        self._keyfile = None if keyfile is None else str(keyfile)
        self._password = password
        self._anchors = anchors
        version, certificates = anchors()
        self._version: Hashable = version
        #: The context to listen with (give it to uvicorn or ``loop.create_server``).
        self.listening = self.build(certificates)
        self.listening.sni_callback = self._on_client_hello
        self._current = self.listening

    def build(self, anchors: Sequence[Anchor]) -> ssl.SSLContext:
        """A server context trusting ``anchors``; an anchor that does not load is skipped."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._certfile, self._keyfile, self._password)
        context.verify_mode = ssl.CERT_OPTIONAL
        context.verify_flags = ssl.VerifyFlags(
            context.verify_flags | ssl.VERIFY_X509_PARTIAL_CHAIN | NO_CHECK_TIME
        )
        context.set_alpn_protocols(ALPN)
        for index, anchor in enumerate(anchors):
            try:
                context.load_verify_locations(cadata=anchor)
            except (ssl.SSLError, ValueError, TypeError) as exc:
                # One unreadable anchor must not take the others (or the server) down.
                log.warning("tls anchor %d skipped: %s", index, exc)
        return context

    def current(self) -> ssl.SSLContext:
        """The context for the anchors as they are now; rebuilt only when their version moved."""
        version, certificates = self._anchors()
        if version != self._version:
            self._current = self.build(certificates)
            self._version = version
        return self._current

    def _on_client_hello(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        # Never raises: an exception here would fail the handshake of every caller.
        try:
            current = self.current()
        except Exception:
            log.exception("tls anchors unavailable; keeping the previous trust")
            current = self._current
        if current is not connection.context:
            connection.context = current
