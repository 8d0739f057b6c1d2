"""Tables of the identity directory."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


class UserKind(StrEnum):
    """A human, or a machine identity used by other systems."""

    person = "person"
    technical = "technical"


class UserStatus(StrEnum):
    """Life cycle of a user; only ``active`` users may authenticate."""

    pending = "pending"
    active = "active"
    locked = "locked"
    disabled = "disabled"
    #: Personal data removed (GDPR erasure); the user ID stays, nothing else comes back.
    erased = "erased"


class TokenPurpose(StrEnum):
    """What a single-use link token is for."""

    activation = "activation"
    password_reset = "password_reset"


class IdCounter(Base):
    """Named counters for human-readable identifiers such as user IDs."""

    __tablename__ = "id_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class User(Base):
    """A person or a technical user."""

    __tablename__ = "users"
    __table_args__ = (
        # A person's e-mail is unique (case-insensitive); a technical user's need not be.
        Index(
            "uq_users_person_email",
            "email_normalized",
            unique=True,
            sqlite_where=text("kind = 'person'"),
            postgresql_where=text("kind = 'person'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(16), unique=True)
    kind: Mapped[UserKind] = mapped_column(
        Enum(UserKind, native_enum=False, length=16, values_callable=_values)
    )
    status: Mapped[UserStatus] = mapped_column(
        Enum(UserStatus, native_enum=False, length=16, values_callable=_values)
    )
    email: Mapped[str | None] = mapped_column(String(320))
    email_normalized: Mapped[str | None] = mapped_column(String(320), index=True)
    given_name: Mapped[str] = mapped_column(String(200), default="")
    family_name: Mapped[str] = mapped_column(String(200), default="")
    display_name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_changed_at: Mapped[datetime | None]
    is_platform_admin: Mapped[bool] = mapped_column(default=False)
    #: The person who owns a technical user (contract C5).
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    #: A technical user's home sub-account, if it was created for one.
    home_subaccount_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    activated_at: Mapped[datetime | None]
    #: Last successful use at the runtime (aggregated and flushed, not written per request).
    last_used_at: Mapped[datetime | None]


class PasswordHistory(Base):
    """Earlier password hashes, so a policy can refuse reuse."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]


class PasswordPolicy(Base):
    """The password rules for one kind of user, editable by platform administrators."""

    __tablename__ = "password_policies"

    kind: Mapped[UserKind] = mapped_column(
        Enum(UserKind, native_enum=False, length=16, values_callable=_values), primary_key=True
    )
    min_length: Mapped[int]
    check_common: Mapped[bool]
    history_count: Mapped[int]
    #: Days until a password must be changed; ``None`` means it never expires.
    expiry_days: Mapped[int | None]
    updated_at: Mapped[datetime]


class OneTimeToken(Base):
    """A single-use link token (activation, password reset), stored only as a keyed hash."""

    __tablename__ = "one_time_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[TokenPurpose] = mapped_column(
        Enum(TokenPurpose, native_enum=False, length=32, values_callable=_values)
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A signed-in console session; the cookie holds the secret, the table its keyed hash."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    #: Set when the password expired: the session may only change the password.
    must_change_password: Mapped[bool] = mapped_column(default=False)
    #: When the session was last used (updated at most once a minute), and from where.
    last_seen_at: Mapped[datetime | None]
    address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
