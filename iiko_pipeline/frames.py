"""Parsed frames: typed Arrow tables built from raw answers by an adapter, one chunk per raw answer.

The frame layer sits between the raw bytes and the warehouse so a user can see (and a check can count) what
the adapter made of an answer before anything is written. It streams: a `FrameSet` yields one `ParsedFrame`
per raw answer (one invoice window), so memory stays bounded by the largest window, not by the history.
Values stay typed (str GUIDs, Decimal, date, datetime, bool) and missing values stay None: Arrow round-trips
Python values as they are, where pandas turned them into NaN/NaT and object columns (the bench measured that
conversion, both ways, as a sizeable share of a year-long load).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from iiko_pipeline.adapters.base import AdaptedBatch
from iiko_pipeline.adapters.iiko import ADAPTER_VERSION
from iiko_pipeline.adapters.iiko_reports import WINDOW_KEY
from iiko_pipeline.documents import DOCUMENT_ID, DocumentSplit, document_digest, document_id
from iiko_pipeline.iiko import parsing
from iiko_pipeline.rawstore import LEFTOVER_AGE_S, RawCapture, RawPart
from iiko_pipeline.workers import can_send, run_ahead

EMPTY = pa.table({})

Parser = Callable[[parsing.Source], Iterator[dict[str, Any]]]


@dataclass
class ParsedFrame:
    """The adapter's output for one raw answer: rows, child rows (invoice lines) and rejected records."""

    entity: str
    rows: pa.Table
    children: pa.Table = field(default_factory=lambda: EMPTY)
    errors: list[dict[str, Any]] = field(default_factory=list)
    source_records: int = 0
    label: str = ""  # the raw answer: the entity name, or "YYYY-MM-DD..YYYY-MM-DD" for an invoice window
    window_from: str | None = None
    window_to: str | None = None
    fingerprint: str | None = None  # of the whole raw answer this chunk belongs to
    unchanged: bool = False  # the answer matched the last committed one: no rows, only its ids
    known_ids: list[str] = field(default_factory=list)
    #: Documents of a changed answer that are held, live, with the same digest (`documents.document_digest`):
    #: returned by iiko, so not vanished, but neither parsed, adapted nor written again.
    kept_ids: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.rows.num_rows + len(self.errors)

    @property
    def external_ids(self) -> list[str]:
        """Every id this chunk returned: its rows', and those of documents kept unchanged."""
        if self.unchanged:
            return list(self.known_ids)
        return [*self.row_ids, *self.kept_ids]

    @property
    def row_ids(self) -> list[str]:
        """The ids of the rows this chunk carries to the table."""
        return self.rows.column("external_id").to_pylist() if "external_id" in self.rows.column_names else []


@dataclass
class FrameSet:
    """All chunks of one frame asset. Chunks come from `chunks()`, lazily, in fetch order.

    `summary` is filled as chunks are produced or read (counts, ids per chunk, errors), so checks and metadata
    never need the rows themselves in memory.
    """

    entity: str
    chunk_source: Callable[[], Iterator[ParsedFrame]]
    window_from: str | None = None
    window_to: str | None = None
    failure: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    #: Whether the summary keeps every chunk's row ids. Rows that cannot move between windows (a report's or a
    #: snapshot's rows, owned by the dates their window asked) are reconciled and counted window by window
    #: from the chunks themselves: a year of sales holds five million ids, which the summary would keep all run.
    ids_kept: bool = True
    #: One window's chunks (by label), read again as often as asked: a spooled set has it (`read_frames`).
    window_source: Callable[[str], Iterator[ParsedFrame]] | None = None

    def chunks(self) -> Iterator[ParsedFrame]:
        return self.chunk_source()

    def window_chunks(self, label: str) -> Iterator[ParsedFrame]:
        """One window's chunks, read again as often as asked. Only a spooled set can: a lazy one would parse
        every answer again for each window."""
        if self.window_source is None:
            raise ValueError(f"{self.entity}: one window's chunks need the spooled frame set (read_frames)")
        return self.window_source(label)

    @property
    def chunk_summaries(self) -> list[dict[str, Any]]:
        """One summary per chunk (a raw answer, or up to 1,000 documents of one export window)."""
        return list(self.summary.get("chunks", []))

    @property
    def answers(self) -> list[dict[str, Any]]:
        """One summary per raw answer (an export window), from its first chunk: windows, not chunks."""
        seen: dict[str, dict[str, Any]] = {}
        for chunk in self.chunk_summaries:
            seen.setdefault(chunk["label"], chunk)
        return list(seen.values())

    @property
    def source_records(self) -> int:
        return sum(c["source_records"] for c in self.chunk_summaries)

    @property
    def row_count(self) -> int:
        return sum(c["rows"] for c in self.chunk_summaries)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e for c in self.chunk_summaries for e in c["errors"]]

    @property
    def returned_ids(self) -> set[str]:
        """Every id the source returned in this capture, including records the adapter rejected."""
        ids = {i for c in self.chunk_summaries for i in c["ids"]}
        ids.update(e["external_id"] for e in self.errors if e.get("external_id"))
        return ids


