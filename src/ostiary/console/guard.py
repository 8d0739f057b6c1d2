"""What every signed-in console page shares: who looks, what they may do, how errors show.

Pages call ``signed_in`` first (signed-out visitors are redirected to the sign-in page
through ``SignInFirst``), check the
member role through ``authorized`` (``ostiary.api.deps.authorize``, like the admin API does),
and answer any ``OstiaryError`` with ``problem``: a page naming the status, never a 500.
A form that fails for any other reason than a refusal shows again through ``page``, with the
error's status code and message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from fastapi import FastAPI, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from ostiary.access.decision import Allow, decide
from ostiary.access.permissions import Permission
from ostiary.access.service import load_grants
from ostiary.api import deps
from ostiary.api.authn import Principal
from ostiary.api.errors import audit_denial
from ostiary.console.web import Viewer, redirect, render, viewer
from ostiary.context import AppContext
from ostiary.errors import OstiaryError, PermissionDenied
from ostiary.identity.models import User
from ostiary.tenancy.models import Subaccount

#: Headings of the problem page, by status code.
HEADINGS = {
    400: "That did not work",
    403: "Access denied",
    404: "Not found",
    409: "That did not work",
}


class SignInFirst(Exception):
    """A page for signed-in users was asked for by someone who must sign in (or change an
    expired password) first; ``install``'s handler answers with ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__("sign in first")
        self.response = response


def signed_in(request: Request, ctx: AppContext) -> Viewer:
    """The signed-in viewer; a signed-out visitor (or an expired password) is redirected."""
    seen = viewer(request, ctx)
    if seen.user is None:
        raise SignInFirst(redirect(ctx, "/console/signin"))
    if seen.must_change_password:
        raise SignInFirst(redirect(ctx, "/console/account/password", flash="must_change"))
    return seen


async def _sign_in_first(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInFirst)
    return exc.response


def install(app: FastAPI) -> None:
    """Answer ``SignInFirst`` with its redirect."""
    app.add_exception_handler(SignInFirst, _sign_in_first)


def principal(seen: Viewer) -> Principal:
    """The console user as the principal ``authorize`` expects."""
    assert seen.principal is not None, "pages call signed_in() first"
    return seen.principal


class Access(NamedTuple):
    """What ``authorized`` yields: the open session, the sub-account and the acting user."""

    session: Session
    subaccount: Subaccount
    actor: User

    def may(self, permission: Permission) -> bool:
        """Whether the acting user also holds ``permission`` here (to show or hide a form)."""
        return may(
            self.session, actor=self.actor, subaccount=self.subaccount, permission=permission
        )


@contextmanager
def authorized(
    ctx: AppContext, seen: Viewer, subdomain: str, permission: Permission, *, write: bool = False
) -> Iterator[Access]:
    """A transaction in which the viewer holds ``permission`` in ``subdomain``, or
    ``PermissionDenied``; ``write`` picks the write sessions (forms), else the read ones."""
    with deps.authorized(ctx, principal(seen), subdomain, permission, write=write) as found:
        yield Access(*found)


def may(session: Session, *, actor: User, subaccount: Subaccount, permission: Permission) -> bool:
    """Whether ``actor`` holds ``permission`` in ``subaccount`` (to show or hide a form)."""
    grants = load_grants(session, user=actor, subaccount=subaccount)
    return isinstance(decide(grants, permission), Allow)


def page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    template: str,
    *,
    failed: OstiaryError | None = None,
    **values: Any,
) -> Response:
    """Render a page; after a failed form, with the error's status code and message."""
    return render(
        request,
        ctx,
        seen,
        template,
        status=failed.status_code if failed else 200,
        error=failed.detail if failed else None,
        **values,
    )


def problem(request: Request, ctx: AppContext, seen: Viewer, exc: OstiaryError) -> Response:
    """The page for a refused or failed request, with the error's status code."""
    if isinstance(exc, PermissionDenied) and exc.reason and exc.actor:
        audit_denial(request, exc)
    return render(
        request,
        ctx,
        seen,
        "problem.html",
        status=exc.status_code,
        code=exc.status_code,
        heading=HEADINGS.get(exc.status_code, "That did not work"),
        message=exc.detail,
    )
