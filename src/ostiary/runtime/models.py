"""Tables of integration flows and the messages they accepted (the message processing log)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column

from ostiary.db import Base

DEFAULT_ROLE = "ESBMessaging.send"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024


class FlowMode(StrEnum):
    """What a flow does with an accepted message."""

    store = "store"
    forward = "forward"


class AuthMethod(StrEnum):
    """Sender authentication methods a flow may accept."""

    basic = "basic"
    oauth = "oauth"
    certificate = "certificate"


class MessageStatus(StrEnum):
    """Outcome of one accepted call."""

    stored = "stored"
    forwarded = "forwarded"
    failed = "failed"


class Flow(Base):
    """An HTTP endpoint of a tenant at ``/t/{subdomain}/http/{path}``."""

    __tablename__ = "flows"
    __table_args__ = (UniqueConstraint("subaccount_id", "path"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    subaccount_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), index=True
    )
    path: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    required_role: Mapped[str] = mapped_column(String(100), default=DEFAULT_ROLE)
    #: Accepted sender authentication methods (values of ``AuthMethod``).
    auth: Mapped[list[str]] = mapped_column(JSON)
    mode: Mapped[FlowMode] = mapped_column(
        Enum(FlowMode, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    receiver_url: Mapped[str | None] = mapped_column(String(2000))
    timeout_seconds: Mapped[float] = mapped_column(default=30.0)
    max_bytes: Mapped[int] = mapped_column(default=DEFAULT_MAX_BYTES)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Message(Base):
    """One call of a flow that passed authentication: its MPL entry and (store mode) payload."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_subaccount_received", "subaccount_id", "received_at"),
        Index("ix_messages_subaccount_sender", "subaccount_id", "sender"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subaccount_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE")
    )
    flow_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("flows.id", ondelete="SET NULL"), index=True
    )
    flow_path: Mapped[str] = mapped_column(String(200))
    sender: Mapped[str] = mapped_column(String(16))
    credential_id: Mapped[str] = mapped_column(String(64))
    auth_method: Mapped[str] = mapped_column(String(16))
    status: Mapped[MessageStatus] = mapped_column(
        Enum(
            MessageStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    size: Mapped[int]
    content_type: Mapped[str] = mapped_column(String(200), default="")
    business_id: Mapped[str | None] = mapped_column(String(200))
    client_address: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[datetime]
    duration_ms: Mapped[float] = mapped_column(default=0.0)
    detail: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