def chunk_summary(frame: ParsedFrame, *, with_ids: bool = True) -> dict[str, Any]:
    return {"label": frame.label, "from": frame.window_from, "to": frame.window_to, "rows": frame.rows.num_rows,
            "children": frame.children.num_rows, "source_records": frame.source_records, "errors": frame.errors,
            "ids": frame.external_ids if with_ids else [], "fingerprint": frame.fingerprint,
            "unchanged": frame.unchanged, "kept": frame.kept_ids}


def answer_fingerprint(raw_sha256: str) -> str:
    """What identifies a committed answer: its bytes and the adapter version that turned them into rows."""
    return hashlib.sha256(f"{ADAPTER_VERSION}:{raw_sha256}".encode()).hexdigest()


#: The hashes of the live documents held for a window: `(date_from, date_to) -> {external_id: hash}`.
KnownHashes = Callable[[str, str], dict[str, str]]


#: How much of an unchanged answer the id scan holds at a time (decompressed), and the most it carries over
#: from one block to the next when no id ended in it (an `<id>` element is under 100 bytes).
_SCAN_BLOCK = 1 << 22
_SCAN_CARRY = 4096


def document_ids(stream: BinaryIO) -> list[str]:
    """Invoice ids straight from the bytes (only documents carry `<id>`; lines have none): enough to know which
    documents an unchanged answer holds without parsing it. Read block by block, so an unchanged window (tens of
    MB) is never held whole: a block's unfinished end is carried into the next, and an id is taken only once its
    `</id>` has arrived."""
    ids: list[str] = []
    carry = b""
    while block := stream.read(_SCAN_BLOCK):
        text = carry + block
        end = 0
        for match in DOCUMENT_ID.finditer(text):
            ids.append(match.group(1).decode().lower())
            end = match.end()
        carry = text[max(end, len(text) - _SCAN_CARRY):]
    return ids


def json_ids(stream: BinaryIO) -> list[str]:
    """The ids of a JSON list answer's items (cash shifts); none for answers whose rows have no id (OLAP reports,
    balances: their rows are keyed by what they group, and a window owns its dates, so no row moves between
    windows)."""
    data = json.loads(stream.read())
    if not isinstance(data, list):
        return []
    return [str(item["id"]).lower() for item in data if isinstance(item, dict) and item.get("id")]


