"""The three steps that sync one entity of one account: fetch the raw answers, build typed frames, write them.

Each takes explicit inputs (the spec, an engine, a client factory, a policy) and returns a typed result, or
raises one `SyncFailure`. Raw answers go to disk exactly as received; frames stream chunk by chunk; a dated
entity commits window by window (each window with its deletions, its pending documents and the watermark).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
from sqlalchemy.engine import Engine

from iiko_pipeline.adapters import IIKO_ADAPTER
from iiko_pipeline.core.failures import FailureKind, SyncFailure, classify
from iiko_pipeline.core.policy import WindowPolicy, WritePolicy
from iiko_pipeline.core.specs import EntitySpec, prerequisites
from iiko_pipeline.frames import (
    FrameSet,
    KnownHashes,
    ParsedFrame,
    answer_fingerprint,
    build_frames,
    document_ids,
    frame_records,
    json_ids,
)
from iiko_pipeline.iiko import IikoClient, split_windows
from iiko_pipeline.iiko.errors import IikoNotAvailableError, IikoPermissionError
from iiko_pipeline.prefetch import prefetched
from iiko_pipeline.rawstore import RawCapture, RawPart, RawSpool, count_documents, sweep_leftovers, write_raw
from iiko_pipeline.warehouse import pending, quality, state
from iiko_pipeline.warehouse.credentials import mark_connection
from iiko_pipeline.warehouse.dated_windows import (
    HARD,
    WindowBatch,
    WindowOutcome,
    get_watermark,
    grid_anchor,
    held_hashes,
    merge_results,
    window_fingerprints,
)
from iiko_pipeline.warehouse.entities import SyncResult, upsert_dimension
from iiko_pipeline.warehouse.window_writers import WindowJob, commit_windows, table_writers
from iiko_pipeline.workers import parse_workers

ADAPTER = IIKO_ADAPTER
#: Failures that stop a windowed export at once, whatever was fetched before: they will not heal in the run.
STOPPING = frozenset({FailureKind.CREDENTIALS, FailureKind.LICENCE, FailureKind.RIGHTS})
Log = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


#: At most one window progress line per this many seconds (plus the last window's).
PROGRESS_EVERY_SECONDS = 5.0


class WindowProgress:
    """Window progress for the run's log: a line at most every `every` seconds, and always the last one.

    A year's backfill still shows where it is (the CLI prints these lines as they arrive); an hourly run of a few
    windows writes one line instead of one per window, and each line is an event the instance stores."""

    def __init__(self, log: Log, total: int, every: float = PROGRESS_EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.total, self.every, self.clock = log, total, every, clock
        self.last = clock()

    def __call__(self, done: int, message: str) -> None:
        now = self.clock()
        if done >= self.total or now - self.last >= self.every:
            self.log(message)
            self.last = now


# ------------------------------------------------------------------------------------------------- failures


def fail(engine: Engine, account: str, entity: str, exc: BaseException) -> SyncFailure:
    """The typed failure for an error of an iiko call, with its effect on the account: credentials, a blocked
    module or missing rights mark the account disconnected (schedules stop hammering the server until someone
    reconnects it); a full licence is recorded on the sync state (seats free up within the token lifetime)."""
    failure = classify(exc)
    with contextlib.suppress(Exception):  # the iiko failure is what the caller must see
        if failure.disconnects:
            mark_connection(engine, account, "iiko", is_connected=False, error=failure.reason)
        elif failure.kind is FailureKind.LICENCE:
            state.record_failure(engine, uuid.UUID(account), entity, None, failure.reason)
    return failure


def require_prerequisites(engine: Engine, account: str, spec: EntitySpec) -> None:
    """Refuse to sync an entity whose references have never synced: every record would be rejected as dangling
    and the run would store nothing (an invoice names a supplier and stores, a store its restaurant)."""
    missing = state.never_synced(engine, account, prerequisites(spec.name))
    if missing:
        reason = (f"{', '.join(missing)} of account {account} never synced, and {spec.name} reference them: sync "
                  f"them first (sync_account_job, or `iiko-pipeline sync {account}`); nothing was fetched")
        state.record_failure(engine, uuid.UUID(account), spec.name, None, reason)
        raise SyncFailure(FailureKind.PREREQUISITE, reason)


# ------------------------------------------------------------------------------------------------- raw


@dataclass(frozen=True)
class RawResult:
    """What the fetch step stored, and under which policy (the table step needs it to commit)."""

    capture: RawCapture
    server_version: str | None = None
    policy: WindowPolicy | None = None
    retried: tuple[tuple[date, date], ...] = ()  # dates re-read for pending documents
    failure_kind: str | None = None  # set with capture.failure: the export stopped part-way
    skipped: str | None = None  # why an optional entity was not fetched (an old server, a missing right)

    @property
    def retried_text(self) -> str:
        return ", ".join(f"{a}..{b}" for a, b in self.retried) or "none"


def fetch_raw(spec: EntitySpec, client: Callable[[], IikoClient], engine: Engine, account: str, raw_dir: Path,
              policy: WindowPolicy | None = None, log: Log = _quiet) -> RawResult:
    """Fetch the entity's answers and keep them on disk as received. `client` logs in lazily, so a login
    failure is classified like any other."""
    require_prerequisites(engine, account, spec)
    if spec.windowed:
        return _fetch_windows(spec, client, engine, account, raw_dir, policy or WindowPolicy(), log)
    version = None
    try:
        iiko = client()
        version = iiko.server_info().version
        response = getattr(iiko, spec.fetch)()
    except Exception as exc:
        skipped = skip_reason(spec, exc, version)
        if skipped is None:
            raise fail(engine, account, spec.name, exc) from exc
        return _skip(engine, account, spec, skipped, log, RawResult(RawCapture(spec.name, account), version))
    # The count the raw-vs-frame check compares with: a JSON answer's items were decoded by the client's own check
    # (a decode apart from the frame step's); an XML answer is counted by a parse of its own.
    items = getattr(response, "items", None)
    records = len(items) if items is not None else sum(1 for _ in spec.parse(response.body))
    part = write_raw(raw_dir, account, spec.name, spec.name, response.body, records, spec.answer_format)
    return RawResult(RawCapture(spec.name, account, (part,)), version)


def _skip(engine: Engine, account: str, spec: EntitySpec, reason: str, log: Log, empty: RawResult) -> RawResult:
    """An optional entity not fetched: said in the run's log and on the sync state, and an empty capture that
    carries the reason (the table step writes nothing; `entity_available` warns)."""
    log(reason)
    state.record_failure(engine, uuid.UUID(account), spec.name, None, reason)
    return dataclasses.replace(empty, skipped=reason)


def skip_reason(spec: EntitySpec, exc: BaseException, version: str | None) -> str | None:
    """Why an optional entity is skipped instead of failing the run, or None: the server is too old for its
    endpoint, or the iiko user may not read it. Neither heals by retrying, and neither says anything about the
    credentials, so the account stays connected and its other entities sync."""
    if not spec.optional:
        return None
    if isinstance(exc, IikoNotAvailableError):
        return (f"{spec.name} skipped: not available on this iiko version ({version or 'unknown'}); "
                f"the rest of the sync goes on. {exc}")
    if isinstance(exc, IikoPermissionError):
        return (f"{spec.name} skipped: the iiko user may not read them (HTTP 403 at {exc.endpoint}); grant the "
                "right in iiko's back office (user roles) and the next sync reads them. The rest of the sync "
                "goes on and the account stays connected")
    return None


def retry_ranges(engine: Engine, account: str, spec: EntitySpec, before: date) -> list[tuple[date, date]]:
    """Dates before this run's range that hold due pending documents (see `warehouse.pending`)."""
    synced = state.last_successes(engine, [account]).get(account, {})
    references = [synced[e] for e in prerequisites(spec.name) if e in synced]
    return pending.due_ranges(engine, account, spec.name, before=before,
                              references_synced_at=max(references) if references else None)


