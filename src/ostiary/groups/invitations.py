"""Invitations: a sub-account Administrator invites an e-mail address as a member with member
roles; the mailed single-use link registers (or, signed in, just accepts) and joins.

The link token is 256 bits, stored as a keyed hash like every link token, and claimed by a
guarded update so two uses of one link cannot both join. Services never commit; functions
that mail return the outbox ID to deliver once the caller committed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.context import AppContext
from ostiary.crypto import generate_secret
from ostiary.errors import Conflict, InvalidInput, InvalidToken, NotFound, PermissionDenied
from ostiary.groups.models import Invitation, InvitationStatus
from ostiary.identity.models import User, UserKind, UserStatus
from ostiary.mail import service as mail
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Member, MemberRole, Subaccount

#: Syntax only (issue 12: internal and special-use domains are fine; the mail proves it).
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


@dataclass(frozen=True)
class Sent:
    """A new invitation and the outbox mail carrying its link."""

    invitation: Invitation
    mail_id: int


def _email(email: str) -> str:
    cleaned = email.strip()
    if len(cleaned) > 320 or not _EMAIL.match(cleaned):
        raise InvalidInput("not a valid e-mail address")
    return cleaned


def _roles(roles: Sequence[str]) -> list[str]:
    try:
        chosen = sorted({MemberRole(r).value for r in roles})
    except ValueError as exc:
        raise InvalidInput("member roles are Administrator, Developer or Viewer") from exc
    if not chosen:
        raise InvalidInput("an invitation needs at least one member role")
    return chosen


def invite(
    session: Session,
    ctx: AppContext,
    *,
    actor: User,
    subaccount: Subaccount,
    email: str,
    roles: Sequence[str],
    description: str = "",
) -> Sent:
    """Invite ``email`` to ``subaccount`` with member roles; mails the single-use link."""
    address = _email(email)
    normalized = address.lower()
    chosen = _roles(roles)
    now = ctx.clock.now()
    if session.scalar(
        select(Invitation.id).where(
            Invitation.subaccount_id == subaccount.id,
            Invitation.email_normalized == normalized,
            Invitation.status == InvitationStatus.pending,
            Invitation.expires_at > now,
        )
    ):
        raise Conflict(f"{address} is already invited to {subaccount.subdomain}; withdraw it first")
    if session.scalar(
        select(Member.id)
        .join(User, User.id == Member.user_id)
        .where(
            Member.subaccount_id == subaccount.id,
            User.kind == UserKind.person,
            User.email_normalized == normalized,
        )
    ):
        raise Conflict(f"{address} is already a member of {subaccount.subdomain}")
    token = generate_secret()
    invitation = Invitation(
        id=uuid.uuid4(),
        invitation_id=f"inv-{uuid.uuid4().hex[:16]}",
        subaccount_id=subaccount.id,
        email=address,
        email_normalized=normalized,
        roles=chosen,
        description=description,
        token_hash=ctx.token_hasher.hash(token),
        status=InvitationStatus.pending,
        invited_by=actor.user_id,
        created_at=now,
        expires_at=now + timedelta(hours=ctx.settings.invitation_ttl_hours),
    )
    session.add(invitation)
    session.flush()
    record(
        session,
        clock=ctx.clock,
        actor=actor.user_id,
        action=AuditAction.invitation_created,
        target=invitation.invitation_id,
        subdomain=subaccount.subdomain,
        after={"email": address, "roles": chosen},
    )
    link = f"{ctx.settings.public_url}/console/invitations/accept?token={token}"
    body = (
        f"Hello,\n\n{actor.display_name or actor.user_id} invites you to the sub-account "
        f"{subaccount.display_name} ({subaccount.subdomain}) in Ostiary as "
        f"{', '.join(chosen)}.\n\nOpen this link to join; it registers an account for "
        f"{address} or, if you have one, lets you sign in:\n\n{link}\n\n"
        f"The link works once and expires in {ctx.settings.invitation_ttl_hours} hours. "
        "If you did not expect this, ignore this mail.\n"
    )
    mail_id = mail.enqueue(
        session,
        clock=ctx.clock,
        recipient=address,
        subject=f"You are invited to {subaccount.display_name} in Ostiary",
        body=body,
    )
    return Sent(invitation, mail_id)


def pending(session: Session, ctx: AppContext, *, subaccount: Subaccount) -> list[Invitation]:
    """The sub-account's invitations still open, newest first."""
    return list(
        session.scalars(
            select(Invitation)
            .where(
                Invitation.subaccount_id == subaccount.id,
                Invitation.status == InvitationStatus.pending,
                Invitation.expires_at > ctx.clock.now(),
            )
            .order_by(Invitation.created_at.desc(), Invitation.invitation_id)
        )
    )


