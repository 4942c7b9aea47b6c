"""One frozen description per entity, and the registry every other layer derives from.

Adding an entity is: a client call, a parser, an adapter method, a table (with a migration), an emulator
endpoint, and one `EntitySpec` here. Assets, checks, jobs, schedules, CLI choices, API routes, the OpenAPI
document and the bench read `REGISTRY`; nothing else names entities (docs/architecture.md has the recipe).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from iiko_pipeline.core.fanout import compressed

if TYPE_CHECKING:  # this module stays import-light: the command line builds its choices from it
    import sqlalchemy as sa

    from iiko_pipeline.warehouse.dated_windows import DatedTable

#: Checks every table step runs (see `core.checks`); an entity adds its own. `references_exist` only where the
#: table (or its child table) names parent rows: elsewhere it could never fail, and every check result costs
#: the run a few instance writes and a query.
COMMON_CHECKS = ("records_stored", "external_ids_unique", "references_exist", "links_resolved", "row_counts_agree",
                 "deletions_guarded")
#: Checks that only warn (soft signals: shown in the UI, never block the run); an entity may add its own.
#: `fields_as_documented` runs for entities whose answer has documented fields (`documented_path`),
#: `entity_available` for optional ones, `export_complete` and `documents_pending` for dated ones.
COMMON_WARN_ONLY = frozenset({"deletions_guarded", "links_resolved", "fields_as_documented", "entity_available",
                              "documents_pending"})
LINK_CHECKS = frozenset({"references_exist"})
SOFT_LINK_CHECKS = frozenset({"links_resolved"})


@dataclass(frozen=True)
class EntitySpec:
    """What the project knows about one entity.

    `fetch` names the `IikoClient` method: for a dated entity (`windowed`) one that takes a date range and
    yields export windows, otherwise one that answers the whole list. `adapt` names the `PosAdapter` method.
    `after` orders the table steps in the asset graph beyond what the references already order.
    """

    name: str
    fetch: str
    parse_path: str  # "module:function" of the parser (bytes or a stream -> records), imported on first use
    adapt: str
    description: str
    schedule: str  # the schedule group (`SCHEDULES`) that keeps it in sync
    windowed: bool = False
    child_table: str | None = None  # rows that belong to a row of this entity (invoice lines)
    extra_checks: tuple[str, ...] = ()
    warn_only: frozenset[str] = COMMON_WARN_ONLY
    after: tuple[str, ...] = ()
    preview_columns: tuple[str, ...] = ("external_id", "code", "name")
    freshness_env: str | None = None  # an entity synced incrementally warns when older than $env hours
    answer_format: str = "xml"  # what iiko answers ("xml", "json"): the raw asset's kind in the UI
    # The account is usable without it: a server too old for the endpoint (404) or a user without the right to
    # read it skips the entity with a warning (not a failed run, not a disconnected account), and onboarding
    # does not wait for it. The brief's own entities are not optional.
    optional: bool = False
    documented_path: str | None = None  # "module:name" of the answer's `iiko.documented.DocumentedFields`
    # Dated entities (`windowed`): the column that dates a row, what becomes of a row its window no longer returns
    # (`warehouse.dated_windows`: soft, hard, keep), how many days before the watermark an incremental run
    # re-reads, and the `ClientSettings` field sizing its windows (None: one day per window).
    date_column: str = "document_date"
    vanished: str = "soft"
    lookback_days: int = 14
    window_setting: str | None = "invoice_window_days"
    window_in_records: bool = False  # its records do not say their date: the frame step stamps the window's
    # Records per frame chunk (and per upsert batch): documents with lines are heavy, flat report rows light, and
    # each batch costs a stage, a merge and its lookups whatever its size.
    chunk_records: int = 1000
    lag_days: int = 0  # an incremental run ends this many days before today (a day's snapshot needs its end)
    history_days: int | None = None  # where onboarding starts, when not the run's `history_days`

    @property
    def parse(self) -> Callable[[Any], Iterator[dict[str, Any]]]:
        module, _, function = self.parse_path.partition(":")
        return getattr(importlib.import_module(module), function)

    @property
    def table(self) -> sa.Table:
        from iiko_pipeline.warehouse import schema

        return schema.metadata.tables[self.name]

    @property
    def dated(self) -> DatedTable:
        """How a dated entity's windows are written and reconciled (`warehouse.dated_windows`)."""
        from iiko_pipeline.warehouse.dated_windows import DatedTable

        return DatedTable(self.name, self.date_column, self.vanished, self.child_table)

    @property
    def documented(self) -> Any:
        """The answer's documented fields (`iiko.documented.DocumentedFields`), or None."""
        if self.documented_path is None:
            return None
        module, _, name = self.documented_path.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def checks(self) -> tuple[str, ...]:
        automatic = (("export_complete", "documents_pending") if self.windowed else ()) + (
            ("fields_as_documented",) if self.documented_path else ()) + (
            ("entity_available",) if self.optional else ())
        return tuple(c for c in (*COMMON_CHECKS, *automatic, *self.extra_checks)
                     if (c not in LINK_CHECKS or self.has_links) and (c not in SOFT_LINK_CHECKS or self.has_soft_links))

    @cached_property
    def has_links(self) -> bool:
        """Whether its rows point at other rows (parents, or its own child rows), as the schema's keys say."""
        from iiko_pipeline.warehouse.entities import child_tables, parent_refs

        return bool(child_tables(self.table)) or any(parent_refs(t) for t in self.tables)

    @cached_property
    def has_soft_links(self) -> bool:
        """Whether its rows (or child rows) softly link other rows (`schema.SOFT_LINK`)."""
        from iiko_pipeline.warehouse.entities import soft_refs

        return any(soft_refs(t) for t in self.tables)

    @property
    def tables(self) -> list[sa.Table]:
        """Its table and its child table, if any."""
        from iiko_pipeline.warehouse import schema

        return [self.table] + ([schema.metadata.tables[self.child_table]] if self.child_table else [])

    @cached_property
    def references(self) -> tuple[str, ...]:
        """The entities whose rows this entity's rows (and child rows) point at, from the schema's keys."""
        from iiko_pipeline.warehouse.entities import parent_refs

        names = {ref.parent.name for t in self.tables for ref in parent_refs(t)}
        return tuple(s.name for s in REGISTRY if s.table.name in names and s.name != self.name)