def _fetch_windows(spec: EntitySpec, client: Callable[[], IikoClient], engine: Engine, account: str,
                   raw_dir: Path, policy: WindowPolicy, log: Log) -> RawResult:
    """Windows in date order. If a later window fails, keep the ones already fetched (they are committed and
    the watermark moves) and record the failure; the export_complete check then fails the run. An
    incremental run first re-reads the dates of due pending documents, however far behind the lookback."""
    policy = policy.for_entity(spec.lookback_days, spec.history_days, spec.lag_days)
    if swept := sweep_leftovers(raw_dir, account, spec.name):
        log(f"deleted {swept} unfinished raw file(s) a stopped sync left")
    date_from, date_to = policy.window(get_watermark(engine, account, spec.name))
    retry = retry_ranges(engine, account, spec, date_from) if policy.advances_watermark else []
    if retry:
        log(f"re-reading {len(retry)} date range(s) with documents not stored yet: "
            + ", ".join(f"{a}..{b}" for a, b in retry))
    parts: list[RawPart] = []
    failure: SyncFailure | None = None
    version = None
    try:
        iiko = client()
        version = iiko.server_info().version
        fetch = getattr(iiko, spec.fetch)
        size = getattr(iiko.settings, spec.window_setting) if spec.window_setting else 1
        anchor = incremental_grid(engine, account, spec.name, policy, date_from, date_to, size)
        ranges = [*((a, b, None) for a, b in retry), (date_from, date_to, anchor)]
        total = sum(len(split_windows(a, b, size, grid)) for a, b, grid in ranges)
        # XML exports go to the raw store as they arrive (a window is never held in memory), and an answer
        # byte-identical to a committed one is not parsed again to be checked
        streamed = {"checked": committed_answers(engine, account, spec.name),
                    "sink": functools.partial(RawSpool, raw_dir, account, spec.name, spec.answer_format)} \
            if spec.answer_format == "xml" else {}
        windows = itertools.chain(*(fetch(a, b, anchor=grid, **streamed) for a, b, grid in ranges))
        progress = WindowProgress(log, total)
        # the next window is requested while this one is counted, hashed and compressed to disk
        for window in prefetched(windows, name="iiko-fetch", dropped=unkept):
            label = f"{window.date_from.isoformat()}..{window.date_to.isoformat()}"
            parts.append(kept(raw_dir, account, spec, label, window.response))
            progress(len(parts), f"{spec.name}: fetched window {len(parts)}/{total} {label}: "
                                 f"{parts[-1].records} records")
    except Exception as exc:
        skipped = None if parts else skip_reason(spec, exc, version)
        if skipped:
            return _skip(engine, account, spec, skipped, log, RawResult(
                RawCapture(spec.name, account, (), date_from.isoformat(), date_to.isoformat()), version, policy))
        failure = fail(engine, account, spec.name, exc)
        if not parts or failure.kind in STOPPING:
            raise failure from exc
        log(f"{spec.name} export stopped after {len(parts)} windows: {failure.reason}")
    start = min([date_from, *(a for a, _ in retry)])
    capture = RawCapture(spec.name, account, tuple(parts), start.isoformat(), date_to.isoformat(),
                         failure.reason if failure else None)
    return RawResult(capture, version, policy, tuple(retry), failure.kind.value if failure else None)


