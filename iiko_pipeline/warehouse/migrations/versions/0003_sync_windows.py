"""Fingerprints of committed export windows, so an hourly run can skip windows whose answer did not change.

One row per account, entity and window: the SHA-256 of the exact answer (plus the adapter's version) that was
last committed in full. A window whose new answer has the same fingerprint holds the same documents, so
parsing, adapting and upserting it again would write nothing; the run skips that work and says so.

Revision ID: 0003_sync_windows
Revises: 0002_dimension_soft_delete
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_sync_windows"
down_revision: str | None = "0002_dimension_soft_delete"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_windows",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("date_from", sa.Date(), nullable=False),
        sa.Column("date_to", sa.Date(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "entity", "date_from", "date_to", name="pk_sync_windows"),
    )


def downgrade() -> None:
    op.drop_table("sync_windows")
