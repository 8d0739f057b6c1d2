"""Tables of groups, their members, their role collections, group ownership and invitations."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base


class Group(Base):
    """A named set of users (persons and technical users) in the directory."""

    __tablename__ = "groups"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    #: Human-readable and stable, like user IDs: ``G000001``.
    group_id: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    #: The identifier a provisioning client (SCIM ``externalId``) gave the group.
    external_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class GroupMember(Base):
    """One user in a group."""

    __tablename__ = "group_members"

    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime]


class GroupAssignment(Base):
    """A role collection assigned to a group: every member holds it in that sub-account."""

    __tablename__ = "group_role_collection_assignments"

    collection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("role_collections.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    assigned_at: Mapped[datetime]


class GroupOwnership(Base):
    """A technical user owned by a group instead of a person: ownership survives people
    leaving. The user's ``owner_id`` is cleared while a group owns it."""

    __tablename__ = "technical_user_group_owners"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    #: RESTRICT: a group that owns technical users cannot vanish and leave them ownerless.
    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("groups.id", ondelete="RESTRICT"), index=True
    )
    since: Mapped[datetime]


class InvitationStatus(StrEnum):
    """Life cycle of an invitation."""

    pending = "pending"
    accepted = "accepted"
    withdrawn = "withdrawn"


class Invitation(Base):
    """An e-mail address invited to a sub-account as a member; the link token is stored only
    as a keyed hash."""

    __tablename__ = "invitations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    invitation_id: Mapped[str] = mapped_column(String(40), unique=True)
    subaccount_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    email_normalized: Mapped[str] = mapped_column(String(320), index=True)
    #: Member role names the invited person gets, as a JSON list.
    roles: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[InvitationStatus] = mapped_column(
        Enum(
            InvitationStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    invited_by: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    accepted_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    finished_at: Mapped[datetime | None]