def withdraw(
    session: Session, ctx: AppContext, *, actor: User, subaccount: Subaccount, invitation_id: str
) -> None:
    """Withdraw a pending invitation: its link stops working at once."""
    invitation = session.scalar(
        select(Invitation).where(
            Invitation.subaccount_id == subaccount.id,
            Invitation.invitation_id == invitation_id,
            Invitation.status == InvitationStatus.pending,
        )
    )
    if invitation is None:
        raise NotFound(f"no pending invitation {invitation_id} in {subaccount.subdomain}")
    invitation.status = InvitationStatus.withdrawn
    invitation.finished_at = ctx.clock.now()
    record(
        session,
        clock=ctx.clock,
        actor=actor.user_id,
        action=AuditAction.invitation_withdrawn,
        target=invitation.invitation_id,
        subdomain=subaccount.subdomain,
        before={"email": invitation.email},
    )


def peek(session: Session, ctx: AppContext, *, token: str) -> tuple[Invitation, Subaccount]:
    """The open invitation a link token names (to show before accepting); forged, used,
    withdrawn and expired links fail alike."""
    if not token or len(token) > 200:
        raise InvalidToken("this invitation link is not valid")
    invitation = session.scalar(
        select(Invitation).where(Invitation.token_hash == ctx.token_hasher.hash(token))
    )
    if invitation is None or invitation.status is not InvitationStatus.pending:
        raise InvalidToken("this invitation link is not valid (used, withdrawn or unknown)")
    if invitation.expires_at <= ctx.clock.now():
        raise InvalidToken("this invitation link has expired")
    subaccount = session.get(Subaccount, invitation.subaccount_id)
    if subaccount is None:
        raise InvalidToken("this invitation link is not valid")
    return invitation, subaccount


def accept(session: Session, ctx: AppContext, *, token: str, user: User) -> Member:
    """Join as the signed-in person ``user``, whose e-mail must be the invited one."""
    invitation, subaccount = peek(session, ctx, token=token)
    if user.kind is not UserKind.person or user.status is not UserStatus.active:
        raise PermissionDenied("only an active person can accept an invitation")
    if (user.email_normalized or "") != invitation.email_normalized:
        raise PermissionDenied("this invitation is for another e-mail address")
    return _join(session, ctx, invitation=invitation, subaccount=subaccount, user=user)


def register_and_accept(
    session: Session,
    ctx: AppContext,
    *,
    token: str,
    given_name: str,
    family_name: str,
    password: str,
) -> tuple[User, Member]:
    """Register the invited address as an active person (the link proved the mailbox) and
    join. Someone who already has an account signs in and accepts instead."""
    from ostiary.identity.policy import check_new_password, get_policy
    from ostiary.identity.service import allocate_user_id

    invitation, subaccount = peek(session, ctx, token=token)
    policy = get_policy(session, kind=UserKind.person, clock=ctx.clock)
    check_new_password(session, policy=policy, password=password, hasher=ctx.passwords)
    if session.scalar(
        select(User.id).where(
            User.kind == UserKind.person, User.email_normalized == invitation.email_normalized
        )
    ):
        raise Conflict(f"{invitation.email} already has an account: sign in to accept")
    now = ctx.clock.now()
    given, family = given_name.strip(), family_name.strip()
    user = User(
        id=uuid.uuid4(),
        user_id=allocate_user_id(session, kind=UserKind.person),
        kind=UserKind.person,
        status=UserStatus.active,
        email=invitation.email,
        email_normalized=invitation.email_normalized,
        given_name=given,
        family_name=family,
        display_name=f"{given} {family}".strip(),
        password_hash=ctx.passwords.hash(password),
        password_changed_at=now,
        created_at=now,
        updated_at=now,
        activated_at=now,
    )
    session.add(user)
    session.flush()
    return user, _join(session, ctx, invitation=invitation, subaccount=subaccount, user=user)


def _join(
    session: Session, ctx: AppContext, *, invitation: Invitation, subaccount: Subaccount, user: User
) -> Member:
    # Guarded update: of two concurrent uses of one link only one sees it still pending.
    claimed = session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.status == InvitationStatus.pending)
        .values(
            status=InvitationStatus.accepted, accepted_by_id=user.id, finished_at=ctx.clock.now()
        )
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], claimed).rowcount != 1:
        raise InvalidToken("this invitation link was already used")
    session.refresh(invitation)
    member = tenancy.add_member(
        session,
        clock=ctx.clock,
        actor=user.user_id,
        subaccount=subaccount,
        user=user,
        roles=invitation.roles,
        description=invitation.description or f"invited by {invitation.invited_by}",
    )
    record(
        session,
        clock=ctx.clock,
        actor=user.user_id,
        action=AuditAction.invitation_accepted,
        target=invitation.invitation_id,
        subdomain=subaccount.subdomain,
        after={"user": user.user_id, "roles": list(invitation.roles)},
    )
    return member
