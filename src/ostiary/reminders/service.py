"""Find credentials crossing a reminder threshold and mail their people, once each.

A credential is due for threshold *t* (days) once it expires within *t* days. Each
(credential, threshold) is recorded in ``credential_reminders`` under a UNIQUE constraint,
in the same transaction that puts the mail in the outbox: when two nodes race, the second
insert fails, its transaction rolls back, and its mail is never written. A credential
first seen inside several thresholds (created with a short validity, or while reminders
were off) gets one mail, for the nearest; the farther ones are recorded unmailed so no
later run sends them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ostiary.clock import Clock
from ostiary.credentials.service import CredentialInfo, listing
from ostiary.identity.models import User
from ostiary.mail import service as mail
from ostiary.mail.transport import MailTransport
from ostiary.reminders.messages import reminder_mail
from ostiary.reminders.models import CredentialReminder
from ostiary.reminders.recipients import reminder_recipients
from ostiary.reminders.thresholds import parse_thresholds

log = logging.getLogger("ostiary.reminders")
__all__ = ["due", "parse_thresholds", "replaced", "send_reminders"]


def due(credential: CredentialInfo, *, now: datetime, thresholds: Sequence[int]) -> list[int]:
    """The thresholds ``credential`` is inside at ``now``, nearest first."""
    if credential.expires_at is None or credential.status != "active":
        return []
    left = credential.expires_at - now
    return sorted(t for t in thresholds if left <= timedelta(days=t))


def send_reminders(
    factory: sessionmaker[Session],
    transport: MailTransport,
    clock: Clock,
    *,
    thresholds: Sequence[int],
    public_url: str,
) -> int:
    """Record and mail every reminder due now; returns how many mails were written."""
    if not thresholds:
        return 0
    now = clock.now()
    horizon = timedelta(days=max(thresholds))
    with factory() as session:
        everything = listing(session, now=now)
        expiring = [
            c
            for c in everything
            if c.status == "active"
            and c.expires_at is not None
            and c.expires_at <= now + horizon
            and not replaced(c, everything)
        ]
        done = _recorded(session, [c.credential_id for c in expiring])
    written = 0
    for credential in expiring:
        inside = due(credential, now=now, thresholds=thresholds)
        if not inside or inside[0] in done.get(credential.credential_id, set()):
            continue
        try:
            mail_ids = _remind(
                factory,
                clock,
                credential,
                inside=inside,
                known=done.get(credential.credential_id, set()),
                public_url=public_url,
            )
        except IntegrityError:
            # Another node recorded it first (the UNIQUE constraint): its mail, not ours.
            continue
        written += len(mail_ids)
        mail.deliver(factory, transport, clock, mail_ids)
    return written


def replaced(credential: CredentialInfo, others: Sequence[CredentialInfo]) -> bool:
    """Whether a newer active credential of the same kind (and client) outlasts this one:
    it was rotated already (the old one ends with its overlap), so nobody needs reminding."""
    assert credential.expires_at is not None
    return any(
        other.user_id == credential.user_id
        and other.kind is credential.kind
        and other.client_id == credential.client_id
        and other.credential_id != credential.credential_id
        and other.status == "active"
        and other.created_at > credential.created_at
        and (other.expires_at is None or other.expires_at > credential.expires_at)
        for other in others
    )


def _recorded(session: Session, credential_ids: list[str]) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    if not credential_ids:
        return found
    rows = session.execute(
        select(CredentialReminder.credential_id, CredentialReminder.threshold_days).where(
            CredentialReminder.credential_id.in_(credential_ids)
        )
    )
    for credential_id, threshold in rows:
        found.setdefault(credential_id, set()).add(threshold)
    return found


def _remind(
    factory: sessionmaker[Session],
    clock: Clock,
    credential: CredentialInfo,
    *,
    inside: list[int],
    known: set[int],
    public_url: str,
) -> list[int]:
    """One transaction: the reminder rows and the mails, or (on a conflict) neither."""
    nearest = inside[0]
    assert credential.expires_at is not None
    with factory() as session, session.begin():
        user = session.scalars(select(User).where(User.user_id == credential.user_id)).first()
        if user is None:
            return []  # deleted since the listing
        recipients = reminder_recipients(session, technical_user=user)
        for threshold in inside:
            if threshold in known:
                continue
            session.add(
                CredentialReminder(
                    credential_id=credential.credential_id,
                    threshold_days=threshold,
                    user_id=credential.user_id,
                    expires_at=credential.expires_at,
                    created_at=clock.now(),
                    mailed=threshold == nearest,
                    recipients=",".join(recipients) if threshold == nearest else "",
                )
            )
        session.flush()
        subject, body = reminder_mail(
            credential, technical_user=user, now=clock.now(), public_url=public_url
        )
        mail_ids = [
            mail.enqueue(session, clock=clock, recipient=to, subject=subject, body=body)
            for to in recipients
        ]
    if not recipients:
        log.warning("no one to remind of %s expiring", credential.credential_id)
    return mail_ids
