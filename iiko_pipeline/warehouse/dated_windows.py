"""Incremental sync of dated entities (invoices, and every entity read by date range): commit one window at a
time and reconcile deletions inside it.

iiko's export filters by document date and carries no revision, so the only correct incremental sync is to
re-read a sliding window and reconcile it (docs: iiko-server-api.md §8). Each window is one transaction:
its upsert, its deletion reconciliation, the documents it could not store (`pending`) and (for incremental
runs) the watermark move together, so a run that fails halfway leaves the warehouse and the watermark exactly
at the last committed window, and a document that could not be stored is never behind the watermark unseen.

What differs between dated entities is described by a `DatedTable` (which column dates a row, what becomes of
a row the window no longer returns, how a batch is upserted); the invoices' one is `INVOICES`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from iiko_pipeline.warehouse import pending, schema, state
from iiko_pipeline.warehouse.engine import write_transaction
from iiko_pipeline.warehouse.entities import SyncResult, upsert_invoices, upsert_window_rows
from iiko_pipeline.warehouse.upsert import id_chunks, refresh_statistics
from iiko_pipeline.warehouse.vanished import DEFAULT_MAX_VANISHED_SHARE, mark_deleted, withheld_because

ENTITY = "invoices"
#: What becomes of a held row that a trusted re-read of its window no longer returns.
SOFT, HARD, KEEP = "soft", "hard", "keep"  # marked deleted / removed (rows derived by iiko: report rows) / kept


@dataclass(frozen=True)
class DatedTable:
    """How one dated entity's windows are written.

    `date_column` dates a row (the window's dates select the rows it reconciles); `vanished` is SOFT (documents:
    `is_deleted` / `deleted_at`), HARD (aggregates iiko computes, keyed by their grouping values: a group that is
    gone must not add up any more) or KEEP (nothing is deleted); `child_table` (invoice lines) is written with
    its rows by `upsert_invoices`, other entities by `upsert_window_rows`."""

    entity: str
    date_column: str
    vanished: str = SOFT
    child_table: str | None = None

    @property
    def table(self) -> sa.Table:
        return schema.metadata.tables[self.entity]

    def upsert(self, engine: Engine, account: uuid.UUID, batch: WindowBatch, now: datetime,
               conn: Connection) -> SyncResult:
        if self.child_table:
            return upsert_invoices(engine, account, batch.invoices, batch.items, batch.errors, now=now, conn=conn)
        return upsert_window_rows(conn, self.entity, account, batch.invoices, batch.errors, now=now)


INVOICES = DatedTable(ENTITY, "document_date", SOFT, child_table="invoice_items")


@dataclass
class WindowOutcome:
    date_from: date
    date_to: date
    result: SyncResult
    guard: str | None = None  # why deletions were withheld, if they were
    #: Rows dated inside the window once it committed, counted in its transaction, for entities whose rows a
    #: window owns (HARD): the row-count check compares it with what the window returned, window by window.
    held_after: int | None = None


@dataclass
class ReconcileOutcome:
    deleted: int = 0
    guard: str | None = None
    vanished: list[str] = field(default_factory=list)


def reconcile_window(conn: Connection, account_id: uuid.UUID, date_from: date, date_to: date,
                     returned_ids: Collection[str], returned_in_window: int, *, now: datetime,
                     max_vanished_share: float = DEFAULT_MAX_VANISHED_SHARE,
                     external_system: str = "iiko", dated: DatedTable | None = None) -> ReconcileOutcome:
    """Delete (as `dated.vanished` says) live rows dated inside the window that iiko no longer returns anywhere
    in this run.

    Guards (nothing is deleted, and the reason is returned for the run's metadata and a warning check):
    - iiko answered nothing for a window in which we hold rows: an empty export is far more often a fault
      than a week in which every document was deleted;
    - more than `max_vanished_share` of the window's rows would vanish at once.
    """
    dated = dated or INVOICES
    if dated.vanished == KEEP:
        return ReconcileOutcome()
    table = dated.table
    live = [table.c.is_deleted.is_(False)] if dated.vanished == SOFT else []
    held = conn.execute(sa.select(table.c.external_id).where(
        *_dated_inside(dated, account_id, date_from, date_to, external_system), *live)).scalars().all()
    # The capture's ids arrive as one set for every window of a run (a year: 219k ids): copying it per window
    # cost a second and a transient copy; any other collection is made a set once here.
    returned = returned_ids if isinstance(returned_ids, set | frozenset) else set(returned_ids)
    vanished = sorted(ext for ext in held if ext not in returned)
    outcome = ReconcileOutcome(vanished=vanished)
    if not vanished:
        return outcome
    what = "documents" if dated.vanished == SOFT else f"{dated.entity} rows"
    outcome.guard = withheld_because(f"window {date_from}..{date_to}", what, held=len(held), vanished=len(vanished),
                                     returned=returned_in_window, max_vanished_share=max_vanished_share)
    if outcome.guard:
        return outcome
    scope = (table.c.account_id == account_id, table.c.external_system == external_system)
    if dated.vanished == SOFT:
        outcome.deleted = mark_deleted(conn, table, scope, vanished, is_deleted=True, deleted_at=now)
    else:
        for chunk in id_chunks(vanished, 1000):
            outcome.deleted += conn.execute(table.delete().where(*scope, table.c.external_id.in_(chunk))).rowcount or 0
    return outcome


def _dated_inside(dated: DatedTable, account_id: uuid.UUID, date_from: date, date_to: date,
                  external_system: str) -> tuple[Any, ...]:
    table = dated.table
    day = table.c[dated.date_column]
    return (table.c.account_id == account_id, table.c.external_system == external_system, day >= date_from,
            day <= date_to)


def held_in_window(conn: Connection, dated: DatedTable, account_id: uuid.UUID, date_from: date, date_to: date,
                   external_system: str = "iiko") -> int:
    """The rows dated inside the window (its date index makes this a range count)."""
    return conn.execute(sa.select(sa.func.count()).select_from(dated.table).where(
        *_dated_inside(dated, account_id, date_from, date_to, external_system))).scalar_one()


@dataclass
class WindowBatch:
    """Part of one window's documents (a window is written in several batches to bound memory)."""

    invoices: Sequence[dict[str, Any]] | pa.Table  # the rows: dicts, or (entities without lines) an Arrow table
    items: Sequence[dict[str, Any]] | Any  # rows, or the frame step's Arrow table of invoice lines
    errors: Sequence[Any] = ()
    kept: int = 0  # documents returned unchanged since they were stored (same hash): counted, not written


def commit_window(engine: Engine, account_id: uuid.UUID | str, date_from: date, date_to: date,
                  batches: Iterable[WindowBatch], *, returned_ids: Collection[str], advance_watermark: bool,
                  max_vanished_share: float = DEFAULT_MAX_VANISHED_SHARE, fingerprint: str | None = None,
                  unchanged_documents: int | None = None, now: datetime | None = None,
                  dated: DatedTable = INVOICES) -> WindowOutcome:
    """Upsert one window's invoices, reconcile its deletions and move the watermark, all in one transaction.

    `unchanged_documents` set means the answer's fingerprint matched the last committed one: nothing is
    upserted or reconciled (the same bytes hold the same documents), only the watermark moves. Otherwise the
    fingerprint is recorded, unless the window had rejected records or withheld deletions: those windows must
    be processed again next time so their errors and warnings stay visible.

    Rejected documents are recorded as pending (with their date and reason) in the same transaction, and
    pending documents that are stored now, or that a trusted re-export no longer holds, are cleared: the
    watermark may then move past the window without losing them (see `pending`).

    The two halves, `write_batches` (the window's own rows) and `finish_window` (everything shared with other
    windows), are also run apart by `window_writers`, which writes two windows at once.
    """
    account = uuid.UUID(str(account_id))
    now = now or datetime.now(UTC)
    with write_transaction(engine) as conn:
        written = None
        if unchanged_documents is None:
            refresh_window_statistics(conn, dated)
            written = write_batches(conn, account, date_from, date_to, batches, now=now, dated=dated)
        return finish_window(conn, account, date_from, date_to, written, returned_ids=returned_ids,
                             advance_watermark=advance_watermark, max_vanished_share=max_vanished_share,
                             fingerprint=fingerprint, unchanged_documents=unchanged_documents, now=now, dated=dated)


def refresh_window_statistics(conn: Connection, dated: DatedTable) -> None:
    """Fresh planner statistics for the tables a window writes (see `refresh_statistics`)."""
    refresh_statistics(conn, [schema.metadata.tables[t] for t in (dated.entity, dated.child_table) if t])


@dataclass
class WrittenBatches:
    """A window's rows written (not yet committed): what the rest of its transaction needs to know of them."""

    parts: list[SyncResult] = field(default_factory=list)
    returned: int = 0  # documents the window returned: written, rejected or kept unchanged
    rejected: list[pending.PendingDocument] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)  # written ids, for pending documents that are stored now