@dataclass(frozen=True)
class ScheduleGroup:
    """Entities synced together on one cron, as one job per account."""

    name: str
    job: str
    schedule: str
    cron: str
    run_key_prefix: str
    description: str
    entities: tuple[str, ...] = field(default=())
    # The accounts' starts are spread over the period: the cron ticks this many times per hour it runs in, and
    # each account is due at one stable tick of them (`core.fanout`).
    spread: int = 1
    # The period the spread covers: an hour, except under a load test's compressed cadence (`core.fanout`).
    period_minutes: int = 60
    # Queue priority of its runs (defs.constants.PRIORITY_TAG): above onboarding's 0 where fresh data matters
    # more than a new account's first load, which waits behind at most the runs already running.
    priority: int = 0

    def __post_init__(self) -> None:
        from iiko_pipeline.core.fanout import check_spread

        check_spread(self.spread, self.cron, self.period_minutes)


_PARSING = "iiko_pipeline.iiko.parsing"
_DOCUMENTED = "iiko_pipeline.iiko.documented"

REGISTRY: tuple[EntitySpec, ...] = (
    EntitySpec(
        name="restaurants", fetch="departments", parse_path=f"{_PARSING}:iter_corporate_items", adapt="restaurants",
        description="Departments of type DEPARTMENT (corporation/departments).", schedule="reference"),
    EntitySpec(
        name="stores", fetch="stores", parse_path=f"{_PARSING}:iter_corporate_items", adapt="stores",
        description="Stores, each under its restaurant (corporation/stores).", schedule="reference"),
    EntitySpec(
        name="suppliers", fetch="suppliers", parse_path=f"{_PARSING}:iter_suppliers", adapt="suppliers",
        description="Suppliers, deleted ones included (suppliers).", schedule="reference", after=("stores",)),
    EntitySpec(
        name="measure_units", fetch="measure_units", parse_path=f"{_PARSING}:iter_json_items", adapt="measure_units",
        description="Measure units, deleted ones included (v2/entities/list?rootType=MeasureUnit, JSON).",
        schedule="reference", answer_format="json", optional=True, documented_path=f"{_DOCUMENTED}:ENTITIES"),
    EntitySpec(
        name="product_groups", fetch="product_groups", parse_path=f"{_PARSING}:iter_json_items",
        adapt="product_groups",
        description="Product groups (the nomenclature tree), deleted ones included (v2/entities/products/group/list, "
                    "JSON, iiko 6.1+).",
        schedule="reference", answer_format="json", optional=True, documented_path=f"{_DOCUMENTED}:PRODUCT_GROUPS",
        preview_columns=("external_id", "num", "name", "parent_external_id")),
    EntitySpec(
        name="products", fetch="products", parse_path=f"{_PARSING}:iter_json_items", adapt="products",
        description="Products of every type (goods, dishes, modifiers, services...), deleted ones included "
                    "(v2/entities/products/list, JSON, iiko 6.1+); linked to their group and main unit.",
        schedule="reference", answer_format="json", optional=True, documented_path=f"{_DOCUMENTED}:PRODUCTS",
        after=("measure_units", "product_groups"),
        preview_columns=("external_id", "num", "name", "product_type")),
    EntitySpec(
        name="employees", fetch="employees", parse_path=f"{_PARSING}:iter_employees", adapt="employees",
        description="Employees, dismissed and deleted ones included, without contact or card data (employees).",
        schedule="reference", optional=True,
        preview_columns=("external_id", "code", "name", "main_role_code")),
    EntitySpec(
        name="invoices", fetch="incoming_invoice_windows", parse_path=f"{_PARSING}:iter_invoice_documents",
        adapt="invoices",
        description="Incoming invoices with their lines, exported in windows of at most 7 days.",
        schedule="hourly", windowed=True, child_table="invoice_items", after=("products",),
        chunk_records=500,  # about 10k lines: the frame step's peak (parsed dicts) halves, the merges barely slow
        extra_checks=("line_sums_consistent", "statuses_known"),
        preview_columns=("external_id", "document_number", "document_date", "status"),
        freshness_env="INVOICE_FRESHNESS_HOURS"),
    EntitySpec(
        name="sales_day_totals", fetch="sales_total_windows", parse_path=f"{_PARSING}:iter_olap_rows",
        adapt="sales_day_totals",
        description="Per restaurant and business day: unique orders and the sales sums (OLAP v2 SALES, department x "
                    "business day); each run re-reads the trailing 7 days, because business days move.",
        schedule="hourly", windowed=True, answer_format="json", optional=True, date_column="business_date",
        vanished="hard", lookback_days=7, window_setting="report_window_days",
        preview_columns=("business_date", "restaurant_external_id", "orders", "dish_sum")),
    EntitySpec(
        name="sales_daily", fetch="sales_windows", parse_path=f"{_PARSING}:iter_olap_rows", adapt="sales_daily",
        description="Daily sales per restaurant, business day, dish, order type and pay types (OLAP v2 SALES); rows "
                    "of the days asked are replaced, so a re-run never duplicates; trailing 7 days re-read.",
        schedule="hourly", windowed=True, answer_format="json", optional=True, date_column="business_date",
        vanished="hard", lookback_days=7, window_setting="report_window_days", chunk_records=20_000,
        after=("sales_day_totals", "products"), extra_checks=("sales_match_totals",),
        preview_columns=("business_date", "restaurant_external_id", "dish_external_id", "dish_sum")),
    EntitySpec(
        name="cash_shifts", fetch="cash_shift_windows", parse_path=f"{_PARSING}:iter_department_items",
        adapt="cash_shifts",
        description="Cash shifts by id (v2/cashshifts/list, status ANY): sales by cash, card and credit, pay-ins and "
                    "pay-outs, cash difference; asked department by department (a shift does not name its "
                    "restaurant); the trailing 7 days of opening dates re-read.",
        schedule="hourly", windowed=True, answer_format="json", optional=True, date_column="open_day",
        vanished="keep", lookback_days=7, window_setting="report_window_days",
        preview_columns=("external_id", "session_number", "open_date", "status")),
    EntitySpec(
        name="stock_balances", fetch="balance_snapshots", parse_path=f"{_PARSING}:iter_json_items",
        adapt="stock_balances",
        description="Stock balance snapshots per store and product at the end of each day (v2/reports/balance/"
                    "stores), kept as history: yesterday's taken daily and the 3 days before re-taken.",
        schedule="daily", windowed=True, answer_format="json", optional=True, date_column="snapshot_date",
        vanished="hard", lookback_days=3, window_setting=None, window_in_records=True, lag_days=1, history_days=3,
        chunk_records=20_000,
        after=("products",), preview_columns=("snapshot_date", "store_external_id", "product_external_id", "amount")),
)
#: Entity names in dependency order (parents first): the one list.
ENTITY_NAMES: tuple[str, ...] = tuple(s.name for s in REGISTRY)
_BY_NAME = {s.name: s for s in REGISTRY}

