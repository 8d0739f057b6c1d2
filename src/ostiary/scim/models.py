"""Tables of the SCIM service: bearer tokens, and what SCIM knows of a user beyond the
directory's own columns (its ``userName``, ``externalId``, and e-mail type)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base


class ScimToken(Base):
    """A bearer token for ``/scim/v2``; the token itself is shown once, only its keyed hash
    is kept."""

    __tablename__ = "scim_tokens"

    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    #: The user ID of the platform administrator who created it.
    created_by: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    last_address: Mapped[str | None] = mapped_column(String(64))


class ScimUser(Base):
    """A person provisioned (or adopted) over SCIM; one row per directory user."""

    __tablename__ = "scim_users"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    #: RFC 7643 §4.1.1 ``userName``: unique, compared case-insensitively (``user_name_key``).
    user_name: Mapped[str] = mapped_column(String(320))
    user_name_key: Mapped[str] = mapped_column(String(320), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(320))
    #: The ``type`` of the one e-mail address (``work``, ``home``, ...).
    email_type: Mapped[str | None] = mapped_column(String(64))
    email_primary: Mapped[bool | None]
