"""The warehouse schema (SQLAlchemy Core): the contract the platform reads.

Design choices, so they are not undone by accident:

- Entity tables are keyed internally by a surrogate ``id`` and externally by
  ``(account_id, external_system, external_id)``. One iiko server may be connected to several accounts,
  and a second POS is just another ``external_system`` value, so an external id alone is not unique.
- Foreign keys use the internal ids; the ``*_external_id`` columns are kept as well, so rows can be loaded
  before their parents and re-linked later, and nothing the source said is lost.
- Money and quantities use :class:`ExactDecimal` (no digit lost on SQLite); points in time use
  :class:`UtcDateTime` (aware UTC on both backends).
- ``invoices.date_incoming`` is the naive local timestamp iiko prints, with the offset (if iiko printed
  one) kept separately in ``date_incoming_offset``: no time zone is invented.
- Links to reference data (a product's group and unit, an invoice line's product and unit) are *soft*
  (``SOFT_LINK``): a row whose referenced row we do not hold yet is stored with the link NULL and reported, and
  linked when that row arrives; the hard links (a store's restaurant, an invoice's supplier) reject the row.
- Personal data is left out on purpose: employees keep names, codes, roles, departments and dates, never phone,
  e-mail, address, birthday, taxpayer number or card numbers (they stay in the raw answer only, which ages out).
- Bookkeeping columns (``synced_at``, ``updated_at``) are separate from data columns so upserts can
  compare data only (performance notes §5.3).

Every change here needs a new Alembic revision in ``migrations/versions``; a test compares the migrated
database with this metadata on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

from .sqltypes import ExactDecimal, JsonDocument, UtcDateTime

#: Deterministic constraint names: Alembic batch mode on SQLite and later migrations refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: Surrogate keys: BIGINT on PostgreSQL; plain INTEGER on SQLite, where only ``INTEGER PRIMARY KEY``
#: is the auto-incrementing rowid alias.
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: Portable "now" for server defaults (both backends understand it; SQLite stores UTC text).
NOW = sa.text("CURRENT_TIMESTAMP")

#: Lengths of short identifier columns.
EXTERNAL_SYSTEM_LEN = 32
EXTERNAL_ID_LEN = 128
INTEGRATION_TYPE_LEN = 32
KEY_ID_LEN = 16
ENTITY_LEN = 32

#: The integration type / external system written for iiko.
IIKO = "iiko"

#: Check constraint shared by entity tables (the migration repeats the same text).
IIKO_ID_LOWERCASE_SQL = "external_system <> 'iiko' OR external_id = lower(external_id)"


def _entity_columns() -> list[sa.Column]:
    """The identity columns every synced entity table starts with."""
    return [
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("external_system", sa.String(EXTERNAL_SYSTEM_LEN), nullable=False),
        sa.Column("external_id", sa.String(EXTERNAL_ID_LEN), nullable=False),
    ]


#: Marks a foreign key as a soft link (see the module docstring): `entities.parent_refs` leaves it out (it never
#: rejects a row), `entities.soft_refs` resolves it on upsert and again when the referenced entity syncs.
SOFT_LINK = {"link": "soft"}


def _soft_link(name: str, target: str, external: str | None = None) -> sa.Column:
    """`external`: the column holding iiko's id, when not `<name without _id>_external_id` (a sale's dish)."""
    info = dict(SOFT_LINK) | ({"external": external} if external else {})
    return sa.Column(name, BigIntPK, sa.ForeignKey(f"{target}.id", ondelete="SET NULL"), nullable=True, info=info)


def _unlinked_index(table: str, link: str, external: str) -> sa.Index:
    """A partial index of the rows that name a row they are not linked to. For a soft link, the rows waiting for
    it: what `entities.relink` reads when the linked entity syncs and `quality.unlinked_rows` warns about (a few
    rows once links resolve on write, instead of every row of the account). For a hard link, rows that should not
    exist: `quality.dangling_references` checks for them after every run, and without this index SQLite (which
    has no statistics to choose by) read every row of the account for it, seconds per run at a year of lines."""
    where = sa.text(f"{link} IS NULL AND {external} IS NOT NULL")
    return sa.Index(f"ix_{table}_unlinked_{link.removesuffix('_id')}", "account_id", postgresql_where=where,
                    sqlite_where=where)


def _reference_columns() -> list[sa.Column]:
    """What the v2 JSON lists share: code, name, iiko's own deleted flag, and everything else iiko sent."""
    return [
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        # iiko's own flag (the list is read with includeDeleted=true); `deleted_at`: vanished from the list.
        sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        # Every field iiko sent that has no column of its own (documented or new), as JSON: nothing is lost.
        sa.Column("extra", JsonDocument(), nullable=True),
        sa.Column("deleted_at", UtcDateTime(), nullable=True),
    ]


