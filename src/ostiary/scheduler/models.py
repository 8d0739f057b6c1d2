"""The scheduler's tables: the one lease that says which node runs jobs, and each job's last run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base


class SchedulerLease(Base):
    """Who may run scheduled jobs until ``expires_at``; one row per lease name."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]


class SchedulerJobRun(Base):
    """The last run of one named job (for operators, and a signal tests can wait on)."""

    __tablename__ = "scheduler_job_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    runs: Mapped[int] = mapped_column(default=0)
    last_started_at: Mapped[datetime]
    last_finished_at: Mapped[datetime | None]
    last_node: Mapped[str] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
