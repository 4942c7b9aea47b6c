"""Writing adapted batches into the entity tables, one transaction per table per account.

This is the brief's "create or update records" step, returning the brief's sync result plus `unchanged` and
`deleted`. It knows table shapes and references; the SQL mechanics live in `upsert.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.engine import write_transaction
from iiko_pipeline.warehouse.upsert import (
    BOOKKEEPING_COLUMNS,
    KEY_COLUMNS,
    ParentRef,
    Rejection,
    Stage,
    dedupe_last,
    dedupe_last_table,
    merge_stage,
    reject_dangling,
    stage_first_join,
)
from iiko_pipeline.warehouse.vanished import DEFAULT_MAX_VANISHED_SHARE, mark_deleted, withheld_because


def _refs(table: sa.Table, soft: bool) -> tuple[ParentRef, ...]:
    refs = []
    for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name):
        column = fk.parent.name
        if not column.endswith("_id") or (fk.parent.info.get("link") == "soft") != soft:
            continue
        stem = column[: -len("_id")]
        external = fk.parent.info.get("external", f"{stem}_external_id")  # a link may name iiko's own column
        if external in table.c:
            refs.append(ParentRef(column, external, fk.column.table, stem.replace("_", " ")))
    return tuple(refs)


def parent_refs(table: sa.Table) -> tuple[ParentRef, ...]:
    """The table's references to parent rows, read off the schema: a foreign key `<name>_id` that has a
    `<name>_external_id` column beside it (rows name their parent by its iiko id; the key is resolved on
    upsert, and a row whose parent we do not hold is rejected). One rule instead of a hand-kept list per table:
    a new table gets its references for free. Soft links (`schema.SOFT_LINK`) are not among them."""
    return _refs(table, soft=False)


def soft_refs(table: sa.Table) -> tuple[ParentRef, ...]:
    """The table's soft links (`schema.SOFT_LINK`): resolved like parents, but a row whose referenced row we do
    not hold is stored with the link NULL (and reported), and linked by `relink` when that row arrives."""
    return _refs(table, soft=True)


def soft_referrers(table: sa.Table) -> list[tuple[sa.Table, ParentRef]]:
    """The tables (and their links) that softly reference this one: what a sync of it may link."""
    return [(t, ref) for t in schema.metadata.sorted_tables for ref in soft_refs(t) if ref.parent is table]


def relink(conn: Connection, table: sa.Table, ref: ParentRef, account: uuid.UUID, external_system: str) -> int:
    """Fill the link of this account's rows that name a row we did not hold when they were written (and hold
    now). Touches only unlinked rows (`invoice_items` has a partial index on them), so it costs little once
    links resolve on write."""
    q = conn.dialect.identifier_preparer.quote
    t, p = q(table.name), q(ref.parent.name)
    fk, ext = q(ref.fk_column), q(ref.external_column)
    match = (f"p.account_id = :account_id AND p.external_system = :external_system"
             f" AND p.external_id = {t}.{ext}")
    own = f" AND {t}.external_system = :external_system" if "external_system" in table.c else ""
    statement = sa.text(
        f"UPDATE {t} SET {fk} = (SELECT p.id FROM {p} p WHERE {match})"
        f" WHERE {t}.account_id = :account_id{own} AND {t}.{fk} IS NULL AND {t}.{ext} IS NOT NULL"
        f" AND EXISTS (SELECT 1 FROM {p} p WHERE {match})"
    ).bindparams(sa.bindparam("account_id", type_=sa.Uuid()), sa.bindparam("external_system"))
    return conn.execute(statement, {"account_id": account, "external_system": external_system}).rowcount or 0


def relink_all(conn: Connection, table: sa.Table, account: uuid.UUID, external_system: str) -> None:
    """After a write of `table`, the rows waiting for the rows just written: its own (a group whose parent came
    later in the same answer), then other tables' (invoice lines, sales and balances for their products). Its
    other links were resolved by the merge itself."""
    for other, ref in soft_referrers(table):
        relink(conn, other, ref, account, external_system)


def unlinked_notes(conn: Connection, table: sa.Table, stage: Stage, account: uuid.UUID,
                   external_system: str) -> list[dict[str, Any]]:
    """One note per staged row stored without one of its soft links (what it names is not held): the row is
    kept, so this is reported beside the rejections in `error_details`, marked `"stored": true`."""
    q = conn.dialect.identifier_preparer.quote
    entity, notes = table.name, []
    join = stage_first_join(conn)
    for ref in (r for r in soft_refs(table) if r.external_column in stage.columns):
        ext, fk = q(ref.external_column), q(ref.fk_column)
        rows = conn.execute(sa.text(
            f"SELECT s.external_id, s.{ext} FROM {q(stage.name)} s {join} {q(table.name)} t"
            f" ON t.account_id = :account_id AND t.external_system = :external_system"
            f" AND t.external_id = s.external_id WHERE s.{ext} IS NOT NULL AND t.{fk} IS NULL"
            f" ORDER BY s.external_id").bindparams(sa.bindparam("account_id", type_=sa.Uuid()),
                                                   sa.bindparam("external_system")),
            {"account_id": account, "external_system": external_system}).all()
        notes += [link_note(entity, ident, f"{entity[:-1].replace('_', ' ')} id {ident}", ref.label, missing,
                            ref.parent.name) for ident, missing in rows]
    return notes


def link_note(entity: str, external_id: str | None, record: str, label: str, missing: str,
              parent: str) -> dict[str, Any]:
    return {"entity": entity, "external_id": external_id, "record": record, "stored": True,
            "reason": f"{label} {missing} is not in {parent}: stored without the link, which the next sync of "
                      f"{parent} fills in"}


def child_tables(table: sa.Table) -> list[tuple[sa.Table, str]]:
    """Tables whose rows belong to a row of this one (deleted with it), with their key column: an
    invoice's lines."""
    return sorted(((t, fk.parent.name) for t in schema.metadata.sorted_tables for fk in t.foreign_keys
                   if fk.column.table is table and fk.ondelete == "CASCADE"), key=lambda pair: pair[0].name)


