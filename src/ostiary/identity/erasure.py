"""Erasure of a person (GDPR art. 17): personal data and credentials go, the user ID stays.

What goes: e-mail, names, description, password and its history, sessions, link tokens,
client certificates, throttling records naming the person, mails to or about them, and
every mention in the audit trail (pseudonymised by ``audit.service.pseudonymise``, so
``ostiary audit verify`` keeps passing). The user row stays with status ``erased``, so the
user ID in the audit trail and in memberships still means something. A person who alone
owns technical users is refused (``SoleOwner``) until they are handed over; a technical
user owned by a group has no single owner and does not block erasure.

The caller commits, then calls ``ostiary.db.purge_freed_space`` so that, on SQLite, the
old bytes do not linger in free pages or the write-ahead log (docs/people.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from ostiary.audit import service as audit
from ostiary.audit.actions import AuditAction
from ostiary.certificates.models import Certificate
from ostiary.context import AppContext
from ostiary.errors import InvalidInput, SoleOwner
from ostiary.gate.models import AuthFailure, AuthFailureClear
from ostiary.groups.models import GroupMember, Invitation
from ostiary.identity import sessions
from ostiary.identity.models import (
    OneTimeToken,
    PasswordHistory,
    User,
    UserKind,
    UserStatus,
)
from ostiary.mail.models import OutboxMail
from ostiary.scim.models import ScimUser
from ostiary.tenancy.models import Member


@dataclass(frozen=True)
class Erased:
    """What an erasure did."""

    user_id: str
    audit_events: int
    mails: int


def sole_owned(session: Session, *, person: User) -> list[User]:
    """Technical users whose one owner is ``person`` (group-owned ones have no owner_id)."""
    return list(
        session.scalars(
            select(User)
            .where(User.owner_id == person.id, User.kind == UserKind.technical)
            .order_by(User.user_id)
        )
    )


def personal_data(user: User) -> list[str]:
    """The strings that identify the person: e-mail, names (at least 2 characters each)."""
    values = {user.email, user.email_normalized, user.given_name, user.family_name}
    values.add(user.display_name)
    return sorted({v.strip() for v in values if v and len(v.strip()) >= 2})


def _scrub_mails(session: Session, *, user: User, personal: list[str]) -> int:
    """Delete mails to the person; scrub their data out of mails to anyone else."""
    changed = 0
    if user.email_normalized:
        result = session.execute(
            delete(OutboxMail).where(func.lower(OutboxMail.recipient) == user.email_normalized)
        )
        changed += int(getattr(result, "rowcount", 0) or 0)
    if not personal:
        return changed
    pattern = re.compile("|".join(re.escape(p) for p in personal), re.IGNORECASE)
    pseudonym = f"[erased {user.user_id}]"
    mentions = or_(
        *(
            column.ilike(f"%{p}%")
            for p in personal
            for column in (OutboxMail.subject, OutboxMail.body, OutboxMail.recipient)
        )
    )
    for mail in session.scalars(select(OutboxMail).where(mentions)):
        mail.subject = pattern.sub(pseudonym, mail.subject)[:300]
        mail.body = pattern.sub(pseudonym, mail.body)
        if pattern.search(mail.recipient):
            session.delete(mail)
        changed += 1
    return changed


def erase(session: Session, ctx: AppContext, *, actor: str, user: User) -> Erased:
    """Erase a person; refused while they solely own technical users (409, listed).

    ``actor`` is the user ID (or SCIM token) acting; the admin API, console, CLI and SCIM
    ``DELETE /Users`` all come here, so what an erasure removes is decided once."""
    if user.kind is not UserKind.person:
        raise InvalidInput(f"{user.user_id} is a technical user; delete it instead of erasing")
    if user.user_id == actor:
        raise InvalidInput("you cannot erase yourself; ask another platform administrator")
    if user.status is UserStatus.erased:
        return Erased(user_id=user.user_id, audit_events=0, mails=0)
    owned = sole_owned(session, person=user)
    if owned:
        listed = [t.user_id for t in owned]
        raise SoleOwner(
            f"{user.user_id} alone owns technical users {', '.join(listed)}; hand them to "
            "another owner or a group first (PUT /api/v1/technical-users/{id}/owner)",
            technical_users=listed,
        )
    personal = personal_data(user)
    accounts = [user.user_id, *(p.lower() for p in personal)]

    sessions.end_all_for(session, user=user)
    session.execute(delete(OneTimeToken).where(OneTimeToken.user_id == user.id))
    session.execute(delete(PasswordHistory).where(PasswordHistory.user_id == user.id))
    for certificate in session.scalars(select(Certificate).where(Certificate.user_id == user.id)):
        session.delete(certificate)
    session.execute(delete(AuthFailure).where(AuthFailure.account.in_(accounts)))
    session.execute(delete(AuthFailureClear).where(AuthFailureClear.account.in_(accounts)))
    mails = _scrub_mails(session, user=user, personal=personal)
    # Memberships stay (the user ID in them means something); what was said about the
    # person in them goes.
    for member in session.scalars(select(Member).where(Member.user_id == user.id)):
        member.description = ""
    # Group memberships go (a group-owned technical user stays with its group); invitations
    # to the address, and the SCIM userName/externalId an identity provider gave, are
    # personal data.
    session.execute(delete(GroupMember).where(GroupMember.user_id == user.id))
    if user.email_normalized:
        session.execute(
            delete(Invitation).where(Invitation.email_normalized == user.email_normalized)
        )
    session.execute(delete(Invitation).where(Invitation.accepted_by_id == user.id))
    session.execute(delete(ScimUser).where(ScimUser.user_id == user.id))
    # A technical user that carried the person's address as its contact keeps working.
    if user.email_normalized:
        for technical in session.scalars(
            select(User).where(
                User.kind == UserKind.technical, User.email_normalized == user.email_normalized
            )
        ):
            technical.email = technical.email_normalized = None

    user.email = user.email_normalized = None
    user.given_name = user.family_name = user.display_name = user.description = ""
    user.password_hash = None
    user.password_changed_at = None
    user.is_platform_admin = False
    user.status = UserStatus.erased
    user.updated_at = ctx.clock.now()
    session.flush()

    events = audit.pseudonymise(session, ctx, user_id=user.user_id, personal=personal)
    audit.record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.user_erased,
        target=user.user_id,
        after={"audit_events": events, "mails": mails},
    )
    return Erased(user_id=user.user_id, audit_events=events, mails=mails)
