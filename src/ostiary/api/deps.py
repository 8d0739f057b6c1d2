"""Small helpers shared by the routers."""

from __future__ import annotations

from fastapi import BackgroundTasks, Request

from ostiary.context import AppContext
from ostiary.mail import service as mail


def context(request: Request) -> AppContext:
    """The application context of the running app."""
    ctx: AppContext = request.app.state.ctx
    return ctx


def deliver_after_response(tasks: BackgroundTasks, ctx: AppContext, mail_ids: list[int]) -> None:
    """Send committed outbox mails once the response is out, so timing reveals nothing."""
    if mail_ids:
        tasks.add_task(mail.deliver, ctx.sessions, ctx.transport, ctx.clock, mail_ids)