def write_batches(conn: Connection, account: uuid.UUID, date_from: date, date_to: date,
                  batches: Iterable[WindowBatch], *, now: datetime, dated: DatedTable) -> WrittenBatches:
    """Upsert a window's batches: the rows of its own documents only, nothing another window of the run writes
    (documents are unique to one window of a capture), so two windows' batches never wait for each other."""
    written = WrittenBatches()
    for batch in batches:
        part = dated.upsert(conn.engine, account, batch, now, conn)
        part.total += batch.kept
        part.unchanged += batch.kept
        written.parts.append(part)
        written.returned += len(batch.invoices) + len(batch.errors) + batch.kept
        new = rejected_documents(batch, part, date_from, date_to, dated.date_column)
        written.rejected += new
        keys = {d.external_id for d in new}
        written.stored += [ext for ext in row_values(batch.invoices, "external_id") if ext not in keys]
    return written


def finish_window(conn: Connection, account: uuid.UUID, date_from: date, date_to: date,
                  written: WrittenBatches | None, *, returned_ids: Collection[str], advance_watermark: bool,
                  max_vanished_share: float = DEFAULT_MAX_VANISHED_SHARE, fingerprint: str | None = None,
                  unchanged_documents: int | None = None, now: datetime, dated: DatedTable) -> WindowOutcome:
    """The rest of a window's transaction after its rows: reconciliation, pending documents, fingerprint and
    watermark (`written` None: the window is unchanged, only the watermark moves). These touch rows and state
    other windows share, so a window finishes only once the window before it committed."""
    entity = dated.entity
    held_after: int | None = None
    if written is None:
        result, guard = SyncResult(entity, total=unchanged_documents or 0, unchanged=unchanged_documents or 0), None
    else:
        result = _sum_results(written.parts, entity)
        reconciled = reconcile_window(conn, account, date_from, date_to, returned_ids, written.returned, now=now,
                                      max_vanished_share=max_vanished_share, dated=dated)
        result.deleted, guard = reconciled.deleted, reconciled.guard
        if dated.vanished == HARD:
            held_after = held_in_window(conn, dated, account, date_from, date_to)
        if pending.has_pending(conn, account, entity):  # else no stored id needs looking up
            pending.resolve(conn, account, entity, written.stored)
            if guard is None:
                pending.drop_vanished(conn, account, entity, date_from, date_to, returned_ids,
                                      keep={d.external_id for d in written.rejected})
        pending.record(conn, account, entity, written.rejected, now)
        clean = guard is None and not result.errors
        _record_fingerprint(conn, account, date_from, date_to, fingerprint if clean else None, now, entity)
    if advance_watermark:
        current = _watermark(conn, account, entity)
        state.set_watermark(conn, account, entity, max(current, date_to) if current else date_to)
    return WindowOutcome(date_from, date_to, result, guard, held_after)


