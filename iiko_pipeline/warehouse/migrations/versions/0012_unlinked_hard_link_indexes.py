"""Partial indexes of the rows that name a parent they are not linked to, for the three tables that grow with an
account's history (invoice lines, daily sales, stock balances).

`quality.dangling_references` looks for such rows after every run. SQLite keeps no statistics here, so it read the
account's whole table through its `account_id` index: 0.9 s of an hourly run of a `large` account with a year of
invoice lines (bench, 2026-12-03). These indexes hold only the rows the check reports, normally none.

Revision ID: 0012_unlinked_hard_link_indexes
Revises: 0011_account_labels
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_unlinked_hard_link_indexes"
down_revision: str | None = "0011_account_labels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, link column, the column holding iiko's id of the linked row)
HARD_LINKS = (("invoice_items", "store_id", "store_external_id"),
              ("sales_daily", "restaurant_id", "restaurant_external_id"),
              ("stock_balances", "store_id", "store_external_id"))


def _name(table: str, link: str) -> str:
    return f"ix_{table}_unlinked_{link.removesuffix('_id')}"


def upgrade() -> None:
    for table, link, external in HARD_LINKS:
        where = sa.text(f"{link} IS NULL AND {external} IS NOT NULL")
        op.create_index(_name(table, link), table, ["account_id"], postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for table, link, _external in HARD_LINKS:
        op.drop_index(_name(table, link), table_name=table)