@dataclass
class SyncResult:
    """The brief's sync result (`total, created, updated, errors, error_details`) plus what we add."""

    entity: str
    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    errors: int = 0
    error_details: list[dict[str, Any]] = field(default_factory=list)
    items_written: int = 0
    # records rejected because a row they reference is missing: external id -> the missing row's table
    reference_rejections: dict[str, str] = field(default_factory=dict)
    # why rows that vanished from the answer were not marked deleted (`warehouse.vanished`), if they were not
    deletion_guard: str | None = None
    # rows stored with a caveat (a soft link to a row we do not hold yet): reported, not counted as errors
    warnings: list[dict[str, Any]] = field(default_factory=list)

    #: The counts every reader of a sync result uses (metadata, the CLI, the API, the bench): one list.
    COUNT_KEYS = ("total", "created", "updated", "unchanged", "deleted", "errors")

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.COUNT_KEYS}

    @property
    def details(self) -> list[dict[str, Any]]:
        """The brief's `error_details`: the records not stored, then those stored with a caveat (`"stored":
        true`, e.g. an invoice line whose product we do not hold yet). `errors` counts the first kind only."""
        return [*self.error_details, *self.warnings]

    def brief(self) -> dict[str, Any]:
        """Exactly the keys the brief's API returns."""
        return {"total": self.total, "created": self.created, "updated": self.updated, "errors": self.errors,
                "error_details": self.details}

    def as_dict(self) -> dict[str, Any]:
        return {**self.brief(), "unchanged": self.unchanged, "deleted": self.deleted}


#: A dimension stage this small is joined well without statistics (index probes into the target); its ANALYZE cost
#: as much as the merge in the reference-data bench (4,000 products: 0.08 s of a 0.35 s write).
ANALYZE_STAGE_ROWS = 20_000