def incremental_grid(engine: Engine, account: str, entity: str, policy: WindowPolicy, date_from: date,
                     date_to: date, size: int) -> date | None:
    """The grid an incremental range longer than one window is cut on: that of the windows committed before
    (`grid_anchor`), so its whole windows have the dates of their fingerprints and an unchanged one is skipped
    (cut from its own start, a range that moved by a day would match none). A range that fits in one window is
    asked in one request: cutting it would add a request and match nothing more. A backfill keeps its dates."""
    if not policy.advances_watermark or (date_to - date_from).days < size:
        return None
    return grid_anchor(engine, account, entity)


def kept(raw_dir: Path, account: str, spec: EntitySpec, label: str, response: Any) -> RawPart:
    """One window's answer in the raw store: filed from the spool it was written to as it arrived, or written
    from memory (an answer read whole)."""
    sink = getattr(response, "sink", None)  # only XML export answers stream
    if sink is not None:
        return sink.keep(label)
    return write_raw(raw_dir, account, spec.name, label, response.body, answer_records(response),
                     spec.answer_format)


def unkept(window: Any) -> None:
    """A window fetched but not filed (the step stopped first): its spooled answer is deleted."""
    sink = getattr(window.response, "sink", None)
    if sink is not None:
        sink.discard()


def committed_answers(engine: Engine, account: str, entity: str) -> Callable[[str], bool]:
    """Recognises an answer byte-identical to one committed for this entity (by its SHA-256 against the window
    fingerprints): those bytes passed the client's document check when they were first fetched, so it need not
    parse them again."""
    known = set(window_fingerprints(engine, account, entity).values())

    def committed(sha256: str) -> bool:
        return bool(known) and answer_fingerprint(sha256) in known

    return committed


def answer_records(response: Any) -> int:
    """Records in one answer, counted apart from the frame step's parse: a JSON answer's items as the client's
    own check decoded them, an XML export's documents on its bytes."""
    items = getattr(response, "items", None)
    return len(items) if items is not None else count_documents(response.body)


