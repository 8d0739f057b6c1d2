"""Overlap rotation of technical-user secrets and the limits that bound it (issue 11 item 2).

A new secret is made; the ones before it keep working until ``old_valid_until`` (at once
when it is not given), so a sender can switch without an outage. The limits live here,
the same for the API, the console and the CLI:

- ``old_valid_until`` is not in the past and at most ``MAX_OVERLAP`` (366 days) ahead: an
  overlap is a grace period for switching senders, not a second lifetime; it never
  lengthens an old secret that already ends sooner;
- ``expires_at`` is in the future, at most ``MAX_VALIDITY`` ahead, and within the shortest
  maximum validity of the sub-accounts the technical user lives in, is a member of or
  holds roles in (``CredentialPolicy``); with such a maximum and no ``expires_at``, the
  new secret gets exactly that maximum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.clock import as_utc
from ostiary.context import AppContext
from ostiary.credentials.models import CredentialPolicy, SecretStatus
from ostiary.credentials.secrets import add_secret, secrets_of
from ostiary.errors import InvalidInput, NotFound
from ostiary.identity.models import User
from ostiary.identity.technical import require_manager, subaccounts_of
from ostiary.tenancy.models import Subaccount

MAX_OVERLAP = timedelta(days=366)
#: Longest validity anyone may give a secret (ten years), policy or not.
MAX_VALIDITY = timedelta(days=3660)


@dataclass(frozen=True)
class RotatedSecret:
    """The new secret (shown once) and until when the earlier ones keep working."""

    secret_id: str
    password: str
    expires_at: datetime | None
    old_valid_until: datetime


def max_validity(session: Session, *, user: User) -> timedelta | None:
    """The shortest maximum validity of the sub-accounts ``user`` is in (``None``: none)."""
    days = [
        d
        for d in session.scalars(
            select(CredentialPolicy.max_validity_days).where(
                CredentialPolicy.subaccount_id.in_(subaccounts_of(session, user=user))
            )
        )
        if d is not None
    ]
    return timedelta(days=min(days)) if days else None


def check_overlap(*, now: datetime, old_valid_until: datetime | None) -> datetime:
    """Until when the credentials being replaced keep working (``None``: they end now), or
    ``InvalidInput`` naming the limit; the same for every kind that rotates here."""
    if old_valid_until is None:
        return now
    if old_valid_until.tzinfo is None:
        raise InvalidInput("old_valid_until must carry a time zone")
    if old_valid_until < now:
        raise InvalidInput("old_valid_until must not be in the past")
    if old_valid_until > now + MAX_OVERLAP:
        raise InvalidInput(
            f"old_valid_until may be at most {MAX_OVERLAP.days} days ahead: an overlap is a "
            "grace period for switching senders, not a second lifetime"
        )
    return old_valid_until


def check_expiry(
    session: Session, *, user: User, now: datetime, expires_at: datetime | None
) -> datetime | None:
    """The expiry a new secret of ``user`` gets, or ``InvalidInput`` naming the limit."""
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at must carry a time zone")
    limit = max_validity(session, user=user)
    if expires_at is None:
        return now + limit if limit is not None else None
    if expires_at <= now:
        raise InvalidInput("expires_at must be in the future")
    if expires_at > now + MAX_VALIDITY:
        raise InvalidInput(f"expires_at may be at most {MAX_VALIDITY.days} days ahead")
    if limit is not None and expires_at > now + limit:
        raise InvalidInput(
            f"expires_at may be at most {limit.days} days ahead: the sub-account's credential "
            "policy limits the validity of technical users' secrets"
        )
    return expires_at


def rotate(
    session: Session,
    ctx: AppContext,
    *,
    actor: User,
    user: User,
    old_valid_until: datetime | None = None,
    expires_at: datetime | None = None,
) -> RotatedSecret:
    """Give ``user`` a new secret; the earlier ones work until ``old_valid_until``."""
    require_manager(session, actor=actor, user=user)
    now = ctx.clock.now()
    old_valid_until = check_overlap(now=now, old_valid_until=old_valid_until)
    expires = check_expiry(session, user=user, now=now, expires_at=expires_at)
    ended = []
    for row in secrets_of(session, user=user):
        if row.status is not SecretStatus.active:
            continue
        if row.expires_at is None or as_utc(row.expires_at) > old_valid_until:
            row.expires_at = old_valid_until
            ended.append(row.secret_id)
    made = add_secret(session, ctx, user=user, expires_at=expires)
    record(
        session,
        clock=ctx.clock,
        actor=actor.user_id,
        action=AuditAction.technical_user_secret_rotated,
        target=user.user_id,
        after={
            "secret_id": made.row.secret_id,
            "expires_at": expires,
            "old_valid_until": old_valid_until,
            "ending": ended,
        },
    )
    return RotatedSecret(made.row.secret_id, made.secret, expires, old_valid_until)


def revoke(session: Session, ctx: AppContext, *, actor: User, user: User, secret_id: str) -> None:
    """Stop one secret of ``user`` at once."""
    require_manager(session, actor=actor, user=user)
    row = next((r for r in secrets_of(session, user=user) if r.secret_id == secret_id), None)
    if row is None:
        raise NotFound(f"{user.user_id} has no secret {secret_id[:64]}")
    if row.status is SecretStatus.revoked:
        return
    row.status = SecretStatus.revoked
    record(
        session,
        clock=ctx.clock,
        actor=actor.user_id,
        action=AuditAction.technical_user_secret_revoked,
        target=user.user_id,
        after={"secret_id": secret_id},
    )


def set_max_validity(
    session: Session, ctx: AppContext, *, actor: str, subaccount: Subaccount, days: int | None
) -> None:
    """Set (``None``: lift) the longest validity of new technical-user secrets there."""
    if days is not None and not 1 <= days <= MAX_VALIDITY.days:
        raise InvalidInput(f"max_validity_days must be between 1 and {MAX_VALIDITY.days}")
    policy = session.get(CredentialPolicy, subaccount.id)
    before = policy.max_validity_days if policy else None
    if policy is None:
        policy = CredentialPolicy(subaccount_id=subaccount.id, updated_at=ctx.clock.now())
        session.add(policy)
    policy.max_validity_days = days
    policy.updated_at = ctx.clock.now()
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.credential_policy_changed,
        target=subaccount.subdomain,
        subdomain=subaccount.subdomain,
        before={"max_validity_days": before},
        after={"max_validity_days": days},
    )


def policy_of(session: Session, *, subaccount: Subaccount) -> int | None:
    """The sub-account's maximum validity of technical users' secrets, in days."""
    policy = session.get(CredentialPolicy, subaccount.id)
    return policy.max_validity_days if policy else None