def _stage_columns(table: sa.Table, rows: Sequence[dict[str, Any]] | pa.Table) -> list[str]:
    keys = rows.column_names if isinstance(rows, pa.Table) else rows[0].keys() if rows else ()
    cols = ["external_id"] + [k for k in keys if k in table.c and k not in KEY_COLUMNS and k not in BOOKKEEPING_COLUMNS]
    if "deleted_at" in table.c and "deleted_at" not in cols:
        cols.append("deleted_at")  # staged as NULL: a row that reappears is revived
    return cols


def _error_details(entity: str, adapter_errors: Sequence[Any], rejected: Sequence[Rejection]) -> list[dict[str, Any]]:
    details = [e.as_dict() for e in adapter_errors]
    details += [{"entity": entity, "external_id": r.external_id, "record": f"{entity[:-1]} id {r.external_id}",
                 "reason": r.reason} for r in rejected]
    return details


def upsert_dimension(engine: Engine, entity: str, account_id: uuid.UUID | str, rows: Sequence[dict[str, Any]],
                     adapter_errors: Sequence[Any] = (), *, external_system: str = "iiko",
                     now: datetime | None = None, detect_deleted: bool = True,
                     max_vanished_share: float = DEFAULT_MAX_VANISHED_SHARE) -> SyncResult:
    """Full-reload upsert of a dimension (restaurants, stores, suppliers) for one account.

    Dimensions are small and iiko returns all of them every time, so rows this account holds that the source no
    longer returns are soft-deleted, in the same transaction, under the rule every entity follows
    (`warehouse.vanished`): not after an empty answer, not when too many would vanish at once (the reason is
    in `deletion_guard`), and a record the adapter rejected still counts as returned.
    """
    table = schema.metadata.tables[entity]
    account = uuid.UUID(str(account_id))
    now = now or datetime.now(UTC)
    rows, _dupes = dedupe_last(rows)
    with write_transaction(engine) as conn:
        deleted, guard = 0, None
        if detect_deleted and "deleted_at" in table.c:
            returned = {r["external_id"] for r in rows} | {
                i for i in (e.as_dict().get("external_id") for e in adapter_errors) if i}
            deleted, guard = _delete_vanished(conn, table, account, external_system, returned,
                                              len(rows) + len(adapter_errors), now, max_vanished_share)
        result = _merge_rows(conn, table, account, rows, adapter_errors, external_system, now)
    result.deleted, result.deletion_guard = deleted, guard
    return result


def upsert_window_rows(conn: Connection, entity: str, account_id: uuid.UUID,
                       rows: Sequence[dict[str, Any]] | pa.Table, adapter_errors: Sequence[Any] = (), *,
                       external_system: str = "iiko", now: datetime | None = None) -> SyncResult:
    """One batch of a dated entity's window, inside the caller's transaction (`commit_window`): the merge of
    `upsert_dimension` without its deletions (the window reconciles those). Rows come as dicts or as the frame
    step's Arrow table, staged as it is (a window of daily sales is hundreds of thousands of rows: a dict each
    cost more than staging them)."""
    rows, _dupes = dedupe_last_table(rows) if isinstance(rows, pa.Table) else dedupe_last(rows)
    return _merge_rows(conn, schema.metadata.tables[entity], account_id, rows, adapter_errors, external_system,
                       now or datetime.now(UTC))


