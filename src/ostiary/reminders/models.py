"""The record of reminders sent: its UNIQUE constraint makes each one happen once across nodes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base


class CredentialReminder(Base):
    """One (credential, threshold) that has been dealt with.

    ``mailed`` is false for the farther thresholds of a credential first seen inside
    several: they are recorded so no later run mails them, but only the nearest was mailed.
    """

    __tablename__ = "credential_reminders"
    __table_args__ = (UniqueConstraint("credential_id", "threshold_days"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    credential_id: Mapped[str] = mapped_column(String(200))
    threshold_days: Mapped[int]
    user_id: Mapped[str] = mapped_column(String(16), index=True)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
    mailed: Mapped[bool] = mapped_column(default=True)
    recipients: Mapped[str] = mapped_column(Text, default="")
