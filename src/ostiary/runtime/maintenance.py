"""Background housekeeping of one process: flush last-use times, apply retention."""

from __future__ import annotations

import asyncio
import logging

from ostiary.context import AppContext
from ostiary.gate.replay import cleanup as replay_cleanup
from ostiary.gate.throttle import cleanup as gate_cleanup
from ostiary.runtime.endpoint import Runtime
from ostiary.runtime.retention import cleanup
from ostiary.runtime.usage import LastUse

log = logging.getLogger("ostiary.runtime")
FLUSH_SECONDS = 5.0
RETENTION_SECONDS = 3600.0


def flush_last_use(runtime: Runtime) -> None:
    """Hand the collected last-use times to the writer (no wait)."""
    seen, addresses = runtime.last_use.take_all()
    if seen:
        runtime.writer.submit(lambda session: LastUse.flush(session, seen, addresses))


async def maintenance(ctx: AppContext, runtime: Runtime) -> None:
    """Every few seconds flush last use; every hour delete expired messages."""
    since_retention = RETENTION_SECONDS  # run retention soon after start
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        flush_last_use(runtime)
        since_retention += FLUSH_SECONDS
        if since_retention >= RETENTION_SECONDS:
            since_retention = 0.0
            try:
                await runtime.writer.write(lambda session: _retention(session, ctx), patient=True)
            except Exception:
                log.warning("retention cleanup failed", exc_info=True)


def _retention(session: object, ctx: AppContext) -> None:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    removed = cleanup(session, clock=ctx.clock)
    gate_cleanup(session, now=ctx.clock.now(), window=ctx.throttle.limits.window)
    replay_cleanup(session, now=ctx.clock.now())
    if removed:
        log.info("retention removed %d messages", removed)
