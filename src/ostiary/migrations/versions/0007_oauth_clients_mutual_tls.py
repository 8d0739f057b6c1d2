"""oauth clients: RFC 8705 mutual-TLS client authentication

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09

Migrations must stay backward compatible with the previous release (old code keeps running
during a rolling upgrade) and take only short locks: add nullable columns or ones with a
server default, create indexes concurrently on PostgreSQL where tables are large, and never
rename or drop in the same release that stops using a column.

Every new column is nullable: existing clients (``NULL`` method) keep their secrets and
``private_key_jwt`` keys, and old code ignores the columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "token_endpoint_auth_method",
                sa.Enum(
                    "client_secret_basic",
                    "client_secret_post",
                    "private_key_jwt",
                    "tls_client_auth",
                    "self_signed_tls_client_auth",
                    name="authmethod",
                    native_enum=False,
                    length=32,
                ),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("tls_client_auth_subject_dn", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("certificate_pem", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("certificate_fingerprint", sa.String(length=64), nullable=True)
        )


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.drop_column("certificate_fingerprint")
        batch_op.drop_column("certificate_pem")
        batch_op.drop_column("tls_client_auth_subject_dn")
        batch_op.drop_column("token_endpoint_auth_method")