def build_frames(entity: str, capture: RawCapture, parse: Parser, adapt: Callable[[list], AdaptedBatch], *,
                 fingerprints: dict[tuple[str, str], str] | None = None,
                 batch_documents: int = 1000, ids_of: Callable[[BinaryIO], list[str]] = document_ids,
                 stamp_window: bool = False, keep_ids: bool = True,
                 held_hashes: KnownHashes | None = None, workers: int = 1) -> FrameSet:
    """A lazy frame set over the capture's answers, in chunks of at most `batch_documents` records; `keep_ids`
    False when rows cannot move between windows (see `FrameSet.ids_kept`).

    With `held_hashes` (documents that store their hash), a changed window's documents whose hash equals the
    one held are not adapted: the chunk names them in `kept_ids`, and its rows carry `source_hash`.

    A document re-dated between two window requests can appear in two windows: the first occurrence wins, as in
    the client's own `incoming_invoices`. A window whose fingerprint equals the last committed one becomes a
    single `unchanged` chunk carrying only its document ids.

    With `workers` > 1 and at least two changed windows, changed windows are parsed and adapted in that many
    worker processes (`workers.run_ahead`) while this process takes their chunks in window order; a window one of
    whose documents an earlier window already returned, or whose worker failed, is redone here, so the chunks
    are exactly those of the one-process path.
    """
    windowed = capture.window_from is not None
    known = fingerprints or {}
    shape = _WindowShape(entity, parse, adapt, batch_documents, stamp_window, windowed)

    def unchanged(part: RawPart) -> bool:
        return windowed and known.get(shape.dates(part)) == answer_fingerprint(part.sha256)

    def held_for(part: RawPart) -> dict[str, str] | None:
        return held_hashes(*shape.dates(part)) if held_hashes is not None and windowed else None

    def here(part: RawPart, seen: set[str]) -> Iterator[ParsedFrame]:
        if unchanged(part):
            with gzip.open(part.path, "rb") as stream:
                ids = [i for i in ids_of(stream) if i not in seen]
            seen.update(ids)
            yield ParsedFrame(rows=EMPTY, source_records=part.records, unchanged=True, known_ids=ids,
                              **shape.common(part))
        else:
            yield from _window_chunks(shape, part, seen, held_for(part))

    def chunks() -> Iterator[ParsedFrame]:
        seen: set[str] = set()
        changed = sum(not unchanged(part) for part in capture.parts)
        if workers < 2 or changed < 2 or not windowed or not can_send(shape):
            for part in capture.parts:
                yield from here(part, seen)
            return

        scratch = _scratch_folder()

        def job(part: RawPart) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
            return None if unchanged(part) else (_window_in_worker, (shape, part, held_for(part), str(scratch)))

        try:
            for part, adapted in run_ahead(capture.parts, job, workers):
                if adapted is None or not adapted.ids.isdisjoint(seen):
                    yield from here(part, seen)
                else:
                    seen.update(adapted.ids)
                    for frame, files in zip(adapted.frames, adapted.files, strict=True):
                        yield dataclasses.replace(frame, rows=_read_left(files[0]), children=_read_left(files[1]))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    return FrameSet(entity, chunks, capture.window_from, capture.window_to, capture.failure, ids_kept=keep_ids)


_SCRATCH_PREFIX = "iiko-frames-"


def _scratch_folder() -> Path:
    """A private folder (0700) for the workers' chunks, removed when the step's frames are taken. Folders a killed
    step left behind (untouched for an hour: a live one changes with every chunk) are removed first: they hold
    account data and nothing reads them."""
    cutoff = time.time() - LEFTOVER_AGE_S
    for old in Path(tempfile.gettempdir()).glob(f"{_SCRATCH_PREFIX}*"):
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # gone meanwhile
            continue
    return Path(tempfile.mkdtemp(prefix=_SCRATCH_PREFIX))


@dataclass(frozen=True)
class _WindowShape:
    """How one answer becomes chunks: everything `_window_chunks` needs besides the answer, sent as is to a worker."""

    entity: str
    parse: Parser
    adapt: Callable[[list], AdaptedBatch]
    batch_documents: int
    stamp_window: bool
    windowed: bool

    def dates(self, part: RawPart) -> tuple[str | None, str | None]:
        """The window's first and last day, from the answer's label ("YYYY-MM-DD..YYYY-MM-DD")."""
        start, _, end = part.label.partition("..") if self.windowed else (None, None, None)
        return start or None, end or None

    def common(self, part: RawPart) -> dict[str, Any]:
        start, end = self.dates(part)
        return {"entity": self.entity, "label": part.label, "window_from": start, "window_to": end,
                "fingerprint": answer_fingerprint(part.sha256)}


