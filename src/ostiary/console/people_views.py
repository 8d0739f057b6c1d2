"""Console pages for people: the users list (search, erase), the password policies, and
one's own sessions. Each calls the same services as the admin API."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from ostiary.api.authn import SESSION_COOKIE
from ostiary.api.deps import context
from ostiary.console.guard import page, problem, signed_in
from ostiary.console.web import check_csrf, redirect
from ostiary.context import AppContext
from ostiary.db import purge_freed_space, transaction
from ostiary.errors import InvalidInput, OstiaryError, PermissionDenied
from ostiary.identity import directory, erasure, sessions
from ostiary.identity import policy as policies
from ostiary.identity import service as identity
from ostiary.identity.models import UserKind, UserStatus

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
Field = Annotated[str, Form(max_length=2000)]
PAGE_SIZE = 50


E = TypeVar("E", UserKind, UserStatus)


def _choice(enum: type[E], value: str) -> E | None:
    try:
        return enum(value) if value else None
    except ValueError:
        raise InvalidInput(f"unknown {enum.__name__}: {value!r}") from None


@router.get("/users")
def users(
    request: Request,
    ctx: Ctx,
    query: Annotated[str, Query(max_length=200)] = "",
    kind: Annotated[str, Query(max_length=16)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    cursor: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    """Search the directory (platform administrators; Administrators see their members)."""
    seen = signed_in(request, ctx)
    assert seen.user is not None
    try:
        with transaction(ctx.read_sessions) as session:
            found = directory.search(
                session,
                viewer=seen.user,
                query=query,
                kind=_choice(UserKind, kind),
                status=_choice(UserStatus, status),
                limit=PAGE_SIZE + 1,
                after=cursor or None,
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    more = len(found) > PAGE_SIZE
    return page(
        request,
        ctx,
        seen,
        "users.html",
        found=found[:PAGE_SIZE],
        next_cursor=found[PAGE_SIZE - 1].user_id if more else None,
        form={"query": query, "kind": kind, "status": status},
        kinds=list(UserKind),
        statuses=list(UserStatus),
    )


@router.post("/users/{user_id}/erase")
def erase(
    user_id: str, request: Request, ctx: Ctx, csrf_token: Field = "", confirm: Field = ""
) -> Response:
    """Erase a person (platform administrators), after typing their user ID to confirm."""
    seen = signed_in(request, ctx)
    assert seen.user is not None
    try:
        check_csrf(seen, csrf_token)
        if not seen.user.is_platform_admin:
            raise PermissionDenied("only platform administrators may erase people")
        if confirm.strip().upper() != user_id.strip().upper():
            raise InvalidInput(f"type {user_id} to confirm the erasure")
        with transaction(ctx.sessions) as session:
            actor = identity.get_user(session, user_id=seen.user.user_id)
            target = identity.get_user(session, user_id=user_id)
            erasure.erase(session, ctx, actor=actor.user_id, user=target)
        purge_freed_space(ctx.engine)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return redirect(ctx, f"/console/users?query={user_id}")


@router.get("/password-policies")
def password_policies(request: Request, ctx: Ctx) -> Response:
    """The password policy of each kind of user (platform administrators)."""
    seen = signed_in(request, ctx)
    assert seen.user is not None
    if not seen.user.is_platform_admin:
        return problem(
            request, ctx, seen, PermissionDenied("only platform administrators see the policies")
        )
    with transaction(ctx.read_sessions) as session:
        found = [policies.current_policy(session, kind=k, clock=ctx.clock) for k in UserKind]
    return page(request, ctx, seen, "password_policies.html", policies=found)


def _number(value: str, name: str) -> int | None:
    if not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number") from None


@router.post("/password-policies/{kind}")
def update_password_policy(
    kind: str,
    request: Request,
    ctx: Ctx,
    csrf_token: Field = "",
    min_length: Field = "",
    history_count: Field = "",
    expiry_days: Field = "",
    check_common: Field = "",
) -> Response:
    """Change a policy; an empty expiry switches expiry off."""
    seen = signed_in(request, ctx)
    assert seen.user is not None
    try:
        check_csrf(seen, csrf_token)
        if not seen.user.is_platform_admin:
            raise PermissionDenied("only platform administrators may change the policies")
        which = _choice(UserKind, kind)
        if which is None:
            raise InvalidInput("which policy?")
        days = _number(expiry_days, "expiry days")
        with transaction(ctx.sessions) as session:
            policies.update_policy(
                session,
                kind=which,
                clock=ctx.clock,
                actor=seen.user.user_id,
                min_length=_number(min_length, "minimum length"),
                check_common=check_common == "on",
                history_count=_number(history_count, "history count"),
                expiry_days=days,
                clear_expiry=days is None,
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return redirect(ctx, "/console/password-policies")


@router.get("/account/sessions")
def my_sessions(request: Request, ctx: Ctx) -> Response:
    """My console sessions: where and when, with a way to end them."""
    seen = signed_in(request, ctx)
    assert seen.user is not None
    with transaction(ctx.read_sessions) as session:
        found = sessions.listing(session, ctx, user=seen.user, current=seen.session_hash)
    return page(request, ctx, seen, "sessions.html", found=found)


@router.post("/account/sessions")
def end_sessions(
    request: Request, ctx: Ctx, csrf_token: Field = "", session_id: Field = ""
) -> Response:
    """End one session (``session_id``), or every one but this (sign out everywhere else)."""
    seen = signed_in(request, ctx)
    assert seen.user is not None
    try:
        check_csrf(seen, csrf_token)
        with transaction(ctx.sessions) as session:
            user = identity.get_user(session, user_id=seen.user.user_id)
            if session_id:
                sessions.revoke(session, ctx, user=user, session_id=session_id[:64])
            else:
                sessions.sign_out_everywhere(session, ctx, user=user, keep=seen.session_hash)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    ended_own = seen.session_hash and sessions.session_id_of(seen.session_hash) == session_id
    if request.cookies.get(SESSION_COOKIE) and ended_own:
        return redirect(ctx, "/console/signin", flash="signed_out")
    return redirect(ctx, "/console/account/sessions")
