"""Write two windows at once on PostgreSQL, and still commit them one by one in window order.

A backfill's table step is mostly PostgreSQL merging one window's rows (the bench: ~90% of the step) while our
process waits, and a PostgreSQL connection uses one core. With two connections the next window's rows are
merged while the previous one's are, on the second core. Nothing of "each window commits with its watermark"
changes: a window's rows are written in its own transaction, but everything windows share (reconciliation,
pending documents, fingerprint, watermark: `finish_window`) is done, and the transaction committed, only after
the window before it committed. A run killed at any point leaves the warehouse at a window boundary, as before.

Two windows of one capture never write the same row (a document belongs to one window of it), so neither waits
for the other's locks. Should they anyway (windows that overlap: a retried range), the later window would wait
for the earlier one's commit while holding what the earlier one waits for, a cycle PostgreSQL cannot see. The
later window watches for it while it waits, and if its rows block the earlier window it rolls back and writes
them again once the earlier one committed.

SQLite has one writer at a time: its windows are committed one after the other, as `commit_window` does.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from iiko_pipeline.warehouse.dated_windows import (
    INVOICES,
    DatedTable,
    WindowBatch,
    WindowOutcome,
    commit_window,
    finish_window,
    refresh_window_statistics,
    write_batches,
)
from iiko_pipeline.warehouse.settings import count_setting

#: Environment setting: how many windows the table step writes at once on PostgreSQL (1: one at a time).
WRITERS_SETTING = "IIKO_TABLE_WRITERS"
DEFAULT_WRITERS = 2
#: How often a window waiting for its turn to commit checks whether it blocks the window before it (seconds).
CYCLE_POLL_SECONDS = 0.25


def table_writers(engine: Engine) -> int:
    """Windows written at once: `IIKO_TABLE_WRITERS` (default 2) on PostgreSQL, always 1 on SQLite."""
    wanted = count_setting(WRITERS_SETTING, DEFAULT_WRITERS, "windows written at once")
    return wanted if engine.dialect.name == "postgresql" else 1


@dataclass
class WindowJob:
    """One window to commit. `batches` makes its batches (None: the window is unchanged, only its watermark
    moves); it may be called a second time when the window's rows are written again."""

    date_from: date
    date_to: date
    batches: Callable[[], Iterable[WindowBatch]] | None
    returned_ids: Collection[str]  # read when the window finishes, after its batches
    advance_watermark: bool
    max_vanished_share: float
    fingerprint: str | None = None
    unchanged_documents: int | None = None
    dated: DatedTable = INVOICES

    def finish_options(self) -> dict[str, Any]:
        return {"returned_ids": self.returned_ids, "advance_watermark": self.advance_watermark,
                "max_vanished_share": self.max_vanished_share, "fingerprint": self.fingerprint,
                "unchanged_documents": self.unchanged_documents, "dated": self.dated}


class WindowAbandoned(RuntimeError):
    """A window rolled back because the window before it did not commit (or the step stopped)."""


@dataclass
class _Turn:
    """A window's place in the commit order, seen by the window after it."""

    done: threading.Event = field(default_factory=threading.Event)
    committed: bool = False
    backend_pid: int | None = None  # its connection's server process, to see whether we block it


def commit_windows(engine: Engine, account_id: uuid.UUID | str, jobs: Iterable[WindowJob], *, writers: int = 1,
                   now: datetime | None = None) -> Iterator[WindowOutcome]:
    """Commit the windows in order and yield each one's outcome once it committed. With `writers` >= 2 (on
    PostgreSQL) that many windows are written at once; a failed window stops the run there: the windows after
    it roll back, and its exception is raised."""
    account = uuid.UUID(str(account_id))
    if writers < 2 or engine.dialect.name != "postgresql":
        for job in jobs:
            yield commit_window(engine, account, job.date_from, job.date_to, job.batches() if job.batches else [],
                                now=now, **job.finish_options())
        return
    stop = threading.Event()
    in_flight: deque[Future[WindowOutcome]] = deque()
    before: _Turn | None = None
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="iiko-window") as pool:
        try:
            for job in jobs:
                mine = _Turn()
                in_flight.append(pool.submit(_commit_in_turn, engine, account, job, before, mine, stop, now))
                before = mine
                if len(in_flight) >= writers:
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()
        finally:
            stop.set()  # a window not yet committed rolls back at its turn; the pool waits for them all


def _commit_in_turn(engine: Engine, account: uuid.UUID, job: WindowJob, before: _Turn | None, mine: _Turn,
                    stop: threading.Event, now: datetime | None) -> WindowOutcome:
    try:
        outcome = _write_then_finish(engine, account, job, before, mine, stop, now or datetime.now(UTC))
        mine.committed = True
        return outcome
    finally:
        mine.done.set()


def _write_then_finish(engine: Engine, account: uuid.UUID, job: WindowJob, before: _Turn | None, mine: _Turn,
                       stop: threading.Event, now: datetime) -> WindowOutcome:
    if job.batches is not None:
        # Statistics in a transaction of their own: ANALYZE holds a lock the other window's ANALYZE waits for.
        with engine.connect() as stats, stats.begin():
            refresh_window_statistics(stats, job.dated)
    with engine.connect() as conn:
        mine.backend_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        conn.commit()
        while True:
            with conn.begin() as transaction:
                written = None
                if job.batches is not None:
                    written = write_batches(conn, account, job.date_from, job.date_to, job.batches(), now=now,
                                            dated=job.dated)
                if not _await_turn(before, conn, stop):
                    transaction.rollback()  # our rows block the window before ours: write them again after it
                    _await_turn(before, None, stop)
                    continue
                return finish_window(conn, account, job.date_from, job.date_to, written, now=now,
                                     **job.finish_options())


def _await_turn(before: _Turn | None, conn: Connection | None, stop: threading.Event) -> bool:
    """Wait until the window before has committed. False if, meanwhile, it waits for a lock `conn` holds."""
    while before is not None and not before.done.wait(CYCLE_POLL_SECONDS):
        if stop.is_set():
            break
        if conn is not None and before.backend_pid is not None and _blocks(conn, before.backend_pid):
            return False
    if before is not None and not before.committed:
        raise WindowAbandoned("the table step stopped before this window's turn to commit" if stop.is_set()
                              else "the window before this one did not commit")
    return True


def _blocks(conn: Connection, other_pid: int) -> bool:
    """Whether `conn`'s server process holds a lock the other connection's process is waiting for."""
    return bool(conn.execute(sa.text("SELECT pg_backend_pid() = ANY(pg_blocking_pids(:pid))"),
                             {"pid": other_pid}).scalar_one())
