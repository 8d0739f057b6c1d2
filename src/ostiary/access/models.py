"""Tables of roles, role collections and their assignment to users."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base


class Role(Base):
    """A custom application role of a sub-account's tenant (built-in templates are not rows)."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("subaccount_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    subaccount_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class RoleCollection(Base):
    """A named set of roles in a sub-account."""

    __tablename__ = "role_collections"
    __table_args__ = (UniqueConstraint("subaccount_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    subaccount_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RoleCollectionRole(Base):
    """One role in a role collection (by name: built-in templates have no row)."""

    __tablename__ = "role_collection_roles"

    collection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("role_collections.id", ondelete="CASCADE"), primary_key=True
    )
    role_name: Mapped[str] = mapped_column(String(100), primary_key=True)


class RoleCollectionAssignment(Base):
    """A role collection assigned to a user."""

    __tablename__ = "role_collection_assignments"

    collection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("role_collections.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    assigned_at: Mapped[datetime]
