"""Write mails into the outbox within the caller's transaction; deliver them after commit.

A mail that a transport refused is tried again by the scheduler's ``mail-retry`` job with
exponential backoff (``backoff``); after ``MAX_ATTEMPTS`` it is a dead letter, listed in
the console (``dead_letters``) and left for an operator.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ostiary.clock import Clock
from ostiary.mail.models import OutboxMail
from ostiary.mail.transport import MailError, MailTransport

log = logging.getLogger("ostiary.mail")
#: Attempts before a mail becomes a dead letter.
MAX_ATTEMPTS = 6
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)


def backoff(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th attempt: 1, 2, 4, 8 … minutes, at most 1 h."""
    wait: timedelta = BACKOFF_BASE * 2 ** max(attempts - 1, 0)
    return min(wait, BACKOFF_CAP)


def enqueue(session: Session, *, clock: Clock, recipient: str, subject: str, body: str) -> int:
    """Add a mail to the outbox; it is sent only if the caller's transaction commits."""
    mail = OutboxMail(recipient=recipient, subject=subject, body=body, created_at=clock.now())
    session.add(mail)
    session.flush()
    return mail.id


def deliver(
    factory: sessionmaker[Session], transport: MailTransport, clock: Clock, mail_ids: list[int]
) -> int:
    """Deliver the given unsent mails; returns how many were handed over."""
    delivered = 0
    for mail_id in mail_ids:
        now = clock.now()
        with factory() as session, session.begin():
            # Claim the mail: one UPDATE bumps the attempt counter and pushes the next
            # attempt into the future, so a concurrent claimer (another node's retry job)
            # matches no row. A mail never tried has no next attempt and is claimed at once.
            claimed = session.execute(
                update(OutboxMail)
                .where(
                    OutboxMail.id == mail_id,
                    OutboxMail.sent_at.is_(None),
                    OutboxMail.attempts < MAX_ATTEMPTS,
                    or_(OutboxMail.next_attempt_at.is_(None), OutboxMail.next_attempt_at <= now),
                )
                .values(attempts=OutboxMail.attempts + 1)
                .returning(
                    OutboxMail.recipient, OutboxMail.subject, OutboxMail.body, OutboxMail.attempts
                )
            ).first()
            if claimed is not None:
                session.execute(
                    update(OutboxMail)
                    .where(OutboxMail.id == mail_id)
                    .values(next_attempt_at=now + backoff(claimed[3]))
                )
        if claimed is None:
            continue
        recipient, subject, body, _ = claimed
        try:
            transport.send(recipient=recipient, subject=subject, body=body)
        except MailError as exc:
            log.warning("mail %s to %s not delivered: %s", mail_id, recipient, exc)
            with factory() as session, session.begin():
                session.execute(
                    update(OutboxMail).where(OutboxMail.id == mail_id).values(last_error=str(exc))
                )
            continue
        with factory() as session, session.begin():
            session.execute(
                update(OutboxMail).where(OutboxMail.id == mail_id).values(sent_at=clock.now())
            )
        delivered += 1
    return delivered


def retry_unsent(
    factory: sessionmaker[Session], transport: MailTransport, clock: Clock, *, limit: int = 100
) -> int:
    """Deliver outbox mails whose backoff has passed (never tried ones too: a process that
    stopped between commit and delivery left them behind)."""
    now = clock.now()
    with factory() as session:
        ids = list(
            session.scalars(
                select(OutboxMail.id)
                .where(
                    OutboxMail.sent_at.is_(None),
                    OutboxMail.attempts < MAX_ATTEMPTS,
                    or_(OutboxMail.next_attempt_at.is_(None), OutboxMail.next_attempt_at <= now),
                    # A mail just enqueued is being delivered by its request; leave it that.
                    OutboxMail.created_at <= now - BACKOFF_BASE,
                )
                .order_by(OutboxMail.id)
                .limit(limit)
            )
        )
    return deliver(factory, transport, clock, ids)


def dead_letters(session: Session, *, limit: int = 100) -> list[OutboxMail]:
    """Mails given up on after ``MAX_ATTEMPTS`` failed attempts, newest first."""
    return list(
        session.scalars(
            select(OutboxMail)
            .where(OutboxMail.sent_at.is_(None), OutboxMail.attempts >= MAX_ATTEMPTS)
            .order_by(OutboxMail.id.desc())
            .limit(limit)
        )
    )


def next_attempt(mail: OutboxMail) -> datetime | None:
    """When an unsent mail is tried again, ``None`` once sent or dead."""
    if mail.sent_at is not None or mail.attempts >= MAX_ATTEMPTS:
        return None
    return mail.next_attempt_at


def recent(session: Session, *, limit: int = 50) -> list[OutboxMail]:
    """The newest mails in the outbox, for the dev outbox page and CLI."""
    return list(session.scalars(select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit)))
