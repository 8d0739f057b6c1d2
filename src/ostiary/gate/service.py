"""Authentication as the admin API and the console use it: one attempt, a re-check before
refusing, and every refusal counted and audited in one place.

The runtime and the token endpoint do the same with their own hot-path plumbing
(``ostiary.gate.recheck``, audit events handed to the group-committing writer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio.to_thread

from ostiary.access.snapshot import GrantSnapshot
from ostiary.context import AppContext
from ostiary.errors import AuthenticationFailed
from ostiary.gate import throttling
from ostiary.gate.audit import record_failure
from ostiary.gate.principal import Principal, Refusal

Attempt = Callable[[GrantSnapshot], Awaitable[Principal | Refusal | None]]


async def settle(
    ctx: AppContext, attempt: Attempt, *, target: str, address: str, bearer: bool = False
) -> Principal | None:
    """Run ``attempt`` on the current snapshot; if it is refused, once more on a snapshot
    re-read now (another worker may have just created the user, secret or client). A final
    refusal is counted, audited and raised as ``AuthenticationFailed``; ``None`` means the
    request carried no credential."""
    snapshot = ctx.grants.get()
    found = await attempt(snapshot)
    if isinstance(found, Refusal):
        fresh = await anyio.to_thread.run_sync(ctx.grants.refresh)
        if fresh is not snapshot:
            found = await attempt(fresh)
    if not isinstance(found, Refusal):
        return found
    refusal = found
    await anyio.to_thread.run_sync(
        lambda: record_failure(ctx, refusal, target=target, address=address)
    )
    throttling.count(ctx, refusal, address)  # may raise Throttled: audited first
    raise AuthenticationFailed(reason=("bearer: " if bearer else "") + refusal.reason)
