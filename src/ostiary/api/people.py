"""People in the directory: user search, erasure, and one's own sessions."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError

from ostiary.api.authn import SESSION_COOKIE, Principal, authenticated, platform_admin
from ostiary.api.deps import Cursor, Limit, Page, acting_user, context
from ostiary.api.users import UserOut, user_out
from ostiary.context import AppContext
from ostiary.db import purge_freed_space, transaction
from ostiary.gate.principal import Method
from ostiary.identity import directory, erasure, sessions
from ostiary.identity import service as identity
from ostiary.identity.models import UserKind, UserStatus

router = APIRouter(prefix="/api/v1", tags=["people"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]
Admin = Annotated[Principal, Depends(platform_admin)]
log = logging.getLogger("ostiary.api")


class ErasedOut(BaseModel):
    """What an erasure did: the user ID stays, the rest is gone."""

    user_id: str
    status: str
    audit_events_pseudonymised: int
    mails_scrubbed: int


class SessionOut(BaseModel):
    """One of the caller's console sessions."""

    session_id: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime | None
    address: str | None
    user_agent: str | None
    current: bool


class EndedOut(BaseModel):
    """How many sessions ended."""

    ended: int


@router.get("/users", response_model=Page[UserOut])
def search_users(
    ctx: Ctx,
    principal: Caller,
    query: Annotated[str, Query(max_length=200)] = "",
    kind: UserKind | None = None,
    status: UserStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[UserOut]:
    """Search users (platform administrators: all; sub-account Administrators: members)."""
    with transaction(ctx.read_sessions) as session:
        found = directory.search(
            session,
            viewer=acting_user(session, principal),
            query=query,
            kind=kind,
            status=status,
            limit=limit + 1,
            after=cursor,
        )
        items = [user_out(session, u) for u in found]
    more = len(items) > limit
    return Page[UserOut](
        items=items[:limit], next_cursor=items[limit - 1].user_id if more else None
    )


@router.delete("/users/{user_id}", response_model=ErasedOut)
def erase_user(user_id: str, ctx: Ctx, principal: Admin) -> ErasedOut:
    """Erase a person's personal data and credentials (409 while they solely own technical
    users, listed in ``technical_users``); the user ID stays, pseudonymised in the audit."""
    with transaction(ctx.sessions) as session:
        user = identity.get_user(session, user_id=user_id)
        done = erasure.erase(session, ctx, actor=acting_user(session, principal).user_id, user=user)
    try:
        purge_freed_space(ctx.engine)
    except OperationalError:  # erased and committed; the next erasure compacts again
        log.warning("erasure of %s: compacting the SQLite file failed; run VACUUM", user_id)
    return ErasedOut(
        user_id=done.user_id,
        status=UserStatus.erased.value,
        audit_events_pseudonymised=done.audit_events,
        mails_scrubbed=done.mails,
    )


def current_session_hash(request: Request, ctx: AppContext, principal: Principal) -> str | None:
    """The stored hash of the console session the request came with, if it came with one."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if principal.method is not Method.session or not cookie:
        return None
    return sessions.hash_of(ctx, secret=cookie)


@router.get("/me/sessions", response_model=list[SessionOut])
def my_sessions(request: Request, ctx: Ctx, principal: Caller) -> list[SessionOut]:
    """The caller's live console sessions: created, last seen, address, user agent."""
    current = current_session_hash(request, ctx, principal)
    with transaction(ctx.read_sessions) as session:
        user = acting_user(session, principal)
        found = sessions.listing(session, ctx, user=user, current=current)
    return [SessionOut(**vars(s)) for s in found]


@router.delete("/me/sessions/{session_id}", status_code=204)
def end_my_session(session_id: str, ctx: Ctx, principal: Caller) -> None:
    """End one of the caller's sessions (404 for anyone else's)."""
    with transaction(ctx.sessions) as session:
        user = acting_user(session, principal)
        sessions.revoke(session, ctx, user=user, session_id=session_id[:64])


@router.delete("/me/sessions", response_model=EndedOut)
def sign_out_everywhere(
    request: Request,
    ctx: Ctx,
    principal: Caller,
    keep_current: bool = False,
) -> EndedOut:
    """Sign out everywhere: end every session of the caller (``keep_current``: not this one)."""
    keep = current_session_hash(request, ctx, principal) if keep_current else None
    with transaction(ctx.sessions) as session:
        user = acting_user(session, principal)
        ended = sessions.sign_out_everywhere(session, ctx, user=user, keep=keep)
    return EndedOut(ended=ended)
