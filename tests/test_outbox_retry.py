"""The outbox retries refused mails with backoff over real SMTP; after the last try, a dead letter."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.mail import service as mail
from ostiary.mail.models import OutboxMail
from ostiary.mail.transport import SmtpTransport
from tests import factories as f
from tests.conftest import SmtpSink, free_port
from tests.test_console_tenancy import sign_in


def _nobody_listening() -> SmtpTransport:
    """A real SMTP transport to a port nobody listens on: every send is refused."""
    return SmtpTransport(f"smtp://127.0.0.1:{free_port()}", "Ostiary <no-reply@x.test>", timeout=2)


def _enqueue(ctx: AppContext, to: str) -> int:
    with transaction(ctx.sessions) as session:
        return mail.enqueue(session, clock=ctx.clock, recipient=to, subject="Hello", body="b")


def _row(ctx: AppContext, mail_id: int) -> OutboxMail:
    with transaction(ctx.sessions) as session:
        row = session.get(OutboxMail, mail_id)
        assert row is not None
        session.expunge(row)
        return row


def test_a_refused_mail_is_retried_after_its_backoff_and_delivered_once(
    ctx: AppContext, clock: FrozenClock, smtp: SmtpSink
) -> None:
    down, up = _nobody_listening(), SmtpTransport(smtp.url, "Ostiary <no-reply@x.test>")
    mail_id = _enqueue(ctx, "ops@example.test")
    assert mail.deliver(ctx.sessions, down, clock, [mail_id]) == 0
    failed = _row(ctx, mail_id)
    assert failed.attempts == 1 and failed.sent_at is None
    assert failed.last_error and "ConnectionRefused" in failed.last_error
    assert failed.next_attempt_at == clock.now() + timedelta(minutes=1)
    assert mail.retry_unsent(ctx.sessions, up, clock) == 0  # backoff not over
    clock.advance(timedelta(seconds=59))
    assert mail.retry_unsent(ctx.sessions, up, clock) == 0
    clock.advance(timedelta(seconds=2))
    assert mail.retry_unsent(ctx.sessions, down, clock) == 0  # second refusal: 2 minutes
    assert _row(ctx, mail_id).next_attempt_at == clock.now() + timedelta(minutes=2)
    clock.advance(timedelta(minutes=2))
    assert mail.retry_unsent(ctx.sessions, up, clock) == 1
    smtp.wait_for("ops@example.test", subject="Hello")
    clock.advance(timedelta(hours=2))
    assert mail.retry_unsent(ctx.sessions, up, clock) == 0
    assert len(smtp.to("ops@example.test")) == 1
    assert _row(ctx, mail_id).sent_at is not None


def test_after_the_last_attempt_the_mail_is_a_dead_letter_shown_to_platform_admins(
    ctx: AppContext, clock: FrozenClock, client: TestClient, smtp: SmtpSink
) -> None:
    down = _nobody_listening()
    mail_id = _enqueue(ctx, "lost@example.test")
    waits = []
    for _ in range(mail.MAX_ATTEMPTS):
        clock.advance(timedelta(hours=1))
        mail.retry_unsent(ctx.sessions, down, clock)
        row = _row(ctx, mail_id)
        assert row.next_attempt_at is not None
        waits.append(row.next_attempt_at - clock.now())
    assert waits == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32)]
    assert _row(ctx, mail_id).attempts == mail.MAX_ATTEMPTS
    clock.advance(timedelta(days=1))
    up = SmtpTransport(smtp.url, "Ostiary <no-reply@x.test>")
    assert mail.retry_unsent(ctx.sessions, up, clock) == 0  # given up: left for an operator
    with transaction(ctx.sessions) as session:
        assert [m.id for m in mail.dead_letters(session)] == [mail_id]

    member = f.person(ctx)
    sign_in(client, member)
    assert client.get("/console/mail/dead-letters").status_code == 403
    client.cookies.clear()
    sign_in(client, f.admin(ctx))
    page = client.get("/console/mail/dead-letters")
    assert page.status_code == 200
    assert "lost@example.test" in page.text and "ConnectionRefused" in page.text
