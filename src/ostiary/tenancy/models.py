"""Tables of sub-accounts and their members."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Enum, ForeignKey, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base


class Plan(StrEnum):
    """A sub-account's plan; plans differ only in documented limits (contract C2)."""

    trial = "trial"
    standard = "standard"


class MemberRole(StrEnum):
    """What a member may do in the console and admin API of one sub-account."""

    administrator = "Administrator"
    developer = "Developer"
    viewer = "Viewer"


class Subaccount(Base):
    """A unit of the global account, hosting one integration tenant."""

    __tablename__ = "subaccounts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    subdomain: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    plan: Mapped[Plan] = mapped_column(
        Enum(Plan, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    #: contract M: a sub-account may refuse HTTP Basic for all its flows.
    basic_auth_allowed: Mapped[bool] = mapped_column(default=True, server_default=true())
    #: Stored messages older than this are deleted by the retention job.
    message_retention_days: Mapped[int] = mapped_column(default=30, server_default="30")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Member(Base):
    """A user added to a sub-account with member roles and a description."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("subaccount_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    subaccount_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    #: Member role names (values of ``MemberRole``), stored as a JSON list.
    roles: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
