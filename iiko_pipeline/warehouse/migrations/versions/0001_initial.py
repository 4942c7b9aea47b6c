"""Initial warehouse schema: credentials, iiko entities, sync state and run log.

Written by hand and self-contained on purpose: a migration must keep producing the same schema even after
``schema.py`` (or its custom types) changes, so nothing is imported from the application. The types below
are what ``ExactDecimal``/``UtcDateTime`` compile to.

Revision ID: 0001_initial
Revises:
Create Date: 2024-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("CURRENT_TIMESTAMP")
IIKO_ID_LOWERCASE_SQL = "external_system <> 'iiko' OR external_id = lower(external_id)"


def _pk() -> sa.types.TypeEngine:
    """BIGINT on PostgreSQL; INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements there)."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _money() -> sa.types.TypeEngine:
    """ExactDecimal: NUMERIC(28, 9) on PostgreSQL, canonical decimal text on SQLite."""
    return sa.Numeric(28, 9).with_variant(sa.Text(), "sqlite")


def _ts() -> sa.types.TypeEngine:
    """UtcDateTime."""
    return sa.DateTime(timezone=True)


def _entity_head() -> list[sa.Column]:
    return [
        sa.Column("id", _pk(), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("external_system", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
    ]


def _entity_tail(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("synced_at", _ts(), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.UniqueConstraint(
            "account_id", "external_system", "external_id",
            name=f"uq_{table}_account_id_external_system_external_id",
        ),
        sa.CheckConstraint(IIKO_ID_LOWERCASE_SQL, name=f"ck_{table}_iiko_external_id_lowercase"),
    ]


def upgrade() -> None:
    op.create_table(
        "account_integration_credentials",
        sa.Column("id", _pk(), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("integration_type", sa.String(32), nullable=False),
        sa.Column("credentials_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("base_url", sa.Text(), nullable=True),
        sa.Column("verify_tls", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("is_connected", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("last_connected_at", _ts(), nullable=True),
        sa.Column("connection_error", sa.Text(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False, server_default=NOW),
        sa.Column("updated_at", _ts(), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_account_integration_credentials"),
        sa.UniqueConstraint(
            "account_id", "integration_type", name="uq_account_integration_credentials_account_id_integration_type"
        ),
    )
    op.create_index(
        "ix_account_integration_credentials_key_id", "account_integration_credentials", ["key_id"]
    )

    op.create_table(
        "restaurants",
        *_entity_head(),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("parent_external_id", sa.String(128), nullable=True),
        sa.Column("taxpayer_id", sa.Text(), nullable=True),
        sa.Column("department_type", sa.String(32), nullable=True),
        *_entity_tail("restaurants"),
    )

    op.create_table(
        "stores",
        *_entity_head(),
        sa.Column("restaurant_id", _pk(), nullable=True),
        sa.Column("restaurant_external_id", sa.String(128), nullable=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        *_entity_tail("stores"),
        sa.ForeignKeyConstraint(
            ["restaurant_id"], ["restaurants.id"], name="fk_stores_restaurant_id_restaurants", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_stores_restaurant_id", "stores", ["restaurant_id"])

    op.create_table(
        "suppliers",
        *_entity_head(),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("taxpayer_id", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("represents_store", sa.Boolean(), nullable=True),
        sa.Column("represented_store_external_id", sa.String(128), nullable=True),
        sa.Column("is_employee", sa.Boolean(), nullable=True),
        sa.Column("is_client", sa.Boolean(), nullable=True),
        *_entity_tail("suppliers"),
    )

    op.create_table(
        "invoices",
        *_entity_head(),
        sa.Column("supplier_id", _pk(), nullable=True),
        sa.Column("supplier_external_id", sa.String(128), nullable=True),
        sa.Column("default_store_id", _pk(), nullable=True),
        sa.Column("default_store_external_id", sa.String(128), nullable=True),
        sa.Column("document_number", sa.Text(), nullable=True),
        sa.Column("incoming_document_number", sa.Text(), nullable=True),
        sa.Column("invoice_number", sa.Text(), nullable=True),
        sa.Column("date_incoming", sa.DateTime(timezone=False), nullable=True),
        sa.Column("date_incoming_offset", sa.String(6), nullable=True),
        sa.Column("document_date", sa.Date(), nullable=False),
        sa.Column("incoming_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("conception_external_id", sa.String(128), nullable=True),
        sa.Column("items_hash", sa.Text(), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("deleted_at", _ts(), nullable=True),
        *_entity_tail("invoices"),
        sa.ForeignKeyConstraint(
            ["supplier_id"], ["suppliers.id"], name="fk_invoices_supplier_id_suppliers", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["default_store_id"], ["stores.id"], name="fk_invoices_default_store_id_stores", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_invoices_account_id_document_date", "invoices", ["account_id", "document_date"])
    op.create_index("ix_invoices_supplier_id", "invoices", ["supplier_id"])
    op.create_index("ix_invoices_default_store_id", "invoices", ["default_store_id"])

    op.create_table(
        "invoice_items",
        sa.Column("id", _pk(), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("invoice_id", _pk(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("product_external_id", sa.String(128), nullable=True),
        sa.Column("product_article", sa.Text(), nullable=True),
        sa.Column("product_code", sa.Text(), nullable=True),
        sa.Column("amount", _money(), nullable=True),
        sa.Column("actual_amount", _money(), nullable=True),
        sa.Column("amount_unit_external_id", sa.String(128), nullable=True),
        sa.Column("price", _money(), nullable=True),
        sa.Column("price_without_vat", _money(), nullable=True),
        sa.Column("sum", _money(), nullable=True),
        sa.Column("vat_percent", _money(), nullable=True),
        sa.Column("vat_sum", _money(), nullable=True),
        sa.Column("discount_sum", _money(), nullable=True),
        sa.Column("store_id", _pk(), nullable=True),
        sa.Column("store_external_id", sa.String(128), nullable=True),
        sa.Column("is_additional_expense", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_invoice_items"),
        sa.UniqueConstraint("invoice_id", "line_number", name="uq_invoice_items_invoice_id_line_number"),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name="fk_invoice_items_invoice_id_invoices", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name="fk_invoice_items_store_id_stores", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_invoice_items_account_id", "invoice_items", ["account_id"])
    op.create_index("ix_invoice_items_store_id", "invoice_items", ["store_id"])

    op.create_table(
        "sync_state",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("watermark", sa.Date(), nullable=True),
        sa.Column("last_success_at", _ts(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_run_id", sa.String(64), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("account_id", "entity", name="pk_sync_state"),
    )

    op.create_table(
        "sync_runs",
        sa.Column("id", _pk(), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("started_at", _ts(), nullable=False, server_default=NOW),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("created", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("updated", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("unchanged", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("deleted", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("errors", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("error_details", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sync_runs"),
    )
    op.create_index("ix_sync_runs_account_id_entity_started_at", "sync_runs", ["account_id", "entity", "started_at"])


def downgrade() -> None:
    op.drop_table("sync_runs")
    op.drop_table("sync_state")
    op.drop_table("invoice_items")
    op.drop_table("invoices")
    op.drop_table("suppliers")
    op.drop_table("stores")
    op.drop_table("restaurants")
    op.drop_table("account_integration_credentials")
