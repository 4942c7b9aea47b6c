"""Documents iiko returned that could not be stored yet, so they are retried instead of falling behind the watermark.

Before this revision a window whose documents were rejected (a supplier we did not hold yet) still moved the
invoice watermark, and incremental runs never looked at those dates again: the documents were lost. Each
rejected document now has a row here (reason, kind, attempts) until a later run stores it or iiko stops
returning it; incremental runs re-read the dates of due rows, however far behind the lookback they lie.

Revision ID: 0004_sync_pending
Revises: 0003_sync_windows
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_sync_pending"
down_revision: str | None = "0003_sync_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_pending",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("date_from", sa.Date(), nullable=False),
        sa.Column("date_to", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "entity", "external_id", name="pk_sync_pending"),
    )


def downgrade() -> None:
    op.drop_table("sync_pending")
