"""Failed authentications as audit events, with their real reason (never told the caller)."""

from __future__ import annotations

import logging

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.gate.principal import Refusal

log = logging.getLogger("ostiary.gate")


def record_failure(ctx: AppContext, refusal: Refusal, *, target: str, address: str) -> None:
    """Audit a refused authentication in its own transaction (admin API and console; the
    runtime and the token endpoint hand theirs to the group-committing writer)."""
    try:
        with transaction(ctx.sessions) as session:
            record(
                session,
                clock=ctx.clock,
                actor=refusal.user_id or "anonymous",
                action=AuditAction.authentication_failed,
                target=target,
                reason=refusal.reason,
                after={"client_address": address},
            )
    except Exception:  # the refusal stands; losing its audit event must not turn it into a 5xx
        log.warning("could not audit a failed authentication", exc_info=True)