def _merge_rows(conn: Connection, table: sa.Table, account: uuid.UUID, rows: Sequence[dict[str, Any]] | pa.Table,
                adapter_errors: Sequence[Any], external_system: str, now: datetime) -> SyncResult:
    """Stage, reject rows whose parent is missing, merge (resolving hard and soft links), link what waited for
    these rows, and note the rows stored without a soft link."""
    result = SyncResult(table.name, total=len(rows) + len(adapter_errors))
    if not rows:  # nothing to stage or merge (an empty window, or every record refused by the adapter)
        result.error_details = _error_details(table.name, adapter_errors, [])
        result.errors = len(result.error_details)
        return result
    stage = Stage(conn, table, _stage_columns(table, rows))
    stage.load(rows, analyze=len(rows) > ANALYZE_STAGE_ROWS)
    parents = [r for r in parent_refs(table) if r.external_column in stage.columns]  # an empty batch stages none
    rejected = reject_dangling(conn, stage, parents, account_id=account, external_system=external_system)
    links = [r for r in soft_refs(table) if r.external_column in stage.columns]  # a column left out stays
    outcome = merge_stage(conn, table, stage, (*parents, *links), account_id=account,
                          external_system=external_system, synced_at=now)
    relink_all(conn, table, account, external_system)
    result.warnings = unlinked_notes(conn, table, stage, account, external_system)
    stage.drop()
    result.created, result.updated, result.unchanged = outcome.created, outcome.updated, outcome.unchanged
    result.error_details = _error_details(table.name, adapter_errors, rejected)
    result.errors = len(result.error_details)
    result.reference_rejections = {r.external_id: r.parent for r in rejected}
    return result


def _delete_vanished(conn: Connection, table: sa.Table, account: uuid.UUID, external_system: str,
                     returned: set[str], returned_count: int, now: datetime,
                     max_vanished_share: float) -> tuple[int, str | None]:
    """Soft-delete the live rows iiko did not return, unless the rule withholds it: (deleted, why withheld)."""
    live = (table.c.account_id == account, table.c.external_system == external_system, table.c.deleted_at.is_(None))
    held = conn.execute(sa.select(table.c.external_id).where(*live)).scalars().all()
    vanished = sorted(i for i in held if i not in returned)
    guard = withheld_because(table.name, table.name, held=len(held), vanished=len(vanished),
                             returned=returned_count, max_vanished_share=max_vanished_share)
    if guard or not vanished:
        return 0, guard
    return mark_deleted(conn, table, live, vanished, deleted_at=now), None


