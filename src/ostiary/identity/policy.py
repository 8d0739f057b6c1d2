"""Password policies per user kind (contract C1): persons expire, technical users do not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record as audit
from ostiary.clock import Clock
from ostiary.errors import InvalidInput, PasswordPolicyViolation
from ostiary.identity.models import PasswordHistory, PasswordPolicy, User, UserKind
from ostiary.identity.passwords import PasswordHasher, is_common

MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True)
class PolicyDefaults:
    """The policy a fresh installation starts with for one kind of user."""

    min_length: int
    check_common: bool
    history_count: int
    expiry_days: int | None


DEFAULTS = {
    UserKind.person: PolicyDefaults(
        min_length=10, check_common=True, history_count=5, expiry_days=90
    ),
    # Technical users are never forced to change a password interactively (contract C1).
    UserKind.technical: PolicyDefaults(
        min_length=32, check_common=True, history_count=0, expiry_days=None
    ),
}


def current_policy(session: Session, *, kind: UserKind, clock: Clock) -> PasswordPolicy:
    """The stored policy for ``kind``, or an unsaved one from the defaults; never writes.

    Sign-in checks expiry inside a read-only transaction: on SQLite a write there would
    take the database lock and block the rehash-on-verify write that follows.
    """
    policy = session.get(PasswordPolicy, kind)
    if policy is None:
        defaults = DEFAULTS[kind]
        policy = PasswordPolicy(
            kind=kind,
            min_length=defaults.min_length,
            check_common=defaults.check_common,
            history_count=defaults.history_count,
            expiry_days=defaults.expiry_days,
            updated_at=clock.now(),
        )
    return policy


def get_policy(session: Session, *, kind: UserKind, clock: Clock) -> PasswordPolicy:
    """The stored policy for ``kind``, created from the defaults on first use."""
    policy = current_policy(session, kind=kind, clock=clock)
    if policy not in session:
        session.add(policy)
        session.flush()
    return policy


def update_policy(
    session: Session,
    *,
    kind: UserKind,
    clock: Clock,
    actor: str,
    min_length: int | None = None,
    check_common: bool | None = None,
    history_count: int | None = None,
    expiry_days: int | None = None,
    clear_expiry: bool = False,
) -> PasswordPolicy:
    """Change some fields of a policy; ``clear_expiry`` switches expiry off. Audited as
    ``password_policy:changed`` with the fields before and after, naming ``actor``."""
    policy = get_policy(session, kind=kind, clock=clock)
    before = _fields(policy)
    if min_length is not None:
        if not 8 <= min_length <= 256:
            raise InvalidInput("min_length must be between 8 and 256")
        policy.min_length = min_length
    if check_common is not None:
        policy.check_common = check_common
    if history_count is not None:
        if not 0 <= history_count <= 24:
            raise InvalidInput("history_count must be between 0 and 24")
        policy.history_count = history_count
    if clear_expiry:
        policy.expiry_days = None
    elif expiry_days is not None:
        if not 1 <= expiry_days <= 3650:
            raise InvalidInput("expiry_days must be between 1 and 3650, or null for never")
        policy.expiry_days = expiry_days
    policy.updated_at = clock.now()
    after = _fields(policy)
    if after != before:
        audit(
            session,
            clock=clock,
            actor=actor,
            action=AuditAction.password_policy_changed,
            target=f"password_policy:{kind.value}",
            before={k: v for k, v in before.items() if after[k] != v},
            after={k: v for k, v in after.items() if before[k] != v},
        )
    return policy


def _fields(policy: PasswordPolicy) -> dict[str, object]:
    return {
        "min_length": policy.min_length,
        "check_common": policy.check_common,
        "history_count": policy.history_count,
        "expiry_days": policy.expiry_days,
    }


def check_new_password(
    session: Session,
    *,
    policy: PasswordPolicy,
    password: str,
    hasher: PasswordHasher,
    user: User | None = None,
) -> None:
    """Raise ``PasswordPolicyViolation`` if ``password`` may not be set under ``policy``."""
    if len(password) < policy.min_length:
        raise PasswordPolicyViolation(
            f"the password must be at least {policy.min_length} characters long"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyViolation(
            f"the password must be at most {MAX_PASSWORD_LENGTH} characters long"
        )
    if policy.check_common and is_common(password):
        raise PasswordPolicyViolation("this password is too common; choose another")
    if user is None or policy.history_count == 0:
        return
    earlier = [user.password_hash] if user.password_hash else []
    earlier += list(
        session.scalars(
            select(PasswordHistory.password_hash)
            .where(PasswordHistory.user_id == user.id)
            .order_by(PasswordHistory.id.desc())
            .limit(policy.history_count)
        )
    )
    for stored in earlier[: policy.history_count]:
        if stored.startswith("$argon2") and hasher.verify(stored, password):
            raise PasswordPolicyViolation(
                f"the password must differ from the last {policy.history_count} passwords"
            )


def password_expires_at(user: User, policy: PasswordPolicy) -> datetime | None:
    """When the user's password expires under ``policy``, or ``None`` for never."""
    if policy.expiry_days is None or user.password_changed_at is None:
        return None
    return user.password_changed_at + timedelta(days=policy.expiry_days)
