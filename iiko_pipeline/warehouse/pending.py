"""Documents iiko returned that we could not store yet: kept with their reason and retried until they store.

Why a list and not a stalled watermark: the watermark says "every date up to here was read"; if it stopped at
the first window with a rejected document, one document that can never store (bad data in iiko) would make
every later hourly run re-read more and more history. Instead the watermark moves on, and each rejected
document gets a row in `sync_pending` in the same transaction as its window. Incremental runs re-read the
dates of *due* rows (wherever they lie, also far behind the lookback), so the cost is a few extra windows
only while something is pending:

- a row of kind `reference` (a supplier or store we did not hold) is due as soon as reference data has synced
  since its last attempt: the first run after the supplier appears stores the document;
- any row is also due after a back-off (1 h, doubling per attempt, at most a day), in case iiko corrects a
  document the adapter refused.

A row goes away when its document is stored, or when a complete re-export of its dates no longer holds it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.upsert import id_chunks

REFERENCE = "reference"  # a parent row is missing: retried once reference data has synced again
DATA = "data"  # the adapter refused the record: retried after a back-off
FIRST_BACKOFF = timedelta(hours=1)
MAX_BACKOFF = timedelta(days=1)
#: Due dates closer than this are re-read as one range (the client still splits it into export windows).
MERGE_GAP_DAYS = 7


@dataclass(frozen=True)
class PendingDocument:
    """One document to retry: its key, the dates a retry must re-read, and why it was not stored."""

    external_id: str
    date_from: date
    date_to: date
    kind: str
    reason: str


def pending_key(external_id: str | None, record: str) -> str:
    """The row key: the document's id as stored (lower-case GUID), or a digest of its description when iiko
    sent no usable id (such a document can only be told apart by what it says)."""
    ident = (external_id or "").strip().lower()
    return ident or "record:" + hashlib.sha256(record.encode()).hexdigest()[:32]


def backoff(attempts: int) -> timedelta:
    return min(FIRST_BACKOFF * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def _table_key(account: uuid.UUID, entity: str) -> tuple[Any, ...]:
    sp = schema.sync_pending
    return (sp.c.account_id == account, sp.c.entity == entity)


def has_pending(conn: Connection, account: uuid.UUID, entity: str) -> bool:
    sp = schema.sync_pending
    return conn.execute(sa.select(sp.c.external_id).where(*_table_key(account, entity)).limit(1)).first() is not None


def record(conn: Connection, account: uuid.UUID, entity: str, documents: Sequence[PendingDocument],
           now: datetime) -> None:
    """Add or refresh rows for documents rejected in this attempt (one more attempt, the latest reason)."""
    if not documents:
        return
    sp = schema.sync_pending
    by_key = {d.external_id: d for d in documents}
    existing: dict[str, int] = {}
    for chunk in id_chunks(list(by_key), 500):
        existing.update(conn.execute(sa.select(sp.c.external_id, sp.c.attempts).where(
            *_table_key(account, entity), sp.c.external_id.in_(chunk))).all())
    for key, doc in by_key.items():
        values = {"date_from": doc.date_from, "date_to": doc.date_to, "kind": doc.kind, "reason": doc.reason[:2000],
                  "last_attempt_at": now}
        if key in existing:
            conn.execute(sp.update().where(*_table_key(account, entity), sp.c.external_id == key)
                         .values(attempts=existing[key] + 1, **values))
        else:
            conn.execute(sp.insert().values(account_id=account, entity=entity, external_id=key, attempts=1,
                                            first_seen_at=now, **values))


def resolve(conn: Connection, account: uuid.UUID, entity: str, stored_ids: Iterable[str]) -> int:
    """Drop the rows of documents that are stored now."""
    removed = 0
    sp = schema.sync_pending
    for chunk in id_chunks(list(stored_ids), 1000):
        removed += conn.execute(sp.delete().where(*_table_key(account, entity),
                                                  sp.c.external_id.in_(chunk))).rowcount or 0
    return removed


def drop_vanished(conn: Connection, account: uuid.UUID, entity: str, date_from: date, date_to: date,
                  returned_ids: Collection[str], keep: Collection[str] = ()) -> int:
    """Drop rows dated inside a completely re-exported range whose document iiko no longer returns (it was
    deleted there: there is nothing left to store). Call it only when the range's answer was trusted (not
    guarded as suspicious)."""
    sp = schema.sync_pending
    rows = conn.execute(sa.select(sp.c.external_id).where(
        *_table_key(account, entity), sp.c.date_from >= date_from, sp.c.date_to <= date_to)).scalars().all()
    gone = [k for k in rows if k not in returned_ids and k not in keep]
    return resolve(conn, account, entity, gone)


def list_pending(engine: Engine, account_id: uuid.UUID | str, entity: str) -> list[dict[str, Any]]:
    """Every pending row of one account and entity, oldest date first."""
    sp = schema.sync_pending
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sp).where(*_table_key(uuid.UUID(str(account_id)), entity))
                            .order_by(sp.c.date_from, sp.c.external_id)).mappings().all()
    return [dict(r) for r in rows]


def is_due(row: dict[str, Any], now: datetime, references_synced_at: datetime | None) -> bool:
    last = row["last_attempt_at"]
    if row["kind"] == REFERENCE and references_synced_at is not None and references_synced_at > last:
        return True
    return now >= last + backoff(row["attempts"])


def due_ranges(engine: Engine, account_id: uuid.UUID | str, entity: str, *, before: date,
               references_synced_at: datetime | None, now: datetime | None = None) -> list[tuple[date, date]]:
    """Date ranges to re-read for due rows dated before `before` (later dates are read by the run anyway),
    merged where they lie close together, oldest first."""
    now = now or datetime.now(UTC)
    ranges = sorted((r["date_from"], min(r["date_to"], before - timedelta(days=1)))
                    for r in list_pending(engine, account_id, entity)
                    if r["date_from"] < before and is_due(r, now, references_synced_at))
    merged: list[tuple[date, date]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1] + timedelta(days=MERGE_GAP_DAYS):
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
