"""Findings of an access review of one sub-account (issue 11 item 5).

Six kinds, each a question a reviewer asks of every technical user:

- ``unused_credential``: an active credential not used in ``unused_days`` (and older than that);
- ``credential_without_expiry``: an active credential that never ends;
- ``credential_expiring``: an active credential ending within ``expiring_days``;
- ``role_never_exercised``: a role collection gives a role whose flows in this sub-account the
  holder has never called (per the message processing log, as far back as it is kept);
- ``ownerless_technical_user``: no owner, or an owner who is disabled;
- ``technical_user_without_credential``: no active credential at all.

Only reads; the caller owns the transaction. The API, the CLI and the console page show
this one list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.access.models import RoleCollection, RoleCollectionAssignment, RoleCollectionRole
from ostiary.credentials.service import CredentialInfo
from ostiary.errors import InvalidInput
from ostiary.groups.ownership import owner_group, owner_is_active
from ostiary.identity.models import User, UserStatus
from ostiary.review import scope
from ostiary.runtime.models import Flow, Message
from ostiary.tenancy.models import Subaccount

__all__ = ["Finding", "FindingKind", "findings"]

UNUSED_DAYS = 90
EXPIRING_DAYS = 30
MAX_DAYS = 3650


class FindingKind(StrEnum):
    """What a finding is about, in the order reviews list them."""

    credential_expiring = "credential_expiring"
    unused_credential = "unused_credential"
    credential_without_expiry = "credential_without_expiry"
    role_never_exercised = "role_never_exercised"
    ownerless_technical_user = "ownerless_technical_user"
    technical_user_without_credential = "technical_user_without_credential"


ORDER = {kind: index for index, kind in enumerate(FindingKind)}


@dataclass(frozen=True)
class Finding:
    """One thing a reviewer should look at."""

    kind: FindingKind
    #: The technical (or, for roles, any) user it is about.
    user_id: str
    detail: str
    credential_id: str | None = None
    credential_kind: str | None = None
    role_collection: str | None = None
    role: str | None = None
    #: When it happens or happened (expiry, creation of an unused credential).
    at: datetime | None = None

    def to_json(self) -> dict[str, object]:
        """The JSON shape of the API and ``--json``."""
        return {
            "kind": self.kind.value,
            "user_id": self.user_id,
            "detail": self.detail,
            "credential_id": self.credential_id,
            "credential_kind": self.credential_kind,
            "role_collection": self.role_collection,
            "role": self.role,
            "at": self.at.isoformat() if self.at else None,
        }


def findings(
    session: Session,
    *,
    subaccount: Subaccount,
    now: datetime,
    unused_days: int = UNUSED_DAYS,
    expiring_days: int = EXPIRING_DAYS,
) -> list[Finding]:
    """Every finding of ``subaccount`` at ``now``, by kind, user and credential."""
    for name, value in (("unused_days", unused_days), ("expiring_days", expiring_days)):
        if not 1 <= value <= MAX_DAYS:
            raise InvalidInput(f"{name} must be between 1 and {MAX_DAYS}")
    users = scope.technical_users(session, subaccount=subaccount)
    held = scope.credentials(session, subaccount=subaccount, users=users, now=now)
    found = _credential_findings(
        held,
        now=now,
        unused=timedelta(days=unused_days),
        expiring=timedelta(days=expiring_days),
    )
    found += _user_findings(session, users=users, held=held)
    found += _unexercised_roles(session, subaccount=subaccount)
    found.sort(key=lambda f: (ORDER[f.kind], f.user_id, f.credential_id or "", f.role or ""))
    return found


def _credential_findings(
    held: list[CredentialInfo], *, now: datetime, unused: timedelta, expiring: timedelta
) -> list[Finding]:
    found: list[Finding] = []
    for c in held:
        if c.status != "active":
            continue
        kind = c.kind.value
        if c.expires_at is None:
            found.append(
                Finding(
                    FindingKind.credential_without_expiry,
                    detail=f"{kind} {c.credential_id} never expires",
                    credential_kind=kind,
                    user_id=c.user_id,
                    credential_id=c.credential_id,
                )
            )
        elif c.expires_at <= now + expiring:
            days = (c.expires_at - now) / timedelta(days=1)
            found.append(
                Finding(
                    FindingKind.credential_expiring,
                    detail=f"{kind} {c.credential_id} expires {c.expires_at.date().isoformat()} "
                    f"(in {days:.0f} days)",
                    credential_kind=kind,
                    at=c.expires_at,
                    user_id=c.user_id,
                    credential_id=c.credential_id,
                )
            )
        if c.created_at <= now - unused and (
            c.last_used_at is None or c.last_used_at <= now - unused
        ):
            last = c.last_used_at.date().isoformat() if c.last_used_at else "never"
            found.append(
                Finding(
                    FindingKind.unused_credential,
                    detail=f"{kind} {c.credential_id} not used in {unused.days} days "
                    f"(last use: {last})",
                    credential_kind=kind,
                    at=c.last_used_at,
                    user_id=c.user_id,
                    credential_id=c.credential_id,
                )
            )
    return found


def _user_findings(
    session: Session, *, users: list[User], held: list[CredentialInfo]
) -> list[Finding]:
    working = {c.user_id for c in held if c.status == "active"}
    owner_ids = {u.owner_id for u in users if u.owner_id is not None}
    owners = (
        {o.id: o for o in session.scalars(select(User).where(User.id.in_(owner_ids)))}
        if owner_ids
        else {}
    )
    found: list[Finding] = []
    for user in users:
        owner = owners.get(user.owner_id) if user.owner_id else None
        group = owner_group(session, user=user)
        if group is not None:
            # A group answers for it while one of its members is active (docs/groups.md).
            if not owner_is_active(session, user=user, owner=None, group=group):
                found.append(
                    Finding(
                        FindingKind.ownerless_technical_user,
                        user_id=user.user_id,
                        detail=(
                            f"{user.user_id}'s owning group {group.group_id} has no active member"
                        ),
                    )
                )
        elif owner is None:
            found.append(
                Finding(
                    FindingKind.ownerless_technical_user,
                    user_id=user.user_id,
                    detail=f"{user.user_id} has no owner",
                )
            )
        elif owner.status is UserStatus.disabled:
            found.append(
                Finding(
                    FindingKind.ownerless_technical_user,
                    user_id=user.user_id,
                    detail=f"{user.user_id}'s owner {owner.user_id} is disabled",
                )
            )
        if user.user_id not in working:
            found.append(
                Finding(
                    FindingKind.technical_user_without_credential,
                    user_id=user.user_id,
                    detail=f"{user.user_id} has no active credential",
                )
            )
    return found


def _unexercised_roles(session: Session, *, subaccount: Subaccount) -> list[Finding]:
    """Assigned roles whose flows the holder never called; roles guarding no flow are no
    finding (administration roles are exercised in the console, not at the runtime)."""
    flows: dict[str, list[Flow]] = {}
    for flow in session.scalars(
        select(Flow).where(Flow.subaccount_id == subaccount.id).order_by(Flow.path)
    ):
        flows.setdefault(flow.required_role, []).append(flow)
    if not flows:
        return []
    assigned = session.execute(
        select(User.user_id, RoleCollection.name, RoleCollectionRole.role_name)
        .join(RoleCollectionAssignment, RoleCollectionAssignment.user_id == User.id)
        .join(RoleCollection, RoleCollection.id == RoleCollectionAssignment.collection_id)
        .join(RoleCollectionRole, RoleCollectionRole.collection_id == RoleCollection.id)
        .where(
            RoleCollection.subaccount_id == subaccount.id,
            RoleCollectionRole.role_name.in_(flows),
        )
    ).all()
    senders = {user_id for user_id, _, _ in assigned}
    called = {
        (sender, flow_id)
        for sender, flow_id in session.execute(
            select(Message.sender, Message.flow_id)
            .distinct()
            .where(Message.subaccount_id == subaccount.id, Message.sender.in_(senders))
        )
    }
    found = []
    for user_id, collection, role in assigned:
        guarded = flows[role]
        if any((user_id, flow.id) in called for flow in guarded):
            continue
        paths = ", ".join(flow.path for flow in guarded)
        found.append(
            Finding(
                FindingKind.role_never_exercised,
                user_id=user_id,
                detail=f"{role} (role collection {collection}) never used: no call of {paths}",
                role_collection=collection,
                role=role,
            )
        )
    return found