# ------------------------------------------------------------------------------------------------- frames


def frames(spec: EntitySpec, raw: RawResult, engine: Engine, account: str, *,
           parse: Callable[[Any], Iterator[dict[str, Any]]] | None = None,
           adapt: Callable[[list], Any] | None = None) -> FrameSet:
    """The adapter's typed rows, lazily, chunk by chunk. A window whose answer is byte-identical to the one
    last committed (same adapter version) becomes an `unchanged` chunk of ids only, and inside a changed one a
    document held with the same hash is kept as it is (tables with `source_hash`), unless the policy asks to
    reprocess. Changed windows are parsed in `parse_workers()` processes; `parse` / `adapt` replace the spec's
    parser and adapter method (the bench times them, in this process)."""
    fingerprints: dict[tuple[str, str], str] = {}
    reprocess = raw.policy is None or raw.policy.reprocess_unchanged
    if spec.windowed and not reprocess:
        committed = window_fingerprints(engine, account, spec.name)
        fingerprints = {(a.isoformat(), b.isoformat()): fp for (a, b), fp in committed.items()}
    hashes: KnownHashes | None = None
    if spec.windowed and "source_hash" in spec.table.c:  # every row written carries its hash, reprocessed or not
        hashes = _none_held if reprocess else functools.partial(held_hashes, engine, account, spec.dated)
    return build_frames(spec.name, raw.capture, parse or spec.parse, adapt or getattr(ADAPTER, spec.adapt),
                        fingerprints=fingerprints, ids_of=_unchanged_ids(spec),
                        stamp_window=spec.window_in_records, batch_documents=spec.chunk_records,
                        keep_ids=not window_owns_rows(spec), held_hashes=hashes,
                        workers=parse_workers() if parse is None and adapt is None else 1)


def _none_held(_date_from: str, _date_to: str) -> dict[str, str]:
    return {}


def window_owns_rows(spec: EntitySpec) -> bool:
    """A windowed entity whose rows are removed when their window no longer returns them (reports, snapshots):
    a row is keyed by what its window asked, so it cannot move to another window. Its ids are then needed only
    window by window, never for the whole capture."""
    return spec.windowed and spec.vanished == HARD


def _unchanged_ids(spec: EntitySpec) -> Callable[[BinaryIO], list[str]]:
    """How an unchanged window's ids are read without parsing it. Only soft-deleted entities (documents) need
    them: a document may move to another window of the run and must not count as vanished there. Rows removed
    or kept by their own window (reports, shifts) need none, and decoding their answers again cost the bench's
    unchanged year of sales 16 s."""
    if spec.vanished != "soft":
        return _no_ids
    return document_ids if spec.answer_format == "xml" else json_ids


def _no_ids(_stream: BinaryIO) -> list[str]:
    return []


# ------------------------------------------------------------------------------------------------- write


@dataclass
class TableWrite:
    """What the write step did, for metadata and checks."""

    result: SyncResult
    stored: quality.CheckOutcome = field(default_factory=lambda: quality.CheckOutcome(True))
    guards: list[str] = field(default_factory=list)  # why deletions were withheld
    child_sum_failures: list[str] = field(default_factory=list)  # checked window by window, right after commit
    #: Windows whose rows held after the commit differ from the rows they returned (entities whose windows own
    #: their rows, `window_owns_rows`); None where the row-count check compares ids over the whole capture.
    row_count_failures: list[str] | None = None
    preview: list[dict[str, Any]] = field(default_factory=list)  # a few rows, as text
    windows_committed: int = 0


def write(spec: EntitySpec, engine: Engine, account: uuid.UUID, frame: FrameSet, raw: RawResult,
          policy: WritePolicy, run_id: str | None, started: datetime | None = None, log: Log = _quiet) -> TableWrite:
    """Write the spooled frame (its summary known up front) into the entity's table and record the outcome on
    the account's sync state: a step that stored too little (see `quality.rejections_within_limit`) is logged
    but not counted as a success."""
    started = started or datetime.now(UTC)
    if raw.skipped:  # nothing was fetched: nothing is written, and nothing we hold is taken for deleted
        return TableWrite(SyncResult(spec.name))
    # A lazy set from `frames()` (or one spooled but not read back): every held row would look vanished, and each
    # window would parse the capture again.
    if "chunks" not in frame.summary or frame.window_source is None:
        raise ValueError(f"{spec.name}: write() needs the spooled frame set (framestore.write_frames, then "
                         "read_frames): reconciliation reads every returned id before the first window")
    try:
        done = _commit_windows(spec, engine, account, frame, raw, log) if spec.windowed else \
            _upsert_all(spec, engine, account, frame, policy)
    except Exception as exc:
        failure = classify(exc)
        state.record_failure(engine, account, spec.name, run_id, failure.reason)
        raise failure from exc
    done.stored = quality.rejections_within_limit(done.result, policy.max_rejected_share)
    # An export that stopped part-way committed what it fetched, but the entity has not synced: not a success
    # (onboarding retries it, freshness tells), and the error says why.
    error = frame.failure or (None if done.stored.passed else done.stored.detail)
    state.record_run(engine, account, spec.name, run_id, done.result, started, error=error)
    return done


