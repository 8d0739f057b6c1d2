"""Console page for platform administrators: undelivered mail and the scheduled jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ostiary.api.deps import context
from ostiary.console.guard import problem, signed_in
from ostiary.console.web import render
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import PermissionDenied
from ostiary.mail import service as mail
from ostiary.scheduler.service import last_runs

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]


@router.get("/mail/dead-letters")
def dead_letters(request: Request, ctx: Ctx) -> Response:
    """Mails not delivered after every retry, newest first (platform administrators)."""
    seen = signed_in(request, ctx)
    if seen.user is None or not seen.user.is_platform_admin:
        return problem(
            request,
            ctx,
            seen,
            PermissionDenied("only platform administrators see undelivered mail"),
        )
    with transaction(ctx.sessions) as session:
        mails = mail.dead_letters(session)
        jobs = last_runs(session)
    return render(
        request,
        ctx,
        seen,
        "dead_letters.html",
        mails=mails,
        jobs=jobs,
        max_attempts=mail.MAX_ATTEMPTS,
    )
