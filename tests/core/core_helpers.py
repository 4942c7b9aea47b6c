"""Drive the Dagster-free sync core the way the asset graph does, against a real emulator and warehouse.

`CoreSync.run` is the sequence of `defs/assets.py` without Dagster: `fetch_raw` -> `frames` -> the frames
spooled to Parquet and read back (what `frame_io_manager` does between the two steps: the table step needs the
whole capture's summary, every id iiko returned, before its first window) -> `write` -> `run_checks` / `report`.
"""

from __future__ import annotations

import dataclasses
import gzip
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from iiko_pipeline.core import steps
from iiko_pipeline.core.checks import CheckInput, CheckResult, TableReport, report, run_checks
from iiko_pipeline.core.policy import WindowPolicy, WritePolicy
from iiko_pipeline.core.specs import REGISTRY, EntitySpec, spec
from iiko_pipeline.emulator import EmulatorServer
from iiko_pipeline.frames import FrameSet
from iiko_pipeline.framestore import read_frames, write_frames
from iiko_pipeline.iiko import IikoClient
from iiko_pipeline.rawstore import count_documents, write_raw
from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.dated_windows import get_watermark, window_fingerprints

INVOICES = spec("invoices")
REFERENCE = tuple(s for s in REGISTRY if not s.windowed)
EXPORT = "documents/export/incomingInvoice"  # the emulator's endpoint name, for faults and its request log


@dataclass
class Run:
    """One entity step chain's results: what each step returned, the checks by name, the table report."""

    raw: steps.RawResult
    frame: FrameSet
    written: steps.TableWrite
    checks: dict[str, CheckResult]
    report: TableReport

    @property
    def counts(self) -> tuple[int, int, int, int, int]:
        """(created, updated, unchanged, deleted, errors): the numbers the contracts are about."""
        r = self.written.result
        return r.created, r.updated, r.unchanged, r.deleted, r.errors

    @property
    def skipped(self) -> list[bool]:
        """Per export window of the run, in order: was its answer skipped as unchanged?"""
        return [bool(a["unchanged"]) for a in self.frame.answers]

    def failed_checks(self) -> dict[str, str]:
        return {n: str(c.metadata.get("detail", "")) for n, c in self.checks.items() if not c.passed}


class CoreSync:
    """One account of one warehouse, synced from one emulator through the core's own steps."""

    def __init__(self, emulator: EmulatorServer, engine: Engine, client: IikoClient, work: Path,
                 today: date) -> None:
        self.emulator, self.engine, self.client, self.work, self.today = emulator, engine, client, work, today
        self.account = str(uuid.uuid4())
        self.account_id = uuid.UUID(self.account)
        self.log: list[str] = []
        self._runs = 0

    # ------------------------------------------------------------------------------------------- steps

    def run(self, entity: EntitySpec = INVOICES, policy: WindowPolicy | None = None, *,
            rewrite: Callable[[bytes], bytes] | None = None) -> Run:
        """The three steps plus the checks, exactly as the assets chain them (SyncFailure propagates).

        `rewrite` changes each stored answer between the raw and the frame step, for what iiko does and the
        emulator cannot (print a GUID in upper case); the result is stored the way `fetch_raw` stores it."""
        self._runs += 1
        run_id = f"core-test-{self._runs}"
        raw = steps.fetch_raw(entity, lambda: self.client, self.engine, self.account, self.work / "raw",
                              policy if entity.windowed else None, log=self.log.append)
        if rewrite is not None:
            raw = _rewritten(raw, rewrite, self.work / "raw")
        folder = self.work / "frames" / entity.name / run_id
        write_frames(steps.frames(entity, raw, self.engine, self.account), folder)
        frame = read_frames(folder)
        written = steps.write(entity, self.engine, self.account_id, frame, raw, WritePolicy(), run_id,
                              log=self.log.append)
        checked = CheckInput(entity, self.engine, self.account_id, frame, written, raw)
        return Run(raw, frame, written, {c.name: c for c in run_checks(checked)}, report(checked))

    def reference(self) -> dict[str, Run]:
        """Restaurants, stores and suppliers: what invoices reference, synced first."""
        return {s.name: self.run(s) for s in REFERENCE}

    def incremental(self, *, history: int = 10, lookback: int = 4, date_to: date | None = None,
                    **policy: Any) -> Run:
        """An incremental invoice run up to the test's today unless told otherwise (no midnight surprises)."""
        return self.run(INVOICES, WindowPolicy(history_days=history, lookback_days=lookback,
                                               date_to=(date_to or self.today).isoformat(), **policy))

    def backfill(self, date_from: date, date_to: date, **policy: Any) -> Run:
        return self.run(INVOICES, WindowPolicy(mode="backfill", date_from=date_from.isoformat(),
                                               date_to=date_to.isoformat(), **policy))

    # ------------------------------------------------------------------------------------------- reading

    def days_ago(self, days: int) -> date:
        return self.today - timedelta(days=days)

    @property
    def watermark(self) -> date | None:
        return get_watermark(self.engine, self.account)

    def fingerprints(self) -> dict[tuple[date, date], str]:
        return window_fingerprints(self.engine, self.account)

    def rows(self) -> dict[str, dict[str, Any]]:
        """Every invoice row of the account (soft-deleted ones too), every column, by external id."""
        inv = schema.invoices
        with self.engine.connect() as conn:
            return {r["external_id"]: dict(r) for r in conn.execute(
                sa.select(inv).where(inv.c.account_id == self.account_id)).mappings()}

    def rows_between(self, date_from: date, date_to: date) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.rows().items() if date_from <= v["document_date"] <= date_to}

    def lines(self) -> dict[str, list[tuple]]:
        """Every stored invoice line, by invoice external id: (line, amount, price, sum), in line order."""
        inv, items = schema.invoices, schema.invoice_items
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(inv.c.external_id, items.c.line_number, items.c.amount, items.c.price,
                                           items.c.sum).join(inv, inv.c.id == items.c.invoice_id)
                                 .where(inv.c.account_id == self.account_id)
                                 .order_by(inv.c.external_id, items.c.line_number)).all()
        out: dict[str, list[tuple]] = {}
        for ext, *line in found:
            out.setdefault(ext, []).append(tuple(line))
        return out

    def snapshot(self) -> tuple[dict[str, dict[str, Any]], dict[str, list[tuple]]]:
        """Invoices (every column, `synced_at` included) and their lines: equal snapshots = nothing written."""
        return self.rows(), self.lines()

    def truth(self, date_from: date, date_to: date) -> dict[str, Any]:
        """What iiko (the emulator) holds for those dates, by id."""
        return {d.id: d for d in self.emulator.state.dataset.invoices(date_from, date_to)}

    def assert_matches_truth(self, date_from: date, date_to: date, removed: frozenset[str] = frozenset()) -> None:
        """The warehouse's live rows of those dates are exactly iiko's documents, statuses and lines."""
        truth = self.truth(date_from, date_to)
        rows = self.rows_between(date_from, date_to)
        assert {k for k, v in rows.items() if not v["is_deleted"]} == set(truth)
        for ext in removed:
            assert rows[ext]["is_deleted"] and rows[ext]["deleted_at"] is not None, ext
        lines = self.lines()
        for ext, doc in truth.items():
            assert rows[ext]["status"] == doc.status, ext
            assert lines.get(ext, []) == [(i.num, i.amount, i.price, i.sum)
                                          for i in sorted(doc.items, key=lambda i: i.num)], ext

    def export_requests(self) -> int:
        """Every export request the emulator received, answered or not."""
        return len(self.emulator.state.log.records(EXPORT))

    def failed_exports(self) -> int:
        """Export requests the emulator answered with an injected fault (it logs no window for those)."""
        return sum(1 for r in self.emulator.state.log.records(EXPORT) if r.fault)

    def requested_windows(self) -> list[tuple[date, date]]:
        """The export windows the emulator answered, in order."""
        return [(date.fromisoformat(a), date.fromisoformat(b)) for a, b in self.emulator.state.log.windows]


