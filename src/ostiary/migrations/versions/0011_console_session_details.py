"""console sessions: last seen, address and user agent (the sessions list)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

Every new column is nullable, so old code keeps creating sessions during a rolling upgrade;
sessions from before the upgrade show no address until they are next used. The public
session ID is derived from the stored keyed hash (``ostiary.identity.sessions``), so no
column is needed for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("address", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("user_agent", sa.String(length=300), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.drop_column("user_agent")
        batch_op.drop_column("address")
        batch_op.drop_column("last_seen_at")
