"""The audit trail tables: keyed, chained events and the signed checkpoints over them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base


class AuditEvent(Base):
    """One administrative change or security-relevant decision (``chain`` explains the MACs)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    #: The user ID of whoever acted (``system`` for Ostiary itself).
    actor: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    subdomain: Mapped[str | None] = mapped_column(String(63), index=True)
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: HMAC of the content as written.
    content_mac: Mapped[str] = mapped_column(String(64))
    #: HMAC over ``content_mac`` and the content after erasure rewrote it; else ``None``.
    redacted_mac: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditCheckpoint(Base):
    """A signed statement "the chain had ``event_count`` events, ending in ``head_hash``"."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    event_count: Mapped[int]
    head_event_id: Mapped[int | None]
    head_hash: Mapped[str] = mapped_column(String(64))
    #: The compact JWS (ES256) over the fields above; what gets exported.
    token: Mapped[str] = mapped_column(Text)