def _rewritten(raw: steps.RawResult, rewrite: Callable[[bytes], bytes], raw_dir: Path) -> steps.RawResult:
    capture = raw.capture
    parts = []
    for part in capture.parts:
        with gzip.open(part.path, "rb") as stream:
            body = rewrite(stream.read())
        # counted on the bytes stored, as the raw step does
        parts.append(write_raw(raw_dir, capture.account_id, capture.entity, part.label, body, count_documents(body)))
    return dataclasses.replace(raw, capture=dataclasses.replace(capture, parts=tuple(parts)))


# ------------------------------------------------------------------------------------------- a failing database

TRAP = "core_test_refuse_line"
TRAP_MESSAGE = "core-test: line refused"


def refuse_lines_of(engine: Engine, external_id: str) -> None:
    """A trigger that fails the insert of any line of one invoice: a real database error in the middle of a
    window's transaction, after the window's invoices went in (SQLite and PostgreSQL alike)."""
    ext = str(uuid.UUID(external_id))  # a parsed GUID: safe inside DDL, which takes no bound parameters
    owner = f"NEW.invoice_id IN (SELECT id FROM invoices WHERE external_id = '{ext}')"  # noqa: S608
    if engine.dialect.name == "sqlite":
        ddl = [f"CREATE TRIGGER {TRAP} BEFORE INSERT ON invoice_items WHEN {owner} "
               f"BEGIN SELECT RAISE(ABORT, '{TRAP_MESSAGE}'); END"]
    else:
        ddl = [f"CREATE FUNCTION {TRAP}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF {owner} THEN "
               f"RAISE EXCEPTION '{TRAP_MESSAGE}'; END IF; RETURN NEW; END $$",
               f"CREATE TRIGGER {TRAP} BEFORE INSERT ON invoice_items FOR EACH ROW EXECUTE FUNCTION {TRAP}()"]
    with engine.begin() as conn:
        for statement in ddl:
            conn.exec_driver_sql(statement)


def stop_refusing(engine: Engine) -> None:
    ddl = [f"DROP TRIGGER {TRAP}"] if engine.dialect.name == "sqlite" else [
        f"DROP TRIGGER {TRAP} ON invoice_items", f"DROP FUNCTION {TRAP}()"]
    with engine.begin() as conn:
        for statement in ddl:
            conn.exec_driver_sql(statement)
