"""Forward mode's outbound HTTP: one pooled client session per process.

aiohttp, not httpx: under ``benchmarks/runtime.py``'s forward scenario httpx/httpcore spent
most of a relayed call's ~1.9 ms of CPU re-checking every pooled connection on each
request (``has_expired`` through anyio's typed attributes), a cost that grows with the
pool. The session keeps no cookies: a receiver's ``Set-Cookie`` for one sender must never
ride along on another sender's call.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import anyio.to_thread

if TYPE_CHECKING:
    import aiohttp

#: Headers aiohttp would invent; a relay passes on only what the caller sent.
_NO_AUTO_HEADERS = ("Content-Type",)


@dataclass(frozen=True)
class Relayed:
    """The receiver's answer."""

    status: int
    body: bytes
    content_type: str | None


class RelayFailed(Exception):
    """The receiver did not answer (in time); ``detail`` says which, for the MPL."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


async def _aiohttp() -> ModuleType:
    """aiohttp, imported on first use and off the event loop: it is ~9 MiB per worker that
    only installations with forward-mode flows need (README: an idle worker stays under
    120 MiB), and its import takes ~0.1 s that no request should wait for on the loop."""
    module = sys.modules.get("aiohttp")
    if module is None:
        module = await anyio.to_thread.run_sync(importlib.import_module, "aiohttp")
    return module


class Relay:
    """Posts payloads to receivers over a keep-alive pool; never retries.

    Proxies come from ``HTTP_PROXY``/``HTTPS_PROXY`` (read at start) and ``NO_PROXY``
    (urllib's rules), decided once per receiver origin. aiohttp's own ``trust_env`` is off: it
    would also send credentials from ``~/.netrc`` (even a ``default`` entry for any host)
    to receivers, whose URLs tenants choose.
    """

    def __init__(self, *, max_connections: int = 200, per_receiver: int = 100) -> None:
        self._max_connections = max_connections
        self._per_receiver = per_receiver
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._proxies = {
            scheme: url if "://" in url else f"http://{url}"  # curl and urllib allow that
            for scheme, url in urllib.request.getproxies_environment().items()
            if scheme in ("http", "https")
        }
        self._proxy_for: dict[tuple[str, str], str | None] = {}

    def _current(self, lib: ModuleType) -> aiohttp.ClientSession:
        # A session belongs to the event loop it was made on: one per loop.
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            # Sessions of loops that have ended went with them (nothing left to close).
            for gone in [other for other in self._sessions if other.is_closed()]:
                del self._sessions[gone]
            session = self._sessions[loop] = lib.ClientSession(
                connector=lib.TCPConnector(
                    limit=self._max_connections, limit_per_host=self._per_receiver
                ),
                cookie_jar=lib.DummyCookieJar(),
                trust_env=False,
            )
        return session

    def _proxy(self, url: str) -> str | None:
        parts = urllib.parse.urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        if origin not in self._proxy_for:
            proxy = self._proxies.get(parts.scheme)
            host = parts.netloc.rpartition("@")[2]  # host[:port], as urllib's handler does
            bypass = proxy is None or any(  # "host:port" entries, and bare IPv6 names
                urllib.request.proxy_bypass(name) for name in (host, parts.hostname or "")
            )
            self._proxy_for[origin] = None if bypass else proxy
        return self._proxy_for[origin]

    async def post(
        self,
        url: str,
        payload: bytes,
        *,
        headers: dict[str, str],
        timeout: float,
        max_answer_bytes: int,
    ) -> Relayed:
        """POST ``payload`` to ``url`` and read the whole answer within ``timeout`` seconds;
        an answer over ``max_answer_bytes`` (after decompression) is a failure, not held
        in memory."""
        aiohttp = await _aiohttp()
        try:
            async with self._current(aiohttp).post(
                url,
                data=payload,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
                proxy=self._proxy(url),
            ) as answer:
                chunks: list[bytes] = []
                size = 0
                async for chunk in answer.content.iter_any():
                    size += len(chunk)
                    if size > max_answer_bytes:
                        raise RelayFailed(f"receiver answer larger than {max_answer_bytes} bytes")
                    chunks.append(chunk)
                return Relayed(answer.status, b"".join(chunks), answer.headers.get("Content-Type"))
        except TimeoutError:
            raise RelayFailed(f"receiver did not answer within {timeout}s") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise RelayFailed(f"receiver unreachable: {type(exc).__name__}") from None

    async def close(self) -> None:
        """Close the running loop's pool (another loop's pool is closed on that loop)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()