class _Err:
    """Adapter errors travel through the frame as dicts; the warehouse wants objects with as_dict()."""

    def __init__(self, data: dict[str, Any]):
        self._data = data

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)


def _preview(chunk: ParsedFrame, spec: EntitySpec) -> list[dict[str, Any]]:
    cols = [c for c in spec.preview_columns if c in chunk.rows.column_names]
    if not cols or not chunk.rows.num_rows:
        return []
    return [{k: str(v) for k, v in row.items()} for row in chunk.rows.select(cols).slice(0, 5).to_pylist()]


def _upsert_all(spec: EntitySpec, engine: Engine, account: uuid.UUID, frame: FrameSet,
                policy: WritePolicy) -> TableWrite:
    """An undated entity is one answer: small enough to upsert (and soft-delete against) as one batch."""
    rows: list[dict[str, Any]] = []
    errors: list[_Err] = []
    preview: list[dict[str, Any]] = []
    for chunk in frame.chunks():
        rows += frame_records(chunk.rows)
        errors += [_Err(e) for e in chunk.errors]
        preview = preview or _preview(chunk, spec)
    result = upsert_dimension(engine, spec.name, account, rows, errors, max_vanished_share=policy.max_vanished_share)
    return TableWrite(result, guards=[result.deletion_guard] if result.deletion_guard else [], preview=preview)


def _commit_windows(spec: EntitySpec, engine: Engine, account: uuid.UUID, frame: FrameSet,
                    raw: RawResult, log: Log = _quiet) -> TableWrite:
    """Commit window by window (each with its deletions, its pending documents and, when incremental, the
    watermark); a window arrives as several chunks written in one transaction, so memory stays bounded by a
    chunk. On PostgreSQL two windows are written at once and committed in order (`window_writers`). Each
    window's stored line sums are compared with the source's right after it commits."""
    policy = raw.policy or WindowPolicy()
    # A document that moved to another window of this run has not vanished: documents are reconciled against the
    # whole capture. Rows a window owns are reconciled (and counted) against that window's own ids.
    owned = not frame.ids_kept
    capture_ids = None if owned else frame.returned_ids  # built once: a year's capture holds 200k ids
    row_count_failures: list[str] | None = [] if owned else None
    child_sum_failures: list[str] = []
    preview: list[dict[str, Any]] = []
    windows = [_WindowTally(spec, frame, answer, owned) for answer in frame.answers]
    jobs = (WindowJob(
        date.fromisoformat(w.answer["from"]), date.fromisoformat(w.answer["to"]),
        None if w.unchanged else w.batches, returned_ids=w.returned if owned else capture_ids,
        advance_watermark=policy.advances_watermark, max_vanished_share=policy.max_vanished_share,
        fingerprint=w.answer.get("fingerprint"), dated=spec.dated,
        unchanged_documents=(len(w.answer.get("ids") or ()) or w.answer["source_records"]) if w.unchanged else None,
    ) for w in windows)
    # Windows written at once only where two or more changed (onboarding, backfills): an hourly run's one
    # changed window, and its unchanged ones (only a watermark each), gain nothing from a second connection.
    configured = table_writers(engine)  # read every run: a bad setting fails the first run, not the first backfill
    writers = configured if sum(not w.unchanged for w in windows) >= 2 else 1
    progress = WindowProgress(log, len(windows))
    outcomes: list[WindowOutcome] = []
    for tally, outcome in zip(windows, commit_windows(engine, account, jobs, writers=writers),
                              strict=True):
        if not tally.unchanged:
            rejected = {d["external_id"] for d in outcome.result.error_details if d.get("external_id")}
            if spec.child_table:
                child_sum_failures += line_sum_failures(engine, account, tally.expected, tally.ids, rejected)
            if row_count_failures is not None and outcome.guard is None and outcome.held_after is not None:
                want = sum(1 for i in tally.ids if i not in rejected)  # two rows under one key are a fault
                if outcome.held_after != want:
                    row_count_failures.append(f"window {tally.label}: returned {want} rows to store, "
                                              f"{outcome.held_after} held after its commit")
            preview = preview or tally.preview
        tally.done()
        outcomes.append(outcome)
        r = outcome.result
        progress(len(outcomes), f"{spec.name}: committed window {len(outcomes)}/{len(windows)} {tally.label}: "
                                f"{r.created} created, {r.updated} updated, {r.unchanged} unchanged, "
                                f"{r.errors} not stored")
    return TableWrite(merge_results(outcomes, spec.name), guards=[o.guard for o in outcomes if o.guard],
                      child_sum_failures=child_sum_failures, preview=preview, windows_committed=len(outcomes),
                      row_count_failures=row_count_failures)


