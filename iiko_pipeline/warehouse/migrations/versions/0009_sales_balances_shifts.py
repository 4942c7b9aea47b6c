"""Daily sales (OLAP), their per-day totals, stock balance snapshots and cash shifts (issue 15).

OLAP rows and balances carry no id: each row's `external_id` is built from what identifies it (its grouping
values; the snapshot date, store and product), so a re-run of a day lands on the same rows, and a window that no
longer returns a row removes it (these rows are iiko's aggregates, not documents). Cash shifts are upserted by
their id. Each table has an (account, date) index for its windows, and the sales and balances a partial index
of the rows still waiting for their product (see schema.py).

Revision ID: 0009_sales_balances_shifts
Revises: 0008_products_and_employees
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_sales_balances_shifts"
down_revision: str | None = "0008_products_and_employees"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("CURRENT_TIMESTAMP")
IIKO_ID_LOWERCASE_SQL = "external_system <> 'iiko' OR external_id = lower(external_id)"


def _pk() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _money() -> sa.types.TypeEngine:
    return sa.Numeric(28, 9).with_variant(sa.Text(), "sqlite")


def _head() -> list[sa.Column]:
    return [
        sa.Column("id", _pk(), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("external_system", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
    ]


def _tail(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.UniqueConstraint("account_id", "external_system", "external_id",
                            name=f"uq_{table}_account_id_external_system_external_id"),
        sa.CheckConstraint(IIKO_ID_LOWERCASE_SQL, name=f"ck_{table}_iiko_external_id_lowercase"),
    ]


def _link(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}",
                                   ondelete="SET NULL")


def _restaurant() -> list[sa.Column]:
    return [sa.Column("restaurant_id", _pk(), nullable=True),
            sa.Column("restaurant_external_id", sa.String(128), nullable=True)]


def _unlinked(table: str, external: str) -> None:
    where = sa.text(f"product_id IS NULL AND {external} IS NOT NULL")
    op.create_index(f"ix_{table}_unlinked_product", table, ["account_id"], postgresql_where=where,
                    sqlite_where=where)


def upgrade() -> None:
    op.create_table(
        "sales_daily", *_head(), *_restaurant(),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("product_id", _pk(), nullable=True),
        sa.Column("dish_external_id", sa.String(128), nullable=True),
        sa.Column("order_type", sa.Text(), nullable=True),
        sa.Column("pay_types", sa.Text(), nullable=True),
        sa.Column("dish_amount", _money(), nullable=True),
        sa.Column("dish_sum", _money(), nullable=True),
        sa.Column("discount_sum", _money(), nullable=True),
        sa.Column("revenue", _money(), nullable=True),
        sa.Column("cost", _money(), nullable=True),
        *_tail("sales_daily"),
        _link("sales_daily", "restaurant_id", "restaurants"),
        _link("sales_daily", "product_id", "products"),
    )
    op.create_index("ix_sales_daily_account_id_business_date", "sales_daily", ["account_id", "business_date"])
    op.create_index("ix_sales_daily_restaurant_id", "sales_daily", ["restaurant_id"])
    op.create_index("ix_sales_daily_product_id", "sales_daily", ["product_id"])
    _unlinked("sales_daily", "dish_external_id")

    op.create_table(
        "sales_day_totals", *_head(), *_restaurant(),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=True),
        sa.Column("dish_sum", _money(), nullable=True),
        sa.Column("discount_sum", _money(), nullable=True),
        sa.Column("revenue", _money(), nullable=True),
        *_tail("sales_day_totals"),
        _link("sales_day_totals", "restaurant_id", "restaurants"),
    )
    op.create_index("ix_sales_day_totals_account_id_business_date", "sales_day_totals",
                    ["account_id", "business_date"])

    op.create_table(
        "stock_balances", *_head(),
        sa.Column("snapshot_date", sa.Date(), nullable=False),
        sa.Column("store_id", _pk(), nullable=True),
        sa.Column("store_external_id", sa.String(128), nullable=True),
        sa.Column("product_id", _pk(), nullable=True),
        sa.Column("product_external_id", sa.String(128), nullable=True),
        sa.Column("amount", _money(), nullable=True),
        sa.Column("sum", _money(), nullable=True),
        *_tail("stock_balances"),
        _link("stock_balances", "store_id", "stores"),
        _link("stock_balances", "product_id", "products"),
    )
    op.create_index("ix_stock_balances_account_id_snapshot_date", "stock_balances", ["account_id", "snapshot_date"])
    op.create_index("ix_stock_balances_store_id", "stock_balances", ["store_id"])
    _unlinked("stock_balances", "product_external_id")

    op.create_table(
        "cash_shifts", *_head(), *_restaurant(),
        sa.Column("session_number", sa.Integer(), nullable=True),
        sa.Column("fiscal_number", sa.Text(), nullable=True),
        sa.Column("open_date", sa.DateTime(timezone=False), nullable=True),
        sa.Column("open_day", sa.Date(), nullable=False),
        sa.Column("close_date", sa.DateTime(timezone=False), nullable=True),
        sa.Column("accept_date", sa.DateTime(timezone=False), nullable=True),
        *(sa.Column(c, _money(), nullable=True)
          for c in ("sales_cash", "sales_card", "sales_credit", "pay_in", "pay_out", "cash_diff")),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("point_of_sale", sa.Text(), nullable=True),
        sa.Column("extra", sa.Text().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        *_tail("cash_shifts"),
        _link("cash_shifts", "restaurant_id", "restaurants"),
    )
    op.create_index("ix_cash_shifts_account_id_open_day", "cash_shifts", ["account_id", "open_day"])


def downgrade() -> None:
    for table in ("cash_shifts", "stock_balances", "sales_day_totals", "sales_daily"):
        op.drop_table(table)
