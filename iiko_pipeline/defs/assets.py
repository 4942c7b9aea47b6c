"""The asset graph, per account partition: raw XML -> parsed frames -> upserted tables.

For each entity (restaurants, stores, suppliers, invoices):
- `raw_<entity>`: the iiko answers exactly as received, gzip on disk under the instance's storage; the
  SHA-256 of the bytes is the data version, so an unchanged answer is visible as such in the UI;
- `<entity>_frame`: the adapter's typed Arrow table (Parquet via `frame_io_manager`) plus rejected records;
- `<entity>`: the rows upserted into the warehouse table, returning the brief's sync result as metadata and
  the data-quality checks of the same step.
Tables chain restaurants -> stores -> suppliers -> invoices, because each references the one before.
"""


import contextlib
import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa

from iiko_pipeline.adapters import IIKO_ADAPTER
from iiko_pipeline.defs.constants import FRAMES_GROUP, IIKO_POOL, RAW_GROUP, TABLES_GROUP
from iiko_pipeline.defs.partitions import accounts_partitions_def
from iiko_pipeline.defs.resources import IikoResource, WarehouseResource
from iiko_pipeline.frames import FrameSet, ParsedFrame, build_frames, frame_records
from iiko_pipeline.iiko import parsing
from iiko_pipeline.iiko.errors import (
    IikoAuthError,
    IikoBadRequestError,
    IikoLicenceBlockedError,
    IikoLicenceError,
    IikoPermissionError,
)
from iiko_pipeline.prefetch import prefetched
from iiko_pipeline.rawstore import RawCapture, RawPart, write_raw
from iiko_pipeline.services.connect import describe_failure
from iiko_pipeline.warehouse import pending, quality, schema, state
from iiko_pipeline.warehouse.credentials import mark_connection
from iiko_pipeline.warehouse.entities import PREREQUISITES, SyncResult, upsert_dimension
from iiko_pipeline.warehouse.invoice_windows import (
    WindowBatch,
    commit_window,
    get_watermark,
    merge_results,
    window_fingerprints,
)