class _WindowTally:
    """One window's batches, and what they tell about the source as they are written (the lines' counts and sums
    per document, the ids written or returned, a preview): the checks after its commit compare it with what is
    stored. Filled afresh each time the window's batches are made (a window may be written twice)."""

    def __init__(self, spec: EntitySpec, frame: FrameSet, answer: dict[str, Any], owned: bool):
        self.spec, self.frame, self.answer, self.owned = spec, frame, answer, owned
        self.label: str = answer["label"]
        self.unchanged = bool(answer.get("unchanged"))
        self.expected: dict[str, tuple[int, Decimal]] = {}  # the source's line count and sum per document
        self.ids: list[str] = []  # ids written (kept documents are neither written nor line-checked again)
        self.returned: set[str] = set()  # every id the window returned, when the window owns its rows
        self.preview: list[dict[str, Any]] = []

    def done(self) -> None:
        """Forget the window's tallies (after its checks: only the windows in flight hold theirs). Emptied in
        place: the window's job holds `returned`."""
        self.expected.clear()
        self.ids.clear()
        self.returned.clear()

    def batches(self) -> Iterator[WindowBatch]:
        self.done()
        for chunk in self.frame.window_chunks(self.label):
            self.ids.extend(chunk.row_ids)
            if self.owned:
                self.returned.update(chunk.external_ids)
                self.returned.update(e["external_id"] for e in chunk.errors if e.get("external_id"))
            items = chunk.children  # invoice lines stay an Arrow table down to the COPY
            for owner, count, line_sum in source_line_totals(items) if self.spec.child_table else ():
                before = self.expected.get(owner, (0, Decimal(0)))
                self.expected[owner] = (before[0] + count, before[1] + line_sum)
            if not self.preview:
                self.preview.extend(_preview(chunk, self.spec))
            # Invoices (a few per thousand lines) go on as dicts; rows without lines stay Arrow down to the stage.
            rows = frame_records(chunk.rows) if self.spec.child_table else chunk.rows
            yield WindowBatch(rows, items, [_Err(e) for e in chunk.errors], kept=len(chunk.kept_ids))


def source_line_totals(lines: pa.Table) -> list[tuple[str, int, Decimal]]:
    """Each invoice's line count and total of line sums in a chunk (missing sums count as 0), added up by Arrow."""
    if not lines.num_rows:
        return []
    totals = lines.group_by("invoice_external_id").aggregate([("sum", "sum"), ([], "count_all")])
    return [(owner, count, line_sum or Decimal(0)) for owner, line_sum, count in zip(
        totals["invoice_external_id"].to_pylist(), totals["sum_sum"].to_pylist(), totals["count_all"].to_pylist(),
        strict=True)]


def line_sum_failures(engine: Engine, account: uuid.UUID, expected: dict[str, tuple[int, Decimal]],
                      ids: list[str], rejected: set[str]) -> list[str]:
    """Documents whose stored lines differ from the source's: count or total of line sums."""
    stored = quality.line_totals(engine, account, ids, ADAPTER.external_system)
    failing = []
    for ext in ids:
        if ext in rejected:
            continue
        want, got = expected.get(ext, (0, Decimal(0))), stored.get(ext, (0, Decimal(0)))
        if want[0] != got[0] or want[1] != got[1]:
            failing.append(f"{ext}: source {want[0]} lines / {want[1]}, stored {got[0]} lines / {got[1]}")
    return failing
