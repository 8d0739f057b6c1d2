"""Forward mode's outbound HTTP: one pooled client session per process.

aiohttp, not httpx: under ``benchmarks/runtime.py``'s forward scenario httpx/httpcore spent
most of a relayed call's ~1.9 ms of CPU re-checking every pooled connection on each
request (``has_expired`` through anyio's typed attributes), a cost that grows with the
pool. The session keeps no cookies: a receiver's ``Set-Cookie`` for one sender must never
ride along on another sender's call.
"""

from __future__ import annotations

from dataclasses import dataclass

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


class Relay:
    """Posts payloads to receivers over a keep-alive pool; never retries."""

    def __init__(self, *, max_connections: int = 200) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _current(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop it was made on.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=True,  # HTTP(S)_PROXY and NO_PROXY apply, as for other clients
            )
        return self._session

    async def post(
        self, url: str, payload: bytes, *, headers: dict[str, str], timeout: float
    ) -> Relayed:
        """POST ``payload`` to ``url`` and read the whole answer within ``timeout`` seconds."""
        try:
            async with self._current().post(
                url,
                data=payload,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
            ) as answer:
                body = await answer.read()
                return Relayed(answer.status, body, answer.headers.get("Content-Type"))
        except TimeoutError:
            raise RelayFailed(f"receiver did not answer within {timeout}s") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise RelayFailed(f"receiver unreachable: {type(exc).__name__}") from None

    async def close(self) -> None:
        """Close the pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None
