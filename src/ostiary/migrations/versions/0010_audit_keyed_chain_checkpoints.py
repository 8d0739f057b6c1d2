"""audit: keyed chain (content and chain MACs), signed checkpoints

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-02

Migrations must stay backward compatible with the previous release (old code keeps running
during a rolling upgrade) and take only short locks: add nullable columns or ones with a
server default, create indexes concurrently on PostgreSQL where tables are large, and never
rename or drop in the same release that stops using a column.

Existing events are **re-chained at upgrade**, not versioned: an old, unkeyed event could
otherwise be rewritten with a recomputed SHA-256 forever, and erasure could not rewrite it.
Before re-chaining, the old SHA-256 chain is checked; the outcome (intact or the first
broken event, the old head hash and count) goes into a last ``audit:chain:rekeyed`` event,
itself keyed, so a break that happened before the upgrade is not laundered silently.
This needs the secret key: ``ostiary db upgrade`` and ``ostiary serve`` hand it in
(``ostiary.migrate.upgrade(..., secret_key=...)``); an empty trail needs none.

Old writers must be stopped for this upgrade (the re-chain holds the migration lock, and an
event written by old code has no ``content_mac`` and would fail ``ostiary audit verify``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GENESIS = "0" * 64


def _legacy_digest(prev_hash: str, row: Any) -> str:
    """The unkeyed SHA-256 of releases before 0010, frozen here."""
    occurred_at = row.occurred_at
    if isinstance(occurred_at, str):  # SQLite hands back text on a bare connection
        occurred_at = datetime.fromisoformat(occurred_at)
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    detail = json.loads(row.detail) if isinstance(row.detail, str) else row.detail
    canonical = json.dumps(
        [
            prev_hash,
            occurred_at.astimezone(UTC).isoformat(),
            row.actor,
            row.action,
            row.subdomain,
            row.target,
            detail,
        ],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("head_event_id", sa.Integer(), nullable=True),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_checkpoints_created_at"), ["created_at"], unique=False
        )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("content_mac", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("redacted_mac", sa.String(length=64), nullable=True))
    _rechain()


def _rechain() -> None:
    """Check the old chain, then give every event its MACs and append the rekey event."""
    from ostiary.audit.chain import ChainKeys, Content
    from ostiary.db import UTCDateTime

    bind = op.get_bind()
    events = sa.table(
        "audit_events",
        sa.column("id", sa.Integer()),
        sa.column("occurred_at", UTCDateTime()),
        sa.column("actor", sa.String()),
        sa.column("action", sa.String()),
        sa.column("subdomain", sa.String()),
        sa.column("target", sa.String()),
        sa.column("detail", sa.JSON()),
        sa.column("content_mac", sa.String()),
        sa.column("redacted_mac", sa.String()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    rows = list(bind.execute(sa.select(events).order_by(events.c.id)))
    if not rows:
        return
    secret_key = context.config.attributes.get("secret_key")
    if not secret_key:
        raise RuntimeError(
            "re-chaining the existing audit events needs the secret key: run "
            "`ostiary db upgrade` with the installation's OSTIARY_SECRET_KEY / data dir"
        )
    keys = ChainKeys(secret_key)
    legacy_prev, first_broken = _GENESIS, None
    prev = _GENESIS
    for row in rows:
        if first_broken is None and (
            row.prev_hash != legacy_prev or row.hash != _legacy_digest(legacy_prev, row)
        ):
            first_broken = row.id
        legacy_prev = row.hash
        content = Content(
            occurred_at=row.occurred_at,
            actor=row.actor,
            action=row.action,
            subdomain=row.subdomain,
            target=row.target,
            detail=row.detail,
        )
        mac = keys.content_mac(content)
        link = keys.link(prev, mac)
        bind.execute(
            events.update()
            .where(events.c.id == row.id)
            .values(content_mac=mac, prev_hash=prev, hash=link)
        )
        prev = link
    content = Content(
        occurred_at=datetime.now(UTC),
        actor="system",
        action="audit:chain:rekeyed",
        subdomain=None,
        target="audit_events",
        detail={
            "after": {
                "legacy_events": len(rows),
                "legacy_head_hash": legacy_prev,
                "legacy_intact": first_broken is None,
                "legacy_first_broken_id": first_broken,
            }
        },
    )
    mac = keys.content_mac(content)
    bind.execute(
        events.insert().values(
            occurred_at=content.occurred_at,
            actor=content.actor,
            action=content.action,
            subdomain=None,
            target=content.target,
            detail=content.detail,
            content_mac=mac,
            redacted_mac=None,
            prev_hash=prev,
            hash=keys.link(prev, mac),
        )
    )


def downgrade() -> None:
    """Revert this migration (the old code's SHA-256 chain is not rebuilt: after a
    downgrade ``audit verify`` of that release reports the re-chained events)."""
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("redacted_mac")
        batch_op.drop_column("content_mac")
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoints_created_at"))
    op.drop_table("audit_checkpoints")
