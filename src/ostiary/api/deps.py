"""Small helpers shared by the routers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Generic, TypeVar

from fastapi import BackgroundTasks, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from ostiary.access.decision import Deny, decide
from ostiary.access.permissions import Permission
from ostiary.access.service import load_grants
from ostiary.api.authn import Principal
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import PermissionDenied
from ostiary.identity.models import User
from ostiary.mail import service as mail
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Subaccount


def context(request: Request) -> AppContext:
    """The application context of the running app."""
    ctx: AppContext = request.app.state.ctx
    return ctx


def deliver_after_response(tasks: BackgroundTasks, ctx: AppContext, mail_ids: list[int]) -> None:
    """Send committed outbox mails once the response is out, so timing reveals nothing."""
    if mail_ids:
        tasks.add_task(mail.deliver, ctx.sessions, ctx.transport, ctx.clock, mail_ids)


# ---------------------------------------------------------------- authorization


def authorize(
    session: Session, *, principal: Principal, subdomain: str, permission: Permission
) -> tuple[Subaccount, User]:
    """The sub-account and acting user, if the caller holds ``permission`` there.

    A ``Deny`` becomes ``PermissionDenied`` whose reason the error handler audits.
    """
    subaccount = tenancy.get(session, subdomain=subdomain)
    actor = session.get(User, principal.id)
    if actor is None:
        raise PermissionDenied("unknown caller")
    decision = decide(load_grants(session, user=actor, subaccount=subaccount), permission)
    if isinstance(decision, Deny):
        raise PermissionDenied(
            f"you may not do this in sub-account {subdomain} (it needs {permission.value})",
            reason=decision.reason,
            actor=principal.user_id,
            subdomain=subdomain,
        )
    return subaccount, actor


def acting_user(session: Session, principal: Principal) -> User:
    """The caller's user row."""
    actor = session.get(User, principal.id)
    if actor is None:
        raise PermissionDenied("unknown caller")
    return actor


# ---------------------------------------------------------------- pagination

T = TypeVar("T")
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[T]
    next_cursor: str | None = None


def paginate(
    items: Sequence[T], *, key: Callable[[T], str], limit: int, cursor: str | None
) -> Page[T]:
    """Keyset pagination over items sorted by ``key``."""
    ordered = sorted(items, key=key)
    if cursor is not None:
        ordered = [i for i in ordered if key(i) > cursor]
    page = ordered[:limit]
    more = len(ordered) > limit
    return Page[T](items=list(page), next_cursor=key(page[-1]) if more and page else None)


@contextmanager
def authorized(
    ctx: AppContext, principal: Principal, subdomain: str, permission: Permission, *, write: bool
) -> Iterator[tuple[Session, Subaccount, User]]:
    """A transaction in which the caller holds ``permission`` in ``subdomain``: yields the
    session, the sub-account and the acting user (``write`` picks the write sessions)."""
    with transaction(ctx.sessions if write else ctx.read_sessions) as session:
        subaccount, actor = authorize(
            session, principal=principal, subdomain=subdomain, permission=permission
        )
        yield session, subaccount, actor