# Step retries on top of the client's own (which already cover short blips): for outages of minutes.
# IIKO_STEP_RETRY_DELAY_SECONDS tunes the first wait (read when the definitions load).
IIKO_RETRY = dg.RetryPolicy(max_retries=2, delay=float(os.environ.get("IIKO_STEP_RETRY_DELAY_SECONDS", "10")),
                            backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
NOT_RETRYABLE = (IikoAuthError, IikoBadRequestError, IikoLicenceBlockedError, IikoPermissionError)


class InvoiceSyncConfig(dg.Config):
    """Which document dates to export (the same config in the UI's launchpad and in schedules).

    `incremental` (default): from `watermark - lookback_days` to `date_to` (default today); an account with
    no watermark yet (onboarding) starts `history_days` back. The watermark advances as windows commit.
    `backfill`: exactly `date_from`..`date_to`, without moving the watermark.
    """

    mode: str = "incremental"
    date_from: str = ""
    date_to: str = ""
    lookback_days: int = 14
    history_days: int = 90
    max_vanished_share: float = 0.2
    reprocess_unchanged: bool = False  # parse and upsert windows even when iiko's answer did not change

    def window(self, watermark: date | None, today: date | None = None) -> tuple[date, date]:
        if self.mode not in ("incremental", "backfill"):
            raise dg.Failure(f"mode must be 'incremental' or 'backfill', not {self.mode!r}", allow_retries=False)
        try:
            date_to = date.fromisoformat(self.date_to) if self.date_to else (today or date.today())
            if self.mode == "backfill":
                if not self.date_from:
                    raise dg.Failure("a backfill needs date_from (YYYY-MM-DD)", allow_retries=False)
                date_from = date.fromisoformat(self.date_from)
            elif self.date_from:
                date_from = date.fromisoformat(self.date_from)
            elif watermark is not None:
                date_from = min(watermark, date_to) - timedelta(days=self.lookback_days)
            else:
                date_from = date_to - timedelta(days=self.history_days - 1)
        except ValueError as exc:
            raise dg.Failure(f"invoice dates must be YYYY-MM-DD: {exc}", allow_retries=False) from None
        if date_from > date_to:
            raise dg.Failure(f"invoice window is empty: date_from {date_from} is after date_to {date_to}",
                             allow_retries=False)
        return date_from, date_to

    @property
    def advances_watermark(self) -> bool:
        return self.mode == "incremental"


class TableSyncConfig(dg.Config):
    """How much of what iiko returned may be rejected before the table step (and so the run) fails."""

    max_rejected_share: float = quality.DEFAULT_MAX_REJECTED_SHARE


def _account(context: dg.AssetExecutionContext) -> str:
    return str(uuid.UUID(context.partition_key))


def _raw_dir(context: dg.AssetExecutionContext) -> Path:
    return Path(context.instance.storage_directory()) / "raw"


def _fail_fast(exc: Exception, warehouse: WarehouseResource, account: str, entity: str = "") -> None:
    """Credentials, licence and rights problems will not fix themselves within a retry: fail the step at once.

    A rejected login, a blocked module or missing rights mark the account disconnected (with the reason), so
    schedules stop hammering the server until someone reconnects it; a full licence (all seats taken) is only
    recorded on the sync state, since seats free up by themselves within the token lifetime.
    """
    if not isinstance(exc, (*NOT_RETRYABLE, IikoLicenceError)):
        return
    reason = describe_failure(exc)
    engine = warehouse.get_engine()
    with contextlib.suppress(Exception):  # the iiko error below is what the user must see
        if isinstance(exc, IikoLicenceError):
            state.record_failure(engine, uuid.UUID(account), entity or "iiko", None, reason)
        else:
            mark_connection(engine, account, "iiko", is_connected=False, error=reason)
    raise dg.Failure(reason, allow_retries=False) from None


def _raw_output(capture: RawCapture, server_version: str | None) -> dg.Output[RawCapture]:
    metadata: dict[str, Any] = {
        "path": dg.MetadataValue.path(capture.parts[0].path if len(capture.parts) == 1 else
                                      str(Path(capture.parts[0].path).parent) if capture.parts else ""),
        "size_bytes": capture.size,
        "sha256": capture.sha256,
        "records": capture.records,
        "answers": len(capture.parts),
        "iiko_server_version": server_version or "unknown",
    }
    if capture.window_from:
        metadata["window_from"] = capture.window_from
        metadata["window_to"] = capture.window_to
        metadata["windows"] = dg.MetadataValue.md("\n".join(
            f"- {p.label}: {p.records} documents, {p.size} bytes" for p in capture.parts))
    return dg.Output(capture, metadata=metadata, data_version=dg.DataVersion(capture.sha256))


RAW_FETCH = {
    "restaurants": ("departments", parsing.iter_corporate_items),
    "stores": ("stores", parsing.iter_corporate_items),
    "suppliers": ("suppliers", parsing.iter_suppliers),
}


def _raw_dimension(entity: str) -> dg.AssetsDefinition:
    method, parse = RAW_FETCH[entity]

    @dg.asset(name=f"raw_{entity}", partitions_def=accounts_partitions_def, group_name=RAW_GROUP, pool=IIKO_POOL,
              kinds={"xml"}, retry_policy=IIKO_RETRY, io_manager_key="io_manager", deps=list(PREREQUISITES[entity]),
              description=f"The iiko answer for {entity} exactly as received (gzip on disk).")
    def raw_asset(context: dg.AssetExecutionContext, iiko: IikoResource,
                  warehouse: WarehouseResource) -> dg.Output[RawCapture]:
        account = _account(context)
        _require_prerequisites(warehouse.get_engine(), account, entity)
        try:
            client = iiko.client_for(account)
            version = client.server_info().version
            response = getattr(client, method)()
        except Exception as exc:
            _fail_fast(exc, warehouse, account, entity)
            raise
        records = sum(1 for _ in parse(response.body))
        part = write_raw(_raw_dir(context), account, entity, entity, response.body, records)
        return _raw_output(RawCapture(entity, account, (part,)), version)

    return raw_asset


# Raw steps depend on the tables their entity references: in a run that syncs those too they are written first,
# so the prerequisite check and the due pending documents see this run's reference data.
@dg.asset(name="raw_invoices", partitions_def=accounts_partitions_def, group_name=RAW_GROUP, pool=IIKO_POOL,
          kinds={"xml"}, retry_policy=IIKO_RETRY, deps=list(PREREQUISITES["invoices"]),
          description="Incoming invoice exports, one answer per window of at most 7 days, exactly as received.")
def raw_invoices(context: dg.AssetExecutionContext, config: InvoiceSyncConfig, iiko: IikoResource,
                 warehouse: WarehouseResource) -> dg.Output[RawCapture]:
    """Fetch windows in date order. If a later window fails, keep the ones already fetched (so they can be
    committed and the watermark can move) and record the failure; the invoices table step then fails the run.

    An incremental run first re-reads the dates of documents that are due for a retry (rejected earlier, e.g.
    for a supplier we did not hold yet), however far behind the lookback they lie.
    """
    account = _account(context)
    engine = warehouse.get_engine()
    _require_prerequisites(engine, account, "invoices")
    date_from, date_to = config.window(get_watermark(engine, account))
    retry = _retry_ranges(engine, account, date_from) if config.advances_watermark else []
    if retry:
        context.log.info(f"re-reading {len(retry)} date range(s) with documents not stored yet: "
                         + ", ".join(f"{a}..{b}" for a, b in retry))
    parts: list[RawPart] = []
    failure = None
    version = None
    try:
        client = iiko.client_for(account)
        version = client.server_info().version
        windows = itertools.chain(*(client.incoming_invoice_windows(a, b) for a, b in [*retry, (date_from, date_to)]))
        # the next window is requested while this one is counted, hashed and compressed to disk
        for window in prefetched(windows, name="iiko-fetch"):
            body = window.response.body
            records = _count_documents(body)
            label = f"{window.date_from.isoformat()}..{window.date_to.isoformat()}"
            parts.append(write_raw(_raw_dir(context), account, "invoices", label, body, records))
    except Exception as exc:
        _fail_fast(exc, warehouse, account, "invoices")
        if not parts:
            raise
        failure = f"{type(exc).__name__}: {exc}"
        context.log.warning(f"invoice export stopped after {len(parts)} windows: {failure}")
    date_from = min([date_from, *(a for a, _ in retry)])
    capture = RawCapture("invoices", account, tuple(parts), date_from.isoformat(), date_to.isoformat(), failure,
                         mode=config.mode, max_vanished_share=config.max_vanished_share,
                         reprocess=config.reprocess_unchanged)
    output = _raw_output(capture, version)
    output.metadata["mode"] = dg.MetadataValue.text(config.mode)
    output.metadata["retried_ranges"] = dg.MetadataValue.text(", ".join(f"{a}..{b}" for a, b in retry) or "none")
    if failure:
        output.metadata["failure"] = dg.MetadataValue.text(failure)
    return output


def _require_prerequisites(engine: Any, account: str, entity: str) -> None:
    """Refuse to sync an entity whose references have never synced: every record would be rejected as dangling
    and the run would store nothing (an invoice names a supplier and stores, a store its restaurant)."""
    missing = state.never_synced(engine, account, PREREQUISITES[entity])
    if missing:
        reason = (f"{', '.join(missing)} of account {account} never synced, and {entity} reference them: sync "
                  f"them first (sync_account_job, or `iiko-pipeline sync {account}`); nothing was fetched")
        state.record_failure(engine, uuid.UUID(account), entity, None, reason)
        raise dg.Failure(reason, allow_retries=False)


def _retry_ranges(engine: Any, account: str, before: date) -> list[tuple[date, date]]:
    """Dates before this run's range that hold due pending documents (see `warehouse.pending`)."""
    synced = state.last_successes(engine, [account]).get(account, {})
    references = [synced[e] for e in PREREQUISITES["invoices"] if e in synced]
    return pending.due_ranges(engine, account, "invoices", before=before,
                              references_synced_at=max(references) if references else None)


def _count_documents(body: bytes) -> int:
    """Documents in an export answer, counted on the bytes: an independent count (no parser involved) for the
    raw-vs-frame check, and no second parse of tens of megabytes."""
    return body.count(b"<document>") + body.count(b"<document ")


def _frame_asset(entity: str) -> dg.AssetsDefinition:
    @dg.asset(name=f"{entity}_frame", partitions_def=accounts_partitions_def, group_name=FRAMES_GROUP,
              kinds={"pyarrow", "parquet"}, io_manager_key="frame_io_manager",
              ins={"raw": dg.AssetIn(f"raw_{entity}")},
              description=f"{entity} as typed rows produced by the iiko adapter, plus records it rejected "
                          "(one Parquet chunk per raw answer; counts in the metadata).")
    def frame_asset(context: dg.AssetExecutionContext, raw: RawCapture,
                    warehouse: WarehouseResource) -> dg.Output[FrameSet]:
        fingerprints = {}
        if raw.window_from and not raw.reprocess:  # skip windows whose answer was already committed as is
            committed = window_fingerprints(warehouse.get_engine(), _account(context))
            fingerprints = {(a.isoformat(), b.isoformat()): fp for (a, b), fp in committed.items()}
        return dg.Output(build_frames(entity, raw, IIKO_ADAPTER, fingerprints=fingerprints))  # IO manager streams

    return frame_asset


CHECKS = {
    "restaurants": ["records_stored", "external_ids_unique", "row_counts_agree"],
    "stores": ["records_stored", "external_ids_unique", "references_exist", "row_counts_agree"],
    "suppliers": ["records_stored", "external_ids_unique", "row_counts_agree"],
    "invoices": ["records_stored", "external_ids_unique", "references_exist", "row_counts_agree",
                 "line_sums_consistent", "statuses_known", "export_complete", "deletions_guarded",
                 "documents_pending"],
}
WARN_ONLY = {"deletions_guarded", "documents_pending"}  # soft signals: shown in the UI, never block the run
TABLE_DEPS = {"restaurants": [], "stores": ["restaurants"], "suppliers": ["stores"],
              "invoices": ["suppliers", "stores"]}
PREVIEW_COLUMNS = ("external_id", "code", "name", "document_number", "document_date", "status")


@dataclass
class TableSync:
    """What the table step learned while writing, for its metadata and checks."""

    result: SyncResult
    guards: list[str] = field(default_factory=list)
    line_sum_failures: list[str] = field(default_factory=list)  # checked window by window, right after commit
    preview: str = ""


def _preview(chunk: ParsedFrame) -> str:
    cols = [c for c in PREVIEW_COLUMNS if c in chunk.rows.column_names]
    if not cols or not chunk.rows.num_rows:
        return ""
    return chunk.rows.select(cols).slice(0, 5).to_pandas().astype(str).to_markdown(index=False)


def _table_metadata(table_name: str, sync: TableSync, frame: FrameSet, engine_name: str,
                    table_rows: int) -> dict[str, Any]:
    table = schema.metadata.tables[table_name]
    result = sync.result
    metadata: dict[str, Any] = {
        **{k: v for k, v in result.as_dict().items() if k != "error_details"},
        "error_details": dg.MetadataValue.json(result.error_details[:50]),
        "dagster/row_count": table_rows,
        "dagster/table_name": table_name,
        "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn(c.name, str(c.type), description=c.comment) for c in table.columns]),
        "warehouse": engine_name,
        "preview": dg.MetadataValue.md(sync.preview),
    }
    if frame.window_from:
        metadata["window_from"], metadata["window_to"] = frame.window_from, frame.window_to
        metadata["windows_committed"] = len(frame.windows)
    if table_name == "invoices":
        metadata["line_items_written"] = result.items_written
    if sync.guards:
        metadata["deletion_guard"] = dg.MetadataValue.md("\n".join(f"- {g}" for g in sync.guards))
    return metadata


def _checks(entity: str, engine: Any, account: uuid.UUID, frame: FrameSet, sync: TableSync,
            raw_records: int | None, stored: quality.CheckOutcome) -> list[dg.AssetCheckResult]:
    table = schema.metadata.tables[entity]
    result = sync.result
    out: list[dg.AssetCheckResult] = []

    def add(name: str, outcome: quality.CheckOutcome) -> None:
        severity = dg.AssetCheckSeverity.WARN if name in WARN_ONLY else dg.AssetCheckSeverity.ERROR
        out.append(dg.AssetCheckResult(check_name=name, passed=outcome.passed, severity=severity, metadata={
            "account_id": str(account), **outcome.metadata()}))

    add("records_stored", stored)
    add("external_ids_unique", quality.duplicate_external_ids(engine, table, account))
    if "references_exist" in CHECKS[entity]:
        lines_written = entity == "invoices" and bool(result.items_written or result.updated or result.created)
        outcome = quality.dangling_references(engine, entity, account, scan_lines=lines_written)
        if entity == "invoices":
            items = quality.dangling_references(engine, "invoice_items", account)
            outcome = quality.CheckOutcome(outcome.passed and items.passed, outcome.failing + items.failing,
                                           outcome.sample + items.sample, f"{outcome.detail}; lines: {items.detail}")
        add("references_exist", outcome)
    ids = [i for c in frame.windows for i in c["ids"]]
    rejected = {d["external_id"] for d in result.error_details if d.get("external_id")}
    expected_in_table = len([i for i in ids if i not in rejected])
    stored = quality.count_rows(engine, table, account, ids, IIKO_ADAPTER.external_system)
    consistent_raw = raw_records is None or raw_records == frame.source_records
    add("row_counts_agree", quality.CheckOutcome(
        passed=consistent_raw and stored == expected_in_table,
        detail=f"raw {raw_records} records, frame {frame.source_records} read / {frame.row_count} rows "
               f"/ {len(frame.errors)} rejected, table {stored} of {expected_in_table} expected"))
    if entity == "invoices":
        add("line_sums_consistent", quality._outcome(sync.line_sum_failures,
                                                     "invoices whose stored lines differ from the source"))
        add("statuses_known", quality.unknown_statuses(engine, account))
        committed = frame.windows[-1]["to"] if frame.windows else "nothing"
        add("export_complete", quality.CheckOutcome(
            passed=frame.failure is None, failing=int(frame.failure is not None),
            sample=[frame.failure] if frame.failure else [],
            detail=f"iiko export failed after {len(frame.windows)} windows; committed through {committed}"
            if frame.failure else f"all {len(frame.windows)} windows exported and committed"))
        out.append(dg.AssetCheckResult(
            check_name="deletions_guarded", passed=not sync.guards, severity=dg.AssetCheckSeverity.WARN,
            metadata={"account_id": str(account), "failing_count": len(sync.guards),
                      "failing_sample": list(sync.guards)[:20],
                      "detail": "; ".join(sync.guards) if sync.guards else "no deletion was withheld"}))
        add("documents_pending", quality.pending_documents(pending.list_pending(engine, account, entity), entity))
    return out


def _line_sum_failures(engine: Any, account: uuid.UUID, expected: dict[str, tuple[int, Decimal]],
                       ids: list[str], rejected: set[str]) -> list[str]:
    """Invoices whose stored lines differ from the source's: count or total of line sums."""
    stored = quality.line_totals(engine, account, ids, IIKO_ADAPTER.external_system)
    failing = []
    for ext in ids:
        if ext in rejected:
            continue
        want, got = expected.get(ext, (0, Decimal(0))), stored.get(ext, (0, Decimal(0)))
        if want[0] != got[0] or want[1] != got[1]:
            failing.append(f"{ext}: source {want[0]} lines / {want[1]}, stored {got[0]} lines / {got[1]}")
    return failing


def _table_asset(entity: str) -> dg.AssetsDefinition:
    specs = [dg.AssetCheckSpec(name, asset=entity, blocking=name not in WARN_ONLY) for name in CHECKS[entity]]

    @dg.asset(name=entity, partitions_def=accounts_partitions_def, group_name=TABLES_GROUP, kinds={"sql"},
              ins={"frame": dg.AssetIn(f"{entity}_frame"), "raw": dg.AssetIn(f"raw_{entity}")},
              deps=TABLE_DEPS[entity], check_specs=specs,
              description=f"`{entity}` in the warehouse, upserted from the frame (created/updated/unchanged).")
    def table_asset(context: dg.AssetExecutionContext, config: TableSyncConfig, frame: FrameSet, raw: RawCapture,
                    warehouse: WarehouseResource) -> dg.MaterializeResult:
        account = uuid.UUID(_account(context))
        engine = warehouse.get_engine()
        started = datetime.now(UTC)
        try:
            if entity == "invoices":
                sync = _commit_invoice_windows(engine, account, frame, raw)
            else:
                sync = _upsert_dimension(engine, entity, account, frame)
        except Exception as exc:
            state.record_failure(engine, account, entity, context.run.run_id, f"{type(exc).__name__}: {exc}")
            raise
        result = sync.result
        stored = quality.rejections_within_limit(result, config.max_rejected_share)
        state.record_run(engine, account, entity, context.run.run_id, result, started,
                         error=None if stored.passed else stored.detail)
        if not stored.passed:
            context.log.error(f"{entity} for account {account}: {stored.detail}")
        if frame.failure:
            state.record_failure(engine, account, entity, context.run.run_id, frame.failure)
        context.log.info(f"{entity} for account {account}: {result.as_dict() | {'error_details': result.errors}}")
        table_rows = _account_rows(engine, entity, account)
        return dg.MaterializeResult(
            metadata=_table_metadata(entity, sync, frame, engine.url.get_backend_name(), table_rows),
            check_results=_checks(entity, engine, account, frame, sync, raw.records, stored),
        )

    return table_asset


def _upsert_dimension(engine: Any, entity: str, account: uuid.UUID, frame: FrameSet) -> TableSync:
    """Dimensions are one answer each: small enough to upsert (and soft-delete against) as one batch."""
    rows: list[dict[str, Any]] = []
    errors: list[_Err] = []
    preview = ""
    for chunk in frame.chunks():
        rows += frame_records(chunk.rows)
        errors += [_Err(e) for e in chunk.errors]
        preview = preview or _preview(chunk)
    return TableSync(upsert_dimension(engine, entity, account, rows, errors), preview=preview)


def _commit_invoice_windows(engine: Any, account: uuid.UUID, frame: FrameSet, raw: RawCapture) -> TableSync:
    """Commit window by window (each with its deletions and, when incremental, the watermark); a window arrives
    as several chunks, written in one transaction, so memory stays bounded by a chunk."""
    returned = frame.returned_ids  # a document that moved to another window of this run has not vanished
    outcomes = []
    # The source's line count and sum per invoice of the window being written: compared with what was stored
    # right after the window commits, then dropped (a year's worth would hold ~200k entries).
    expected: dict[str, tuple[int, Decimal]] = {}
    window_ids: list[str] = []
    line_sum_failures: list[str] = []
    preview: list[str] = []

    def batches(chunks: Iterator[ParsedFrame]) -> Iterator[WindowBatch]:
        for chunk in chunks:
            window_ids.extend(chunk.external_ids)
            items = frame_records(chunk.children)
            for item in items:
                count, total = expected.get(item["invoice_external_id"], (0, Decimal(0)))
                expected[item["invoice_external_id"]] = (count + 1, total + (item["sum"] or Decimal(0)))
            if not preview:
                preview.append(_preview(chunk))
            yield WindowBatch(frame_records(chunk.rows), items, [_Err(e) for e in chunk.errors])

    # (Reading the next chunk on a thread while the database merges this one was measured: no faster on 2 cores,
    # one more chunk in memory; see iiko_pipeline.prefetch.)
    for _label, group in itertools.groupby(frame.chunks(), key=lambda c: c.label):
        first = next(group)
        window = (date.fromisoformat(first.window_from), date.fromisoformat(first.window_to))
        common = {"returned_ids": returned, "advance_watermark": raw.mode == "incremental",
                  "max_vanished_share": raw.max_vanished_share, "fingerprint": first.fingerprint}
        if first.unchanged:
            outcomes.append(commit_window(engine, account, *window, [], unchanged_documents=len(first.known_ids),
                                          **common))
        else:
            # the rest of this group, consumed inside commit_window before groupby moves on
            rest = itertools.chain([first], group)  # noqa: B031
            outcome = commit_window(engine, account, *window, batches(rest), **common)
            outcomes.append(outcome)
            rejected = {d["external_id"] for d in outcome.result.error_details if d.get("external_id")}
            line_sum_failures += _line_sum_failures(engine, account, expected, window_ids, rejected)
            expected.clear()
            window_ids.clear()
    return TableSync(merge_results(outcomes), [o.guard for o in outcomes if o.guard], line_sum_failures,
                     preview[0] if preview else "")


def _account_rows(engine: Any, entity: str, account: uuid.UUID) -> int:
    """Live rows of this account (soft-deleted ones are kept but not counted)."""
    table = schema.metadata.tables[entity]
    stmt = sa.select(sa.func.count()).select_from(table).where(table.c.account_id == account)
    if "deleted_at" in table.c:
        stmt = stmt.where(table.c.deleted_at.is_(None))
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


class _Err:
    """Adapter errors travel through the frame as dicts; the warehouse wants objects with as_dict()."""

    def __init__(self, data: dict[str, Any]):
        self._data = data

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)


ENTITY_ASSETS = [
    *[_raw_dimension(e) for e in ("restaurants", "stores", "suppliers")],
    raw_invoices,
    *[_frame_asset(e) for e in ("restaurants", "stores", "suppliers", "invoices")],
    *[_table_asset(e) for e in ("restaurants", "stores", "suppliers", "invoices")],
]