def upsert_invoices(engine: Engine, account_id: uuid.UUID | str, invoices: Sequence[dict[str, Any]],
                    items: Sequence[dict[str, Any]] | pa.Table, adapter_errors: Sequence[Any] = (), *,
                    external_system: str = "iiko", now: datetime | None = None,
                    conn: Connection | None = None) -> SyncResult:
    """Upsert invoices and replace the line items of exactly those invoices whose lines changed. Lines come as
    rows or, from the frame step, as an Arrow table (`adapters.invoice_lines.LINE_SCHEMA`).

    Pass `conn` to run inside a caller's transaction (the incremental sync commits per window); otherwise this
    opens and commits its own.
    """
    if conn is None:
        with write_transaction(engine) as own:
            return upsert_invoices(engine, account_id, invoices, items, adapter_errors,
                                   external_system=external_system, now=now, conn=own)
    account = uuid.UUID(str(account_id))
    now = now or datetime.now(UTC)
    # Soft-delete markers are ours, not iiko's: a document that shows up again is live again.
    invoices, _ = dedupe_last({**row, "is_deleted": False, "deleted_at": None} for row in invoices)
    keep = {row["external_id"] for row in invoices}
    lines = invoice_lines_of(items, keep)
    result = SyncResult("invoices", total=len(invoices) + len(adapter_errors))
    if not invoices:  # nothing to stage; the adapter's errors are still reported
        result.error_details = _error_details("invoices", adapter_errors, [])
        result.errors = len(result.error_details)
        return result
    inv_t, item_t = schema.invoices, schema.invoice_items
    parents = parent_refs(inv_t)
    q = conn.dialect.identifier_preparer.quote

    stage = Stage(conn, inv_t, _stage_columns(inv_t, invoices),
                  extra=[sa.Column("replace_items", sa.Boolean), sa.Column("target_id", sa.BigInteger)])
    stage.load(invoices)
    # A fixed column set: a window whose invoices carry no lines at all must still stage (and query) cleanly.
    links = soft_refs(item_t)  # a line's product and unit: resolved here, kept NULL (and reported) if not held
    item_cols = [c.name for c in item_t.columns if c.name not in ("id", "account_id", "invoice_id", "store_id")
                 and c.name not in {ref.fk_column for ref in links}]
    item_stage = Stage(conn, item_t, item_cols, extra=[sa.Column("invoice_external_id", sa.String)])
    item_stage.load(lines, index_on=("invoice_external_id",), analyze=False)
    s, i = q(stage.name), q(item_stage.name)
    binds = [sa.bindparam("account_id", type_=inv_t.c.account_id.type), sa.bindparam("external_system")]
    params = {"account_id": account, "external_system": external_system}

    # An invoice with a line on an unknown store is rejected whole: half an invoice is worse than none.
    bad_lines = conn.execute(sa.text(
        f"SELECT DISTINCT i.invoice_external_id, i.store_external_id FROM {i} i WHERE i.store_external_id IS NOT NULL"
        f" AND NOT EXISTS (SELECT 1 FROM {q(schema.stores.name)} st WHERE st.account_id = :account_id"
        f" AND st.external_system = :external_system AND st.external_id = i.store_external_id)"
    ).bindparams(*binds), params).all()
    unknown_stores: dict[str, list[str]] = {}
    for invoice_id, store_id in bad_lines:  # one rejection per invoice, however many lines are affected
        unknown_stores.setdefault(invoice_id, []).append(store_id)
    rejected = [Rejection(i, f"line stores {', '.join(sorted(stores))} do not exist" if len(stores) > 1
                          else f"a line's store {stores[0]} does not exist", schema.stores.name)
                for i, stores in unknown_stores.items()]
    if bad_lines:
        ids = sorted({r[0] for r in bad_lines})
        conn.execute(sa.text(f"DELETE FROM {s} WHERE external_id IN :ids")
                     .bindparams(sa.bindparam("ids", expanding=True)), {"ids": ids})
    rejected += reject_dangling(conn, stage, parents, account_id=account, external_system=external_system)
    conn.execute(sa.text(
        f"DELETE FROM {i} WHERE NOT EXISTS (SELECT 1 FROM {s} s WHERE s.external_id = {i}.invoice_external_id)"))
    # The stage carries each invoice's warehouse id, so the line statements below join the small stage and never
    # the whole `invoices` table (whose planner statistics lag behind a long backfill).
    same_key = (f"t.account_id = :account_id AND t.external_system = :external_system"
                f" AND t.external_id = {s}.external_id")
    conn.execute(sa.text(
        f"UPDATE {s} SET target_id = (SELECT t.id FROM {q(inv_t.name)} t WHERE {same_key}),"
        f" replace_items = NOT EXISTS (SELECT 1 FROM {q(inv_t.name)} t WHERE {same_key}"
        f" AND t.items_hash = {s}.items_hash)"
    ).bindparams(*binds), params)

    outcome = merge_stage(conn, inv_t, stage, parents, account_id=account, external_system=external_system,
                          synced_at=now)

    # Lines are replaced only for invoices that existed with other lines; new invoices have none to delete.
    conn.execute(sa.text(
        f"DELETE FROM {q(item_t.name)} WHERE invoice_id IN"
        f" (SELECT target_id FROM {s} WHERE replace_items AND target_id IS NOT NULL)"))
    conn.execute(sa.text(
        f"UPDATE {s} SET target_id = (SELECT t.id FROM {q(inv_t.name)} t WHERE {same_key})"
        f" WHERE target_id IS NULL").bindparams(*binds), params)
    copy_cols = [c for c in item_cols if c != "invoice_external_id"]
    link_cols = [ref.fk_column for ref in links]
    link_joins = "".join(
        f" LEFT JOIN {q(ref.parent.name)} l{n} ON l{n}.account_id = :account_id"
        f" AND l{n}.external_system = :external_system AND l{n}.external_id = i.{q(ref.external_column)}"
        for n, ref in enumerate(links))
    insert_cols = ", ".join(q(c) for c in ["account_id", "invoice_id", "store_id", *link_cols, *copy_cols])
    select_cols = ", ".join([":account_id", "s.target_id", "st.id", *[f"l{n}.id" for n in range(len(links))],
                             *[f"i.{q(c)}" for c in copy_cols]])
    inserted = conn.execute(sa.text(
        f"INSERT INTO {q(item_t.name)} ({insert_cols}) SELECT {select_cols} FROM {i} i"
        f" JOIN {s} s ON s.external_id = i.invoice_external_id AND s.replace_items"
        f" LEFT JOIN {q(schema.stores.name)} st ON st.account_id = :account_id"
        f" AND st.external_system = :external_system AND st.external_id = i.store_external_id{link_joins}"
    ).bindparams(*binds), params)
    result.warnings = unlinked_lines(conn, i, s, links, binds, params)
    result.items_written = inserted.rowcount or 0
    item_stage.drop()
    stage.drop()

    result.created, result.updated, result.unchanged = outcome.created, outcome.updated, outcome.unchanged
    result.error_details = _error_details("invoices", adapter_errors, rejected)
    result.errors = len(result.error_details)
    result.reference_rejections = {r.external_id: r.parent for r in rejected}
    return result


