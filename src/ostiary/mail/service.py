"""Write mails into the outbox within the caller's transaction; deliver them after commit."""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ostiary.clock import Clock
from ostiary.mail.models import OutboxMail
from ostiary.mail.transport import MailError, MailTransport

log = logging.getLogger("ostiary.mail")


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
        with factory() as session, session.begin():
            # Claim the mail by bumping its attempt counter so a concurrent retry skips it.
            claimed = session.execute(
                update(OutboxMail)
                .where(OutboxMail.id == mail_id, OutboxMail.sent_at.is_(None))
                .values(attempts=OutboxMail.attempts + 1)
                .returning(OutboxMail.recipient, OutboxMail.subject, OutboxMail.body)
            ).first()
        if claimed is None:
            continue
        recipient, subject, body = claimed
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
    factory: sessionmaker[Session], transport: MailTransport, clock: Clock, *, max_attempts: int = 5
) -> int:
    """Deliver outbox mails that earlier attempts failed to send."""
    with factory() as session:
        ids = list(
            session.scalars(
                select(OutboxMail.id)
                .where(OutboxMail.sent_at.is_(None), OutboxMail.attempts < max_attempts)
                .order_by(OutboxMail.id)
            )
        )
    return deliver(factory, transport, clock, ids)


def recent(session: Session, *, limit: int = 50) -> list[OutboxMail]:
    """The newest mails in the outbox, for the dev outbox page and CLI."""
    return list(session.scalars(select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit)))