@dataclass
class _Adapted:
    """A worker's chunks of one window (their tables left in Arrow files, so neither the worker nor the step's
    process holds a whole window's tables), and every document id it saw there (checked against earlier windows)."""

    frames: list[ParsedFrame]
    files: list[tuple[str, str]]
    ids: set[str]


def _window_in_worker(shape: _WindowShape, part: RawPart, held: dict[str, str] | None, scratch: str) -> _Adapted:
    seen: set[str] = set()
    frames, files = [], []
    for frame in _window_chunks(shape, part, seen, held):
        paths = (_left(frame.rows, scratch), _left(frame.children, scratch))
        frames.append(dataclasses.replace(frame, rows=EMPTY, children=EMPTY))
        files.append(paths)
    seen.discard("")  # documents without an id are never taken for repeats
    return _Adapted(frames, files, seen)


def _left(table: pa.Table, scratch: str) -> str:
    """A worker's table written to an Arrow file for the step's process (uncompressed: written and read at
    memory speed, and deleted as soon as it is read)."""
    path = os.path.join(scratch, f"{uuid.uuid4().hex}.arrow")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def _read_left(path: str) -> pa.Table:
    """A table a worker left (`_left`), read and its file deleted."""
    with pa.OSFile(path, "rb") as source:
        table = pa.ipc.open_file(source).read_all()
    os.remove(path)
    return table


def _window_chunks(shape: _WindowShape, part: RawPart, seen: set[str],
                   held: dict[str, str] | None) -> Iterator[ParsedFrame]:
    """A changed answer's chunks. With `held` (documents that keep their digest), the answer is cut into its
    documents' bytes first and only the changed ones are parsed (`_changed_chunks`); an answer the cut cannot vouch
    for, and answers of other entities, are parsed whole (`_parsed_chunks`)."""
    if held is not None and shape.windowed:
        plan = _plan(part, seen, held)
        if plan is not None:
            yield from _changed_chunks(shape, part, plan)
            return
    with gzip.open(part.path, "rb") as stream:
        yield from _parsed_chunks(shape, part, stream, seen, hashed=held is not None)


_SKIP, _KEPT, _CHANGED = 0, 1, 2


@dataclass
class _Plan:
    """An answer's documents in order: id, digest and what becomes of each (skipped as returned by an earlier
    window, kept as held, or changed: parsed and written), with the answer's prolog and closing tag."""

    prefix: bytes
    suffix: bytes
    ids: list[str]
    digests: list[str]
    actions: list[int]


def _plan(part: RawPart, seen: set[str], held: dict[str, str]) -> _Plan | None:
    """Cut the answer into documents and decide each one, or None (and `seen` untouched) when the cut does not
    add up: a document left open or self-closing, or another count than the raw step's own."""
    with gzip.open(part.path, "rb") as stream:
        split = DocumentSplit(stream)
        entries = [(document_id(piece), document_digest(piece, ADAPTER_VERSION)) for piece in split]
    if not split.complete or split.count != part.records:
        return None
    ids, digests = [ident for ident, _ in entries], [digest for _, digest in entries]
    actions, returned = [], set()
    for ident, digest in entries:
        if ident and (ident in seen or ident in returned):
            actions.append(_SKIP)  # the first occurrence wins, as in the client's own `incoming_invoices`
            continue
        returned.add(ident)
        actions.append(_KEPT if ident and held.get(ident) == digest else _CHANGED)
    seen.update(returned)
    return _Plan(split.prefix, split.suffix, ids, digests, actions)