def rejected_documents(batch: WindowBatch, result: SyncResult, date_from: date, date_to: date,
                       date_column: str = "document_date") -> list[pending.PendingDocument]:
    """The batch's documents that were not stored, as pending entries: the adapter's rejections (bad data,
    dated by their window) and the warehouse's (a missing parent, dated by the document)."""
    adapter_errors = len(batch.errors)
    out = [pending.PendingDocument(pending.pending_key(d.get("external_id"), str(d.get("record") or "")),
                                   date_from, date_to, pending.DATA, str(d.get("reason") or ""))
           for d in result.error_details[:adapter_errors]]
    missing = set(result.reference_rejections)
    if missing:
        reasons = {d.get("external_id"): str(d.get("reason") or "")
                   for d in result.error_details[adapter_errors:]}
        for ext, day in zip(row_values(batch.invoices, "external_id"), row_values(batch.invoices, date_column),
                            strict=True):
            if ext in missing:
                out.append(pending.PendingDocument(ext, day, day, pending.REFERENCE, reasons.get(ext, "")))
                missing.discard(ext)
    return out


def row_values(rows: Sequence[dict[str, Any]] | pa.Table, column: str) -> list[Any]:
    """One column of a batch's rows, whether dicts or an Arrow table (an empty one may have no columns)."""
    if isinstance(rows, pa.Table):
        return rows.column(column).to_pylist() if rows.num_rows else []
    return [row[column] for row in rows]


