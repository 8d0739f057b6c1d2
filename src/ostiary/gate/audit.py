"""Failed authentications as audit events, with their real reason (never told the caller)."""

from __future__ import annotations

import logging

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.gate.principal import Refusal

log = logging.getLogger("ostiary.gate")


def denial_action(refusal: Refusal, otherwise: AuditAction) -> AuditAction:
    """``credential:expired`` for a right credential past its end, else ``otherwise``."""
    return AuditAction.credential_expired if refusal.expired_credential else otherwise


def record_failure(ctx: AppContext, refusal: Refusal, *, target: str, address: str) -> None:
    """Audit a refused authentication in its own transaction (admin API and console; the
    runtime and the token endpoint hand theirs to the group-committing writer)."""
    try:
        with transaction(ctx.sessions) as session:
            record(
                session,
                clock=ctx.clock,
                actor=refusal.user_id or "anonymous",
                action=denial_action(refusal, AuditAction.authentication_failed),
                target=target,
                reason=refusal.reason,
                after={"client_address": address},
            )
    except Exception:  # the refusal stands; losing its audit event must not turn it into a 5xx
        log.warning("could not audit a failed authentication", exc_info=True)
