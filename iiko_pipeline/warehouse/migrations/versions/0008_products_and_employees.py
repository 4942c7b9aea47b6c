"""Products, product groups, measure units and employees (issue 14), and invoice lines linked to products.

The three reference lists come from iiko's v2 JSON lists: each row keeps iiko's own `deleted` flag
(`is_deleted`), our vanished marker (`deleted_at`) and every field iiko sent that has no column of its own in
`extra` (JSONB on PostgreSQL, JSON text on SQLite). Products link to their group and main unit, groups to their
parent group, invoice lines to their product and unit: all *soft* links (NULL until the referenced row is held,
filled in when it arrives; see schema.py). Employees keep no contact, card or taxpayer data on purpose.

Existing invoice lines get `product_id` / `amount_unit_id` NULL; the first products sync links them.

Revision ID: 0008_products_and_employees
Revises: 0007_credentials_allow_http
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_products_and_employees"
down_revision: str | None = "0007_credentials_allow_http"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("CURRENT_TIMESTAMP")
IIKO_ID_LOWERCASE_SQL = "external_system <> 'iiko' OR external_id = lower(external_id)"
LINKS = ("product", "amount_unit")


def _unlinked(stem: str) -> sa.TextClause:
    return sa.text(f"{stem}_id IS NULL AND {stem}_external_id IS NOT NULL")


def _pk() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _money() -> sa.types.TypeEngine:
    """ExactDecimal."""
    return sa.Numeric(28, 9).with_variant(sa.Text(), "sqlite")


def _json() -> sa.types.TypeEngine:
    """JsonDocument: JSONB on PostgreSQL, JSON text on SQLite."""
    return sa.Text().with_variant(postgresql.JSONB(), "postgresql")


def _ts() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def _head() -> list[sa.Column]:
    return [
        sa.Column("id", _pk(), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("external_system", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
    ]


def _reference() -> list[sa.Column]:
    return [
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("extra", _json(), nullable=True),
        sa.Column("deleted_at", _ts(), nullable=True),
    ]


def _tail(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("synced_at", _ts(), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.UniqueConstraint("account_id", "external_system", "external_id",
                            name=f"uq_{table}_account_id_external_system_external_id"),
        sa.CheckConstraint(IIKO_ID_LOWERCASE_SQL, name=f"ck_{table}_iiko_external_id_lowercase"),
    ]


def _link(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}",
                                   ondelete="SET NULL")


def upgrade() -> None:
    op.create_table("measure_units", *_head(), *_reference(), *_tail("measure_units"))

    op.create_table(
        "product_groups",
        *_head(),
        sa.Column("parent_id", _pk(), nullable=True),
        sa.Column("parent_external_id", sa.String(128), nullable=True),
        sa.Column("num", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        *_reference(),
        *_tail("product_groups"),
        _link("product_groups", "parent_id", "product_groups"),
    )
    op.create_index("ix_product_groups_parent_id", "product_groups", ["parent_id"])

    op.create_table(
        "products",
        *_head(),
        sa.Column("group_id", _pk(), nullable=True),
        sa.Column("group_external_id", sa.String(128), nullable=True),
        sa.Column("main_unit_id", _pk(), nullable=True),
        sa.Column("main_unit_external_id", sa.String(128), nullable=True),
        sa.Column("num", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("product_type", sa.String(32), nullable=True),
        sa.Column("category_external_id", sa.String(128), nullable=True),
        sa.Column("accounting_category_external_id", sa.String(128), nullable=True),
        sa.Column("tax_category_external_id", sa.String(128), nullable=True),
        sa.Column("default_sale_price", _money(), nullable=True),
        sa.Column("unit_weight", _money(), nullable=True),
        sa.Column("unit_capacity", _money(), nullable=True),
        sa.Column("not_in_store_movement", sa.Boolean(), nullable=True),
        sa.Column("containers", _json(), nullable=True),
        sa.Column("barcodes", _json(), nullable=True),
        *_reference(),
        *_tail("products"),
        _link("products", "group_id", "product_groups"),
        _link("products", "main_unit_id", "measure_units"),
    )
    op.create_index("ix_products_group_id", "products", ["group_id"])
    op.create_index("ix_products_main_unit_id", "products", ["main_unit_id"])

    op.create_table(
        "employees",
        *_head(),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("middle_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("main_role_code", sa.Text(), nullable=True),
        sa.Column("role_codes", _json(), nullable=True),
        sa.Column("department_codes", _json(), nullable=True),
        sa.Column("hire_date", sa.Date(), nullable=True),
        sa.Column("fire_date", sa.Date(), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("is_employee", sa.Boolean(), nullable=True),
        sa.Column("is_supplier", sa.Boolean(), nullable=True),
        sa.Column("is_client", sa.Boolean(), nullable=True),
        sa.Column("deleted_at", _ts(), nullable=True),
        *_tail("employees"),
    )

    with op.batch_alter_table("invoice_items") as batch:
        batch.add_column(sa.Column("product_id", _pk(), nullable=True))
        batch.add_column(sa.Column("amount_unit_id", _pk(), nullable=True))
        batch.create_foreign_key("fk_invoice_items_product_id_products", "products", ["product_id"], ["id"],
                                 ondelete="SET NULL")
        batch.create_foreign_key("fk_invoice_items_amount_unit_id_measure_units", "measure_units",
                                 ["amount_unit_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_invoice_items_product_id", ["product_id"])
        for stem in LINKS:  # the lines a products (units) sync may still link: a small partial index each
            batch.create_index(f"ix_invoice_items_unlinked_{stem}", ["account_id"],
                               postgresql_where=_unlinked(stem), sqlite_where=_unlinked(stem))


def downgrade() -> None:
    with op.batch_alter_table("invoice_items") as batch:
        for stem in LINKS:
            batch.drop_index(f"ix_invoice_items_unlinked_{stem}")
        batch.drop_index("ix_invoice_items_product_id")
        batch.drop_constraint("fk_invoice_items_amount_unit_id_measure_units", type_="foreignkey")
        batch.drop_constraint("fk_invoice_items_product_id_products", type_="foreignkey")
        batch.drop_column("amount_unit_id")
        batch.drop_column("product_id")
    op.drop_table("employees")
    op.drop_table("products")
    op.drop_table("product_groups")
    op.drop_table("measure_units")