def invoice_lines_of(items: Sequence[dict[str, Any]] | pa.Table, keep: set[str]) -> list[dict[str, Any]] | pa.Table:
    """The lines of the invoices kept, one per (invoice, line number): a duplicated invoice brings its lines
    twice, and the last set wins. Lines as an Arrow table (the frame step's) stay one, filtered in C."""
    if isinstance(items, pa.Table):
        kept = items.filter(pc.is_in(items["invoice_external_id"], pa.array(sorted(keep), pa.string())))
        keys = kept.group_by(["invoice_external_id", "line_number"]).aggregate([])
        if keys.num_rows == kept.num_rows:
            return kept
        items = kept.to_pylist()  # repeated lines: rare (a caller's duplicated invoice), resolved as rows
    lines: dict[tuple[str, int], dict[str, Any]] = {}
    for item in items:
        if item["invoice_external_id"] in keep:
            lines[(item["invoice_external_id"], item["line_number"])] = item
    return list(lines.values())


#: Notes per batch about lines stored without a link: one per missing referenced row, at most this many, then
#: one that counts the rest (a server without products would otherwise note every line of a year).
MAX_LINK_NOTES = 20


def unlinked_lines(conn: Connection, item_stage: str, stage: str, links: Sequence[ParentRef],
                   binds: list[sa.BindParameter], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The written lines whose product (or unit) we do not hold: kept, reported once per missing row with the
    first invoice that names it, and linked by the next sync of products (`relink`)."""
    q = conn.dialect.identifier_preparer.quote
    notes: list[dict[str, Any]] = []
    for ref in links:
        ext = q(ref.external_column)
        missing = conn.execute(sa.text(
            f"SELECT i.{ext}, min(i.invoice_external_id), count(*) FROM {item_stage} i"
            f" JOIN {stage} s ON s.external_id = i.invoice_external_id AND s.replace_items"
            f" WHERE i.{ext} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {q(ref.parent.name)} p"
            f" WHERE p.account_id = :account_id AND p.external_system = :external_system"
            f" AND p.external_id = i.{ext}) GROUP BY i.{ext} ORDER BY i.{ext}").bindparams(*binds), params).all()
        for missing_id, invoice, lines in missing[:MAX_LINK_NOTES]:
            notes.append(link_note("invoices", invoice, f"invoice id {invoice} ({lines} lines in this batch)",
                                   f"line's {ref.label}", missing_id, ref.parent.name))
        if len(missing) > MAX_LINK_NOTES:
            rest = missing[MAX_LINK_NOTES:]
            notes.append({"entity": "invoices", "external_id": None, "stored": True,
                          "record": f"{sum(r[2] for r in rest)} more lines",
                          "reason": f"they name {len(rest)} more {ref.parent.name} that are not held: stored "
                                    f"without the link, which the next sync of {ref.parent.name} fills in"})
    return notes

