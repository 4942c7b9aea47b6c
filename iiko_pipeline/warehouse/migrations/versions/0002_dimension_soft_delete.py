"""Soft delete for dimensions: `deleted_at` on restaurants, stores and suppliers.

iiko has no deleted flag on departments or stores (and suppliers' own `deleted` flag is a different thing:
iiko still returns those), so a row that the full reload no longer returns gets `deleted_at` set instead of
being removed: platform rows that join to it keep working, and the row is revived if it shows up again.

Revision ID: 0002_dimension_soft_delete
Revises: 0001_initial
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_dimension_soft_delete"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("restaurants", "stores", "suppliers")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("deleted_at")
