"""Who is told that a technical user's credential is about to expire."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.groups.ownership import owner_group
from ostiary.groups.service import active_member_emails
from ostiary.identity.models import User, UserKind, UserStatus
from ostiary.tenancy.models import Member, MemberRole


def reminder_recipients(session: Session, *, technical_user: User) -> list[str]:
    """The addresses an expiry reminder for ``technical_user`` goes to, sorted.

    The active members of its owning group (docs/groups.md); else the person owning it;
    when it has none (or the owner cannot be reached), the Administrators of its home
    sub-account; when there are none either, the platform administrators, so a reminder
    is never sent to nobody.
    """
    group = owner_group(session, user=technical_user)
    if group is not None:
        emails = active_member_emails(session, group=group)
        if emails:
            return sorted(set(emails))
    if technical_user.owner_id is not None:
        owner = session.get(User, technical_user.owner_id)
        if owner is not None and _reachable(owner):
            return [owner.email or ""]
    if technical_user.home_subaccount_id is not None:
        members = session.execute(
            select(Member, User)
            .join(User, User.id == Member.user_id)
            .where(Member.subaccount_id == technical_user.home_subaccount_id)
        )
        admins = sorted(
            {
                user.email or ""
                for member, user in members
                if MemberRole.administrator.value in member.roles and _reachable(user)
            }
        )
        if admins:
            return admins
    platform = session.scalars(select(User).where(User.is_platform_admin.is_(True)))
    return sorted({user.email or "" for user in platform if _reachable(user)})


def _reachable(user: User) -> bool:
    return user.kind is UserKind.person and user.status is UserStatus.active and bool(user.email)
