"""The mail outbox table: every mail is written here in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base


class OutboxMail(Base):
    """One outgoing mail; ``sent_at`` is set once a transport accepted it."""

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Not tried again before this (backoff); set when an attempt claims the mail.
    next_attempt_at: Mapped[datetime | None]
