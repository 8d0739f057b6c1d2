"""Administrative changes to users: status (lock, disable, re-activate)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.context import AppContext
from ostiary.errors import InvalidInput
from ostiary.identity import sessions
from ostiary.identity.models import User, UserStatus


def change_status(
    session: Session, ctx: AppContext, *, actor: User, user: User, status: UserStatus
) -> None:
    """Lock, disable or re-activate a user; sessions of a user who is no longer active end."""
    if user.id == actor.id and status is not UserStatus.active:
        raise InvalidInput("you cannot lock or disable yourself")
    if status is UserStatus.pending:
        raise InvalidInput("a user cannot be set back to pending")
    if UserStatus.erased in (status, user.status):
        raise InvalidInput("erasure is DELETE /api/v1/users/{user_id}, and cannot be undone")
    before = user.status
    user.status = status
    user.updated_at = ctx.clock.now()
    if status is not UserStatus.active:
        sessions.end_all_for(session, user=user)
    record(
        session,
        clock=ctx.clock,
        actor=actor.user_id,
        action=AuditAction.user_status_changed,
        target=user.user_id,
        before={"status": before.value},
        after={"status": status.value},
    )