def _record_fingerprint(conn: Connection, account: uuid.UUID, date_from: date, date_to: date,
                        fingerprint: str | None, now: datetime, entity: str = ENTITY) -> None:
    """Record the window's answer fingerprint, and forget those of every window it overlaps: this commit may have
    changed their rows (a backfill or a pending re-read cuts windows differently), so an unchanged answer of
    theirs no longer proves the table matches it."""
    sw = schema.sync_windows
    conn.execute(sw.delete().where(sw.c.account_id == account, sw.c.entity == entity, sw.c.date_from <= date_to,
                                   sw.c.date_to >= date_from))
    if fingerprint:
        conn.execute(sw.insert().values(account_id=account, entity=entity, date_from=date_from, date_to=date_to,
                                        fingerprint=fingerprint, committed_at=now))


def window_fingerprints(engine: Engine, account_id: uuid.UUID | str,
                        entity: str = ENTITY) -> dict[tuple[date, date], str]:
    """The committed fingerprint of every window of this account's entity."""
    sw = schema.sync_windows
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sw.c.date_from, sw.c.date_to, sw.c.fingerprint).where(
            sw.c.account_id == uuid.UUID(str(account_id)), sw.c.entity == entity)).all()
    return {(r[0], r[1]): r[2] for r in rows}


def held_hashes(engine: Engine, account_id: uuid.UUID | str, dated: DatedTable, date_from: str,
                date_to: str, external_system: str = "iiko") -> dict[str, str]:
    """The stored hash of every live row dated inside the window (rows that keep one: `source_hash`). A
    soft-deleted row is left out: a document that shows up again must be written, to be live again."""
    table = dated.table
    inside = _dated_inside(dated, uuid.UUID(str(account_id)), date.fromisoformat(date_from),
                           date.fromisoformat(date_to), external_system)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.external_id, table.c.source_hash).where(
            *inside, table.c.is_deleted.is_(False), table.c.source_hash.is_not(None)))
        return {ext: digest for ext, digest in rows}


def grid_anchor(engine: Engine, account_id: uuid.UUID | str, entity: str = ENTITY) -> date | None:
    """Where the account's committed windows of this entity start their grid: the first day of the latest one
    (by its last day), which a run cut them from. An incremental run cuts its windows on the same grid, so a
    window iiko answers unchanged has the exact dates of a fingerprint and is skipped (`split_windows`)."""
    sw = schema.sync_windows
    with engine.connect() as conn:
        return conn.execute(sa.select(sw.c.date_from).where(
            sw.c.account_id == uuid.UUID(str(account_id)), sw.c.entity == entity
        ).order_by(sw.c.date_to.desc()).limit(1)).scalar_one_or_none()


def _watermark(conn: Connection, account: uuid.UUID, entity: str = ENTITY) -> date | None:
    st = schema.sync_state
    return conn.execute(sa.select(st.c.watermark).where(st.c.account_id == account, st.c.entity == entity)
                        ).scalar_one_or_none()


def get_watermark(engine: Engine, account_id: uuid.UUID | str, entity: str = ENTITY) -> date | None:
    with engine.connect() as conn:
        return _watermark(conn, uuid.UUID(str(account_id)), entity)


def merge_results(outcomes: Sequence[WindowOutcome], entity: str = ENTITY) -> SyncResult:
    return _sum_results([o.result for o in outcomes], entity)


def _sum_results(results: Sequence[SyncResult], entity: str = ENTITY) -> SyncResult:
    total = SyncResult(entity)
    for r in results:
        total.total += r.total
        total.created += r.created
        total.updated += r.updated
        total.unchanged += r.unchanged
        total.deleted += r.deleted
        total.errors += r.errors
        total.items_written += r.items_written
        total.error_details += r.error_details
        total.warnings += r.warnings
        total.reference_rejections.update(r.reference_rejections)
    return total