def _changed_chunks(shape: _WindowShape, part: RawPart, plan: _Plan) -> Iterator[ParsedFrame]:
    """The changed documents, `batch_documents` at a time, parsed between the answer's own prolog and closing tag
    and adapted; each chunk also counts the documents it passed over and names the kept ones."""
    common = shape.common(part)
    batch: list[bytes] = []
    positions: list[int] = []
    first = 0  # the first document the next chunk accounts for
    yielded = False

    def chunk(last: int) -> ParsedFrame:
        records = list(shape.parse(plan.prefix + b"".join(batch) + plan.suffix)) if batch else []
        if len(records) != len(batch):
            raise ValueError(f"{part.label}: {len(batch)} documents were cut from the answer's bytes but the parser "
                             f"read {len(records)}; the answer is not shaped as iiko exports are")
        kept = [plan.ids[i] for i in range(first, last) if plan.actions[i] == _KEPT]
        hashes = {plan.ids[i]: plan.digests[i] for i in positions}
        return _adapted(shape, part, common, records, last - first, kept, hashes)

    if _CHANGED in plan.actions:  # else nothing is read again: every document was kept or skipped
        with gzip.open(part.path, "rb") as stream:
            for index, piece in enumerate(DocumentSplit(stream)):
                if plan.actions[index] != _CHANGED:
                    continue
                batch.append(piece)
                positions.append(index)
                if len(batch) == shape.batch_documents:
                    yield chunk(index + 1)
                    yielded, first = True, index + 1
                    batch.clear()
                    positions.clear()
    if not yielded or first < len(plan.actions):  # the rest, or the one chunk of an answer with no changes
        yield chunk(len(plan.actions))


def _parsed_chunks(shape: _WindowShape, part: RawPart, stream: BinaryIO, seen: set[str], *,
                   hashed: bool) -> Iterator[ParsedFrame]:
    """The whole answer parsed, documents already `seen` skipped, `batch_documents` at a time; `hashed`: the rows
    keep a digest, which this path has not got (None: the next run parses them again)."""
    common = shape.common(part)
    records_iter = shape.parse(stream)
    yielded = False
    while True:
        records = list(itertools.islice(records_iter, shape.batch_documents if shape.windowed else None))
        if not records and yielded:
            break  # an empty answer still yields one empty chunk: its window must be reconciled
        source = len(records)
        if shape.windowed:
            fresh = []
            for record in records:
                ident = str(record.get("id") or "").strip().lower()
                if ident and ident in seen:
                    continue
                seen.add(ident)
                fresh.append(record)
            records = fresh
        yield _adapted(shape, part, common, records, source, [], {} if hashed else None)
        yielded = True
        if not shape.windowed or not source:
            break


def _adapted(shape: _WindowShape, part: RawPart, common: dict[str, Any], records: list[dict[str, Any]],
             source: int, kept: list[str], hashes: dict[str, str] | None) -> ParsedFrame:
    """One chunk: the records adapted into Arrow tables (rows carry `source_hash` when `hashes` is given)."""
    if shape.stamp_window:  # records that do not say their own date (balances): the window says it
        for record in records:
            record[WINDOW_KEY] = (common["window_from"], common["window_to"])
    batch: AdaptedBatch = shape.adapt(records)
    del records
    if hashes is not None:
        for row in batch.rows:
            row["source_hash"] = hashes.get(str(row.get("external_id") or "").lower())
    rows = to_table(batch.rows)
    children = batch.child_table if batch.child_table is not None else to_table(batch.child_rows)
    errors = [{**e.as_dict(), **({"window": part.label} if shape.windowed else {})} for e in batch.errors]
    del batch  # only the Arrow tables travel on: the dicts would double the chunk's memory
    return ParsedFrame(rows=rows, children=children, errors=errors, source_records=source, kept_ids=kept,
                       **common)


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The adapter's rows as an Arrow table; column types are inferred from the values (Decimal -> decimal128,
    datetime -> timestamp, None -> null), the column set from the first row (an adapter's rows share keys)."""
    return pa.Table.from_pylist(rows) if rows else EMPTY


def frame_records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as plain dicts, typed as the adapter made them, None for missing values."""
    return table.to_pylist()
