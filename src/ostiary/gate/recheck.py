"""Re-check before refusing: a refusal waits for a grants version read begun after the
request arrived, so a user, secret, client or role just created by another worker or node
is not refused (and throttled) while this process's snapshot catches up.

Admitting stays query-free. Used by the runtime and the token endpoint alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import anyio.to_thread

from ostiary.access.snapshot import GrantSnapshot
from ostiary.db import store_wide

log = logging.getLogger("ostiary.gate")


class Recheck:
    """Version reads before refusals. A refusal uses only a read that began after the
    request arrived (so a change committed elsewhere before that is seen); refusals
    arriving together share one read, one in flight per event loop. A read that fails or
    takes longer than ``timeout`` leaves the refusal standing."""

    def __init__(self, refresh: Callable[[], GrantSnapshot], *, timeout: float = 2.0) -> None:
        self._refresh = refresh
        self._timeout = timeout
        self._reads: dict[asyncio.AbstractEventLoop, tuple[float, asyncio.Task[GrantSnapshot]]]
        self._reads = {}
        self._latest: tuple[float, GrantSnapshot] | None = None

    async def since(self, arrived: float, fallback: GrantSnapshot) -> GrantSnapshot:
        """The snapshot as of a version read begun at or after ``arrived`` (monotonic).

        A store that cannot be reached at all is raised (the caller answers 503: the
        credential may be one just created, so "try again" is the honest answer); any
        other failure or a timeout leaves the refusal standing."""
        try:
            return await asyncio.wait_for(self._since(arrived), self._timeout)
        except Exception as exc:  # logged once per read in _read; a timeout is logged here
            if store_wide(exc):
                raise
            log.debug("refusal not re-checked", exc_info=True)
            return fallback

    async def _since(self, arrived: float) -> GrantSnapshot:
        while True:
            latest = self._latest
            if latest is not None and latest[0] >= arrived:
                return latest[1]
            loop = asyncio.get_running_loop()
            current = self._reads.get(loop)
            if current is None or current[1].done():
                started = time.monotonic()
                task = loop.create_task(self._read(started))
                current = self._reads[loop] = (started, task)
                task.add_done_callback(self._finished)
            started, task = current
            snapshot = await asyncio.shield(task)
            if started >= arrived:
                return snapshot
            # That read began before this request arrived: wait for the next one.

    def _finished(self, task: asyncio.Task[GrantSnapshot]) -> None:
        # Only reads in flight are held (the task refers to its loop: holding it would keep
        # the loop alive). Marks the outcome as seen even if every waiter went away.
        loop = task.get_loop()
        current = self._reads.get(loop)
        if current is not None and current[1] is task:
            del self._reads[loop]
        if not task.cancelled():
            task.exception()

    async def _read(self, started: float) -> GrantSnapshot:
        try:
            snapshot = await anyio.to_thread.run_sync(self._refresh)
        except Exception:
            log.warning("could not re-check the grants before a refusal", exc_info=True)
            raise
        if self._latest is None or started > self._latest[0]:
            self._latest = (started, snapshot)
        return snapshot