SCHEDULES: tuple[ScheduleGroup, ...] = (
    ScheduleGroup("reference", job="reference_data_job", schedule="reference_data_daily_schedule",
                  cron="*/5 2 * * *", run_key_prefix="reference", spread=12,
                  description="Every night between 02:00 and 03:00 UTC: a full reload of the reference data of each "
                              "connected account, each at its own minute.",
                  entities=tuple(s.name for s in REGISTRY if s.schedule == "reference")),
    compressed(ScheduleGroup("hourly", job="hourly_sync_job", schedule="hourly_sync_schedule", cron="*/5 * * * *",
                             run_key_prefix="hourly", spread=12, priority=1,
                             description="Every hour, each connected account at its own minute (ticks every 5 "
                                         "minutes, each for a twelfth of the accounts): the dated entities, "
                                         "incrementally (watermark - lookback .. today).",
                             entities=tuple(s.name for s in REGISTRY if s.schedule == "hourly"))),
    ScheduleGroup("daily", job="stock_snapshots_job", schedule="stock_snapshots_daily_schedule", cron="*/5 1 * * *",
                  run_key_prefix="snapshots", spread=12,
                  description="Every night between 01:00 and 02:00 UTC, each account at its own minute: yesterday's "
                              "stock balance snapshot of each connected account, and the days before it re-taken "
                              "(back-dated documents change them).",
                  entities=tuple(s.name for s in REGISTRY if s.schedule == "daily")),
)


class UnknownEntityError(ValueError):
    pass


def spec(name: str) -> EntitySpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownEntityError(f"unknown entity {name!r}; choose from {', '.join(ENTITY_NAMES)}") from None


def windowed_specs() -> tuple[EntitySpec, ...]:
    return tuple(s for s in REGISTRY if s.windowed)


def prerequisites(name: str) -> tuple[str, ...]:
    """Everything the entity references, directly or through those, in dependency order."""
    wanted: set[str] = set()
    pending = list(spec(name).references)
    while pending:
        current = pending.pop()
        if current not in wanted:
            wanted.add(current)
            pending += spec(current).references
    return tuple(n for n in ENTITY_NAMES if n in wanted)


def with_prerequisites(names: Sequence[str]) -> list[str]:
    """The entities plus everything they reference, in dependency order."""
    wanted = {e for name in names for e in (name, *prerequisites(name))}
    return [e for e in ENTITY_NAMES if e in wanted]
