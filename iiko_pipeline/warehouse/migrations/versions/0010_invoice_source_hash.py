"""Keep a hash of each invoice as iiko answered it, so an edited window re-writes only its edited documents.

An hourly run re-reads two weeks of invoices. When a window's answer changed (one document edited), every
document in it used to be adapted, staged and merged again; with the document's own hash stored beside it, the
frame step passes on only the documents whose hash differs (`frames.build_frames`). Existing rows get NULL:
each is written once more the next time its window changes, which stores its hash.

Revision ID: 0010_invoice_source_hash
Revises: 0009_sales_balances_shifts
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_invoice_source_hash"
down_revision: str | None = "0009_sales_balances_shifts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(sa.Column("source_hash", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoices") as batch:
        batch.drop_column("source_hash")
