"""uvicorn's httptools protocol, with a response's head and body leaving in one write.

uvicorn writes the status line and headers when the application sends
``http.response.start`` and the body when it sends ``http.response.body``: two ``send``
system calls for every small response. On the token endpoint those two calls were ~15 % of
a request's CPU time (benchmarks/README.md). Here the head waits in the protocol until the
body's first write, which happens in the same turn of the event loop for every response
Ostiary makes, and both go out together. A head not followed by a body in that turn (a
streamed response that is still computing, say) is written at the end of the turn, so
nothing is ever held back longer than the loop's current iteration.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _CoalescingTransport:
    """A transport whose writes within one turn of the loop leave as one ``write``."""

    __slots__ = (
        "_loop",
        "_pending",
        "_transport",
        "get_extra_info",
        "is_closing",
        "pause_reading",
        "resume_reading",
        "set_protocol",
    )

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        # What uvicorn calls on every request, bound once: ``__getattr__`` is the slow path.
        self.get_extra_info = transport.get_extra_info
        self.is_closing = transport.is_closing
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self.set_protocol = transport.set_protocol

    def write(self, data: bytes) -> None:
        """Write ``data`` with whatever else is written in this turn of the loop."""
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)
            # A head and its body: the pair is complete, nothing gains from waiting longer.
            self.flush()

    def flush(self) -> None:
        """Hand what is pending to the real transport."""
        pending = self._pending
        if pending:
            self._pending = None
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        """Close after writing what is pending (``Connection: close`` answers)."""
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` writing each small response in one system call."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the connection's transport before uvicorn keeps a reference to it."""
        # uvloop's transports are not ``asyncio.Transport`` subclasses, hence no check.
        wrapped = _CoalescingTransport(transport, self.loop)
        super().connection_made(wrapped)  # type: ignore[arg-type]
