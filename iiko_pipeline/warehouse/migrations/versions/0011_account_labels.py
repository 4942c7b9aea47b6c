"""A display name per account, set by an operator on the management pages.

Kept apart from `account_integration_credentials` so that disconnecting (which deletes the credentials) does not
lose it.

Revision ID: 0011_account_labels
Revises: 0010_invoice_source_hash
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_account_labels"
down_revision: str | None = "0010_invoice_source_hash"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_labels",
        sa.Column("account_id", sa.Uuid(), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("CURRENT_TIMESTAMP")),
    )


def downgrade() -> None:
    op.drop_table("account_labels")