def _entity_tail() -> list[sa.SchemaItem]:
    """``synced_at`` plus the natural-key constraints shared by all entity tables.

    iiko GUIDs must be stored lower-case (iiko prints either case), or the unique key would let one
    document in twice; other systems' ids may be case-sensitive, so the check is scoped to iiko.
    """
    return [
        sa.Column("synced_at", UtcDateTime(), nullable=False, server_default=NOW),
        sa.UniqueConstraint("account_id", "external_system", "external_id"),
        sa.CheckConstraint(IIKO_ID_LOWERCASE_SQL, name="iiko_external_id_lowercase"),
    ]


account_integration_credentials = sa.Table(
    "account_integration_credentials",
    metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.Uuid(), nullable=False),
    sa.Column("integration_type", sa.String(INTEGRATION_TYPE_LEN), nullable=False),
    # One envelope (crypto.py) holding JSON {"username", "password"}; never plaintext.
    sa.Column("credentials_ciphertext", sa.LargeBinary(), nullable=False),
    # Denormalised from the envelope so "which rows still use key X" is a plain query.
    # NULL only for legacy fixed-nonce rows imported from the old platform.
    sa.Column("key_id", sa.String(KEY_ID_LEN), nullable=True),
    # NULL: use the default server URL of the integration (decided by the caller).
    sa.Column("base_url", sa.Text(), nullable=True),
    sa.Column("verify_tls", sa.Boolean(), nullable=False, server_default=sa.true()),
    # The CA bundle (PEM) the account's server is verified against, when not the system CAs (0006).
    sa.Column("ca_bundle", sa.Text(), nullable=True),
    # The account's explicit opt-in to plain http to a non-loopback host (0007); see iiko_pipeline.iiko.hosts.
    sa.Column("allow_http", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("is_connected", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("last_connected_at", UtcDateTime(), nullable=True),
    sa.Column("connection_error", sa.Text(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False, server_default=NOW),
    sa.Column("updated_at", UtcDateTime(), nullable=False, server_default=NOW),
    sa.UniqueConstraint("account_id", "integration_type"),
    sa.Index(None, "key_id"),
)

restaurants = sa.Table(
    "restaurants",
    metadata,
    *_entity_columns(),
    sa.Column("code", sa.Text(), nullable=True),
    sa.Column("name", sa.Text(), nullable=True),
    sa.Column("parent_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("taxpayer_id", sa.Text(), nullable=True),
    sa.Column("department_type", sa.String(32), nullable=True),
    # Set when a full reload no longer returns the row (iiko has no deleted flag here); NULL again if it returns.
    sa.Column("deleted_at", UtcDateTime(), nullable=True),
    *_entity_tail(),
)

stores = sa.Table(
    "stores",
    metadata,
    *_entity_columns(),
    sa.Column(
        "restaurant_id", BigIntPK, sa.ForeignKey("restaurants.id", ondelete="SET NULL"), nullable=True
    ),
    sa.Column("restaurant_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("code", sa.Text(), nullable=True),
    sa.Column("name", sa.Text(), nullable=True),
    sa.Column("deleted_at", UtcDateTime(), nullable=True),
    *_entity_tail(),
    sa.Index(None, "restaurant_id"),
)

suppliers = sa.Table(
    "suppliers",
    metadata,
    *_entity_columns(),
    sa.Column("code", sa.Text(), nullable=True),
    sa.Column("name", sa.Text(), nullable=True),
    sa.Column("taxpayer_id", sa.Text(), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
    sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
    # iiko omits these flags on many servers: NULL means "iiko did not say", not false.
    sa.Column("represents_store", sa.Boolean(), nullable=True),
    sa.Column("represented_store_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("is_employee", sa.Boolean(), nullable=True),
    sa.Column("is_client", sa.Boolean(), nullable=True),
    # Vanished from iiko's list (distinct from is_deleted, which is iiko's own flag on a listed supplier).
    sa.Column("deleted_at", UtcDateTime(), nullable=True),
    *_entity_tail(),
)

invoices = sa.Table(
    "invoices",
    metadata,
    *_entity_columns(),
    sa.Column("supplier_id", BigIntPK, sa.ForeignKey("suppliers.id", ondelete="SET NULL"), nullable=True),
    sa.Column("supplier_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("default_store_id", BigIntPK, sa.ForeignKey("stores.id", ondelete="SET NULL"), nullable=True),
    sa.Column("default_store_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("document_number", sa.Text(), nullable=True),
    sa.Column("incoming_document_number", sa.Text(), nullable=True),
    sa.Column("invoice_number", sa.Text(), nullable=True),
    # The local wall-clock time iiko printed, and its offset when iiko printed one (e.g. "+03:00").
    sa.Column("date_incoming", sa.DateTime(timezone=False), nullable=True),
    sa.Column("date_incoming_offset", sa.String(6), nullable=True),
    # The accounting date: windows, re-exports and deletion detection are scoped by it.
    sa.Column("document_date", sa.Date(), nullable=False),
    sa.Column("incoming_date", sa.Date(), nullable=True),
    sa.Column("due_date", sa.Date(), nullable=True),
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("comment", sa.Text(), nullable=True),
    sa.Column("conception_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    # Hash of the normalised line items: lines are replaced only for invoices whose hash changed.
    sa.Column("items_hash", sa.Text(), nullable=True),
    # Hash of the document as iiko answered it (and the adapter version): inside a window whose answer changed,
    # a live document with the same hash is not adapted, staged or merged again (`frames.build_frames`).
    sa.Column("source_hash", sa.String(32), nullable=True),
    # Soft delete: vanished from a re-exported window (iiko's own DELETED lives in `status`).
    sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("deleted_at", UtcDateTime(), nullable=True),
    *_entity_tail(),
    sa.Index(None, "account_id", "document_date"),
    sa.Index(None, "supplier_id"),
    sa.Index(None, "default_store_id"),
)

invoice_items = sa.Table(
    "invoice_items",
    metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.Uuid(), nullable=False),
    sa.Column(
        "invoice_id", BigIntPK, sa.ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("line_number", sa.Integer(), nullable=False),
    _soft_link("product_id", "products"),
    sa.Column("product_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("product_article", sa.Text(), nullable=True),
    sa.Column("product_code", sa.Text(), nullable=True),
    sa.Column("amount", ExactDecimal(), nullable=True),
    sa.Column("actual_amount", ExactDecimal(), nullable=True),
    _soft_link("amount_unit_id", "measure_units"),
    sa.Column("amount_unit_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("price", ExactDecimal(), nullable=True),
    sa.Column("price_without_vat", ExactDecimal(), nullable=True),
    sa.Column("sum", ExactDecimal(), nullable=True),
    sa.Column("vat_percent", ExactDecimal(), nullable=True),
    sa.Column("vat_sum", ExactDecimal(), nullable=True),
    sa.Column("discount_sum", ExactDecimal(), nullable=True),
    sa.Column("store_id", BigIntPK, sa.ForeignKey("stores.id", ondelete="SET NULL"), nullable=True),
    sa.Column("store_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("is_additional_expense", sa.Boolean(), nullable=True),
    sa.UniqueConstraint("invoice_id", "line_number"),
    sa.Index(None, "account_id"),
    sa.Index(None, "store_id"),
    sa.Index(None, "product_id"),
    # The lines a products (units) sync may link (`entities.relink`): few once products have synced, so the
    # nightly re-link reads these instead of every line of the account.
    *(_unlinked_index("invoice_items", f"{stem}_id", f"{stem}_external_id") for stem in ("product", "amount_unit")),
    _unlinked_index("invoice_items", "store_id", "store_external_id"),  # a hard link: for its check
)

measure_units = sa.Table(
    "measure_units",
    metadata,
    *_entity_columns(),
    *_reference_columns(),
    *_entity_tail(),
)

product_groups = sa.Table(
    "product_groups",
    metadata,
    *_entity_columns(),
    _soft_link("parent_id", "product_groups"),
    sa.Column("parent_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("num", sa.Text(), nullable=True),
    sa.Column("description", sa.Text(), nullable=True),
    *_reference_columns(),
    *_entity_tail(),
    sa.Index(None, "parent_id"),
)

products = sa.Table(
    "products",
    metadata,
    *_entity_columns(),
    _soft_link("group_id", "product_groups"),
    sa.Column("group_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    _soft_link("main_unit_id", "measure_units"),
    sa.Column("main_unit_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("num", sa.Text(), nullable=True),  # the article
    sa.Column("description", sa.Text(), nullable=True),
    # GOODS, DISH, PREPARED, SERVICE, MODIFIER, OUTER, RATE (kept as sent, upper-cased)
    sa.Column("product_type", sa.String(32), nullable=True),
    sa.Column("category_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("accounting_category_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("tax_category_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("default_sale_price", ExactDecimal(), nullable=True),
    sa.Column("unit_weight", ExactDecimal(), nullable=True),
    sa.Column("unit_capacity", ExactDecimal(), nullable=True),
    sa.Column("not_in_store_movement", sa.Boolean(), nullable=True),
    # NULL where the server version does not send them (containers before 6.2.4, barcodes before 8.7.1).
    sa.Column("containers", JsonDocument(), nullable=True),
    sa.Column("barcodes", JsonDocument(), nullable=True),
    *_reference_columns(),
    *_entity_tail(),
    sa.Index(None, "group_id"),
    sa.Index(None, "main_unit_id"),
)

employees = sa.Table(
    "employees",
    metadata,
    *_entity_columns(),
    sa.Column("code", sa.Text(), nullable=True),
    sa.Column("name", sa.Text(), nullable=True),
    sa.Column("first_name", sa.Text(), nullable=True),
    sa.Column("middle_name", sa.Text(), nullable=True),
    sa.Column("last_name", sa.Text(), nullable=True),
    sa.Column("main_role_code", sa.Text(), nullable=True),
    sa.Column("role_codes", JsonDocument(), nullable=True),  # a JSON array of role codes
    sa.Column("department_codes", JsonDocument(), nullable=True),  # a JSON array of department codes
    sa.Column("hire_date", sa.Date(), nullable=True),
    sa.Column("fire_date", sa.Date(), nullable=True),
    sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
    # iiko omits these flags on some servers: NULL means "iiko did not say", as on suppliers.
    sa.Column("is_employee", sa.Boolean(), nullable=True),
    sa.Column("is_supplier", sa.Boolean(), nullable=True),
    sa.Column("is_client", sa.Boolean(), nullable=True),
    sa.Column("deleted_at", UtcDateTime(), nullable=True),
    *_entity_tail(),
)

# --- reports and shifts (issue 15): rows keyed by what iiko groups them by, dated for their windows ---------------

sales_daily = sa.Table(
    "sales_daily",
    metadata,
    # external_id: a digest of the row's grouping values (department, business day, dish, order type, pay types):
    # OLAP rows carry no id, and a re-run of a day must land on the same rows.
    *_entity_columns(),
    sa.Column("restaurant_id", BigIntPK, sa.ForeignKey("restaurants.id", ondelete="SET NULL"), nullable=True),
    sa.Column("restaurant_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    # The cash shift's business day (OLAP `OpenDate.Typed`), not the order's calendar date.
    sa.Column("business_date", sa.Date(), nullable=False),
    _soft_link("product_id", "products", external="dish_external_id"),
    sa.Column("dish_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("order_type", sa.Text(), nullable=True),
    sa.Column("pay_types", sa.Text(), nullable=True),
    sa.Column("dish_amount", ExactDecimal(), nullable=True),
    # dish_sum: before discount (OLAP DishSumInt); revenue: after it (DishDiscountSumInt); discount_sum: the
    # difference, the discount itself.
    sa.Column("dish_sum", ExactDecimal(), nullable=True),
    sa.Column("discount_sum", ExactDecimal(), nullable=True),
    sa.Column("revenue", ExactDecimal(), nullable=True),
    sa.Column("cost", ExactDecimal(), nullable=True),
    *_entity_tail(),
    sa.Index(None, "account_id", "business_date"),
    sa.Index(None, "restaurant_id"),
    sa.Index(None, "product_id"),
    _unlinked_index("sales_daily", "product_id", "dish_external_id"),
    _unlinked_index("sales_daily", "restaurant_id", "restaurant_external_id"),  # a hard link: for its check
)

sales_day_totals = sa.Table(
    "sales_day_totals",
    metadata,
    # external_id: "<business date>|<department id>". The coarse OLAP query (department x business day): unique
    # orders, and the sums the detailed rows of the same day must add up to.
    *_entity_columns(),
    sa.Column("restaurant_id", BigIntPK, sa.ForeignKey("restaurants.id", ondelete="SET NULL"), nullable=True),
    sa.Column("restaurant_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("business_date", sa.Date(), nullable=False),
    sa.Column("orders", sa.Integer(), nullable=True),
    sa.Column("dish_sum", ExactDecimal(), nullable=True),
    sa.Column("discount_sum", ExactDecimal(), nullable=True),
    sa.Column("revenue", ExactDecimal(), nullable=True),
    *_entity_tail(),
    sa.Index(None, "account_id", "business_date"),
)

stock_balances = sa.Table(
    "stock_balances",
    metadata,
    # external_id: "<snapshot date>|<store id>|<product id>". One snapshot per store and product at the end of each
    # business day; iiko keeps none, so this table is the history. Zero balances are absent, as iiko omits them.
    *_entity_columns(),
    sa.Column("snapshot_date", sa.Date(), nullable=False),
    sa.Column("store_id", BigIntPK, sa.ForeignKey("stores.id", ondelete="SET NULL"), nullable=True),
    sa.Column("store_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    _soft_link("product_id", "products"),
    sa.Column("product_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("amount", ExactDecimal(), nullable=True),
    sa.Column("sum", ExactDecimal(), nullable=True),
    *_entity_tail(),
    sa.Index(None, "account_id", "snapshot_date"),
    sa.Index(None, "store_id"),
    _unlinked_index("stock_balances", "product_id", "product_external_id"),
    _unlinked_index("stock_balances", "store_id", "store_external_id"),  # a hard link: for its check
)

cash_shifts = sa.Table(
    "cash_shifts",
    metadata,
    *_entity_columns(),
    sa.Column("restaurant_id", BigIntPK, sa.ForeignKey("restaurants.id", ondelete="SET NULL"), nullable=True),
    sa.Column("restaurant_external_id", sa.String(EXTERNAL_ID_LEN), nullable=True),
    sa.Column("session_number", sa.Integer(), nullable=True),
    sa.Column("fiscal_number", sa.Text(), nullable=True),
    # Local wall-clock times as iiko prints them (like invoices' date_incoming); open_day dates the windows.
    sa.Column("open_date", sa.DateTime(timezone=False), nullable=True),
    sa.Column("open_day", sa.Date(), nullable=False),
    sa.Column("close_date", sa.DateTime(timezone=False), nullable=True),
    sa.Column("accept_date", sa.DateTime(timezone=False), nullable=True),
    sa.Column("sales_cash", ExactDecimal(), nullable=True),
    sa.Column("sales_card", ExactDecimal(), nullable=True),
    sa.Column("sales_credit", ExactDecimal(), nullable=True),
    sa.Column("pay_in", ExactDecimal(), nullable=True),
    sa.Column("pay_out", ExactDecimal(), nullable=True),
    sa.Column("cash_diff", ExactDecimal(), nullable=True),
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("point_of_sale", sa.Text(), nullable=True),
    sa.Column("extra", JsonDocument(), nullable=True),
    *_entity_tail(),
    sa.Index(None, "account_id", "open_day"),
)

sync_state = sa.Table(
    "sync_state",
    metadata,
    sa.Column("account_id", sa.Uuid(), primary_key=True),
    sa.Column("entity", sa.String(ENTITY_LEN), primary_key=True),
    # Per-account, per-entity position only (a few values, never per-row hashes: notes §10.1.3).
    sa.Column("watermark", sa.Date(), nullable=True),
    sa.Column("last_success_at", UtcDateTime(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("last_run_id", sa.String(64), nullable=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False, server_default=NOW),
)

sync_runs = sa.Table(
    "sync_runs",
    metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.Uuid(), nullable=False),
    sa.Column("entity", sa.String(ENTITY_LEN), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("started_at", UtcDateTime(), nullable=False, server_default=NOW),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("total", sa.Integer(), nullable=False, server_default=sa.text("0")),
    sa.Column("created", sa.Integer(), nullable=False, server_default=sa.text("0")),
    sa.Column("updated", sa.Integer(), nullable=False, server_default=sa.text("0")),
    sa.Column("unchanged", sa.Integer(), nullable=False, server_default=sa.text("0")),
    sa.Column("deleted", sa.Integer(), nullable=False, server_default=sa.text("0")),
    sa.Column("errors", sa.Integer(), nullable=False, server_default=sa.text("0")),
    # JSON list of {"external_id", "error"} objects; text so both backends store it the same way.
    sa.Column("error_details", sa.Text(), nullable=True),
    sa.Index(None, "account_id", "entity", "started_at"),
)

#: Synced entity tables in dependency order (parents first).
ENTITY_TABLES: tuple[sa.Table, ...] = (restaurants, stores, suppliers, measure_units, product_groups, products,
                                       employees, invoices, invoice_items, sales_day_totals, sales_daily,
                                       stock_balances, cash_shifts)

sync_windows = sa.Table(
    "sync_windows",
    metadata,
    # The fingerprint of the answer last committed in full for one export window (see migration 0003).
    sa.Column("account_id", sa.Uuid(), primary_key=True),
    sa.Column("entity", sa.String(ENTITY_LEN), primary_key=True),
    sa.Column("date_from", sa.Date(), primary_key=True),
    sa.Column("date_to", sa.Date(), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("committed_at", UtcDateTime(), nullable=False),
)

sync_pending = sa.Table(
    "sync_pending",
    metadata,
    # A document iiko returned that we could not store (a missing reference, or data the adapter refused):
    # it stays here, with its reason, until a later run stores it or iiko no longer returns it. Incremental
    # runs re-read the dates of due entries even when they lie behind the lookback (migration 0004).
    sa.Column("account_id", sa.Uuid(), primary_key=True),
    sa.Column("entity", sa.String(ENTITY_LEN), primary_key=True),
    sa.Column("external_id", sa.String(EXTERNAL_ID_LEN), primary_key=True),
    # The document's date when known, else the export window it came in: the range a retry re-reads.
    sa.Column("date_from", sa.Date(), nullable=False),
    sa.Column("date_to", sa.Date(), nullable=False),
    # "reference": a parent we do not hold yet (retried as soon as reference data syncs); "data": iiko sent
    # something the adapter refuses (retried with a back-off, in case the document is corrected in iiko).
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("1")),
    sa.Column("first_seen_at", UtcDateTime(), nullable=False),
    sa.Column("last_attempt_at", UtcDateTime(), nullable=False),
)

account_run_locks = sa.Table(
    "account_run_locks",
    metadata,
    # At most one sync run per account across every process (API, CLI, Dagster run workers): the primary key
    # makes taking it one atomic INSERT. A run that dies leaves its row behind, so the holder ("hostname:pid")
    # refreshes heartbeat_at and a stale row can be taken over (run_locks.py, migration 0005).
    sa.Column("account_id", sa.Uuid(), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("holder", sa.Text(), nullable=False),
    sa.Column("acquired_at", UtcDateTime(), nullable=False),
    sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
)

account_labels = sa.Table(
    "account_labels",
    metadata,
    # The name an operator gave an account on the management pages (migration 0011). Its own table, not a column
    # of the credentials: disconnecting deletes the credentials, and the name should still be there on reconnect.
    sa.Column("account_id", sa.Uuid(), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False, server_default=NOW),
)

iiko_sessions = sa.Table(
    "iiko_sessions",
    metadata,
    # The iiko token of each run's live login, encrypted (crypto.py envelope bound to the account and to the
    # purpose "iiko-session"), so whoever recovers a run that died logs it out instead of leaving the customer's
    # licence seat taken until the token expires (sessions.py, migration 0005). Deleted after logout.
    sa.Column("account_id", sa.Uuid(), primary_key=True),
    sa.Column("run_id", sa.String(64), primary_key=True),
    # In the clear for inspection; the recoverer uses the copy sealed with the token.
    sa.Column("base_url", sa.Text(), nullable=False),
    sa.Column("token_ciphertext", sa.LargeBinary(), nullable=False),
    sa.Column("key_id", sa.String(KEY_ID_LEN), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)
