"""Which technical users and credentials belong to one sub-account's review."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ostiary.access.models import RoleCollection, RoleCollectionAssignment
from ostiary.credentials.service import CredentialInfo, CredentialKind, listing
from ostiary.identity.models import User, UserKind
from ostiary.tenancy.models import Member, Subaccount


def technical_users(session: Session, *, subaccount: Subaccount) -> list[User]:
    """Technical users at home in, members of, or holding role collections in ``subaccount``
    (the same set as the sub-account's technical-user inventory), by user ID."""
    holders = (
        select(RoleCollectionAssignment.user_id)
        .join(RoleCollection, RoleCollection.id == RoleCollectionAssignment.collection_id)
        .where(RoleCollection.subaccount_id == subaccount.id)
    )
    members = select(Member.user_id).where(Member.subaccount_id == subaccount.id)
    return list(
        session.scalars(
            select(User)
            .where(
                User.kind == UserKind.technical,
                or_(
                    User.home_subaccount_id == subaccount.id,
                    User.id.in_(holders),
                    User.id.in_(members),
                ),
            )
            .order_by(User.user_id)
        )
    )


def credentials(
    session: Session, *, subaccount: Subaccount, users: list[User], now: datetime
) -> list[CredentialInfo]:
    """The credentials of ``users`` that work in ``subaccount``.

    A technical-user secret works wherever its user holds roles, so it is always in scope;
    OAuth clients and certificates are bound to one sub-account, and another sub-account's
    are not shown to this one's reviewers.
    """
    found: list[CredentialInfo] = []
    for user in users:
        found.extend(
            c
            for c in listing(session, now=now, user=user)
            if c.kind is CredentialKind.technical_user_secret
            or c.subaccount == subaccount.subdomain
        )
    return found
