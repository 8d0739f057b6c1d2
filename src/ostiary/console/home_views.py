"""Console home (issue 13 item 5): what matters to the person signed in, and the favicon."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from markupsafe import Markup
from starlette.responses import FileResponse, Response

from ostiary.api.deps import context
from ostiary.console.guard import signed_in
from ostiary.console.review_views import KIND_LABELS
from ostiary.console.web import render
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.pictures import svg
from ostiary.reminders.thresholds import parse_thresholds
from ostiary.review import home as homes

router = APIRouter(include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
STATIC = Path(__file__).parent / "static"


@router.get("/console/")
def home(request: Request, ctx: Ctx) -> Response:
    """Signed in: the home; otherwise (or with an expired password) ``signed_in`` redirects."""
    seen = signed_in(request, ctx)
    assert seen.user is not None
    with transaction(ctx.read_sessions) as session:
        found = homes.home(
            session,
            user=seen.user,
            now=ctx.clock.now(),
            reminder_days=parse_thresholds(ctx.settings.expiry_reminder_days),
        )
        pictures = {
            part.subaccount.subdomain: Markup(  # noqa: S704 (escaped by ostiary.pictures.svg)
                svg.flow_volume(
                    part.lanes, hours=found.hours, element_id=f"volume-{part.subaccount.subdomain}"
                )
            )
            for part in found.subaccounts
        }
    return render(
        request,
        ctx,
        seen,
        "home.html",
        home=found,
        pictures=pictures,
        kind_labels=KIND_LABELS,
    )


@router.get("/favicon.ico")
def favicon() -> Response:
    """The icon browsers ask for by themselves (the pages link the SVG one as well)."""
    return FileResponse(
        STATIC / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )
