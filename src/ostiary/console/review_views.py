"""Console: a sub-account's findings page, and the pictures the overview and the
technical-user page embed (issue 11 items 5 and 6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.responses import Response

from ostiary.access.permissions import Permission
from ostiary.api.deps import context
from ostiary.console.guard import authorized, problem, signed_in
from ostiary.console.web import render
from ostiary.context import AppContext
from ostiary.errors import InvalidInput, OstiaryError
from ostiary.identity.models import User
from ostiary.pictures import svg
from ostiary.review import pictures
from ostiary.review.findings import EXPIRING_DAYS, MAX_DAYS, UNUSED_DAYS, FindingKind, findings
from ostiary.tenancy.models import Subaccount

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
Days = Annotated[str, Query(max_length=5)]

#: Headings of the findings page, one section per kind.
KIND_LABELS = {
    FindingKind.credential_expiring: "Credentials expiring soon",
    FindingKind.unused_credential: "Unused credentials",
    FindingKind.credential_without_expiry: "Credentials without expiry",
    FindingKind.role_never_exercised: "Role assignments never exercised",
    FindingKind.ownerless_technical_user: "Ownerless technical users",
    FindingKind.technical_user_without_credential: "Technical users without a credential",
}


@dataclass(frozen=True)
class Pictures:
    """The two SVG pictures, ready to embed (escaped by ``ostiary.pictures.svg``)."""

    timeline: Markup
    volume: Markup


def subaccount_pictures(session: Session, *, ctx: AppContext, subaccount: Subaccount) -> Pictures:
    """The sub-account overview's pictures: every technical user's credentials and messages."""
    now = ctx.clock.now()
    marks = pictures.subaccount_expiries(session, subaccount=subaccount, now=now)
    series = pictures.subaccount_volume(session, subaccount=subaccount, now=now)
    return Pictures(
        Markup(svg.expiry_timeline(marks, now=now, days=pictures.TIMELINE_DAYS)),  # noqa: S704 (escaped by svg)
        Markup(svg.message_volume(series, days=pictures.volume_days(now))),  # noqa: S704
    )


def user_pictures(session: Session, *, ctx: AppContext, user: User) -> Pictures:
    """The technical-user page's pictures: its own credentials and messages."""
    now = ctx.clock.now()
    marks = pictures.user_expiries(session, user=user, now=now)
    series = pictures.user_volume(session, user=user, now=now)
    return Pictures(
        Markup(svg.expiry_timeline(marks, now=now, days=pictures.TIMELINE_DAYS)),  # noqa: S704
        Markup(svg.message_volume(series, days=pictures.volume_days(now))),  # noqa: S704
    )


def _days(value: str, default: int, name: str) -> int:
    if not value:
        return default
    if not value.isdigit() or not 1 <= int(value) <= MAX_DAYS:
        raise InvalidInput(f"{name} must be a whole number of days between 1 and {MAX_DAYS}")
    return int(value)


@router.get("/subaccounts/{subdomain}/findings")
def findings_page(
    request: Request, ctx: Ctx, subdomain: str, unused_days: Days = "", expiring_days: Days = ""
) -> Response:
    """The access review: the same findings as the API and ``ostiary findings``."""
    seen = signed_in(request, ctx)
    try:
        unused = _days(unused_days, UNUSED_DAYS, "unused_days")
        expiring = _days(expiring_days, EXPIRING_DAYS, "expiring_days")
        with authorized(ctx, seen, subdomain, Permission.credentials_read) as here:
            found = findings(
                here.session,
                subaccount=here.subaccount,
                now=ctx.clock.now(),
                unused_days=unused,
                expiring_days=expiring,
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    grouped = {kind: [f for f in found if f.kind is kind] for kind in FindingKind}
    return render(
        request,
        ctx,
        seen,
        "subaccounts/findings.html",
        subaccount=here.subaccount,
        grouped=grouped,
        labels=KIND_LABELS,
        total=len(found),
        unused_days=unused,
        expiring_days=expiring,
        section="findings",
    )
