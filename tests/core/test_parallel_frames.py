"""Changed windows parsed in worker processes give exactly the chunks of the one-process path (issue 16 item 4),
against a real emulator's answers: the same rows, lines, errors and ids, in the same order, including a document
two windows return (the first window keeps it) and an answer that cannot be parsed (the error is raised as in
one process)."""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pytest
from core_helpers import INVOICES, CoreSync

from iiko_pipeline import frames as frames_module
from iiko_pipeline import workers
from iiko_pipeline.core import steps
from iiko_pipeline.core.policy import WindowPolicy, WritePolicy
from iiko_pipeline.framestore import read_frames, write_frames
from iiko_pipeline.iiko.errors import IikoResponseError
from iiko_pipeline.rawstore import count_documents, write_raw
from tests.conftest import ON_SQLITE


def _raw(core: CoreSync, days: int = 20) -> steps.RawResult:
    """A backfill's raw answers: three export windows of seven days."""
    core.reference()
    policy = WindowPolicy(mode="backfill", date_from=core.days_ago(days).isoformat(),
                          date_to=core.today.isoformat())
    raw = steps.fetch_raw(INVOICES, lambda: core.client, core.engine, core.account, core.work / "raw", policy)
    assert len(raw.capture.parts) == 3
    return raw


def _spooled(core: CoreSync, raw: steps.RawResult, parse_workers: str, name: str,
             monkeypatch: pytest.MonkeyPatch) -> tuple[dict, list[tuple[pa.Table, pa.Table]]]:
    """The frame step's spool (manifest, and each chunk's rows and lines) with that many workers."""
    monkeypatch.setenv(workers.WORKERS_ENV, parse_workers)
    folder = core.work / "frames" / name
    manifest = write_frames(steps.frames(INVOICES, raw, core.engine, core.account), folder)
    tables = [(chunk.rows, chunk.children) for chunk in read_frames(folder).chunks()]
    return manifest, tables


def _with_answers(raw: steps.RawResult, bodies: list[bytes], raw_dir: Path) -> steps.RawResult:
    """The capture with other answers, each stored with its count as the raw step counts it."""
    capture = raw.capture
    parts = tuple(write_raw(raw_dir, capture.account_id, capture.entity, part.label, body, count_documents(body))
                  for part, body in zip(capture.parts, bodies, strict=True))
    return dataclasses.replace(raw, capture=dataclasses.replace(capture, parts=parts))


def _bodies(raw: steps.RawResult) -> list[bytes]:
    out = []
    for part in raw.capture.parts:
        with gzip.open(part.path, "rb") as stream:
            out.append(stream.read())
    return out


@pytest.fixture
def used_workers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the frame step went through the worker pool (the real one)."""
    calls: list[int] = []
    real = frames_module.run_ahead

    def counted(items, job, count):
        calls.append(count)
        return real(items, job, count)

    monkeypatch.setattr(frames_module, "run_ahead", counted)
    return calls


@ON_SQLITE  # the frame step reads the warehouse only for held hashes: one backend is enough
def test_workers_give_the_chunks_of_one_process(core: CoreSync, monkeypatch: pytest.MonkeyPatch,
                                                used_workers: list[int], tmp_path: Path) -> None:
    raw = _raw(core)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the workers leave their chunks
    killed, live = scratch / "iiko-frames-killed", scratch / "iiko-frames-live"  # left by a killed step / running
    for folder in (killed, live):
        folder.mkdir()
        (folder / "chunk.arrow").write_bytes(b"account data")
    two_hours_ago = time.time() - 7200
    os.utime(killed, (two_hours_ago, two_hours_ago))
    alone, alone_tables = _spooled(core, raw, "1", "alone", monkeypatch)
    assert used_workers == []
    shared, shared_tables = _spooled(core, raw, "2", "shared", monkeypatch)
    assert used_workers == [2]
    assert alone["chunks"] and shared == alone
    assert len(shared_tables) == len(alone_tables)
    for (rows, lines), (rows_alone, lines_alone) in zip(shared_tables, alone_tables, strict=True):
        assert rows.equals(rows_alone) and lines.equals(lines_alone)
    assert sum(t[1].num_rows for t in shared_tables) > 0
    # every chunk a worker left was taken and its folder removed; a killed step's folder too, a live one's not
    assert list(scratch.iterdir()) == [live]


@ON_SQLITE  # the frame step reads the warehouse only for held hashes: one backend is enough
def test_a_document_two_windows_return_stays_in_the_first(core: CoreSync, monkeypatch: pytest.MonkeyPatch,
                                                          used_workers: list[int]) -> None:
    raw = _raw(core)
    bodies = _bodies(raw)
    first = re.search(rb"<document>.*?</document>", bodies[0], re.S)
    assert first is not None
    repeated = re.search(rb"<id>([^<]+)</id>", first.group(0)).group(1).decode().lower()
    bodies[2] = bodies[2].replace(b"<document>", first.group(0) + b"<document>", 1)
    raw = _with_answers(raw, bodies, core.work / "raw-edited")
    alone, _ = _spooled(core, raw, "1", "alone", monkeypatch)
    shared, _ = _spooled(core, raw, "2", "shared", monkeypatch)
    assert used_workers == [2]
    assert shared == alone
    holders = [c["label"] for c in shared["chunks"] if repeated in c["ids"]]
    assert holders == [raw.capture.parts[0].label]


@ON_SQLITE  # the frame step reads the warehouse only for held hashes: one backend is enough
def test_an_answer_a_worker_cannot_parse_fails_as_in_one_process(core: CoreSync,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _raw(core)
    bodies = _bodies(raw)
    bodies[1] = bodies[1][: len(bodies[1]) // 2]  # cut short in the middle of the second window
    raw = _with_answers(raw, bodies, core.work / "raw-cut")
    errors = []
    for count in ("1", "2"):
        with pytest.raises(IikoResponseError) as caught:
            _spooled(core, raw, count, f"cut-{count}", monkeypatch)
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "malformed or truncated" in errors[0]


# ------------------------------------------------------------------------------------------- the pool itself

def _pid_of(value: int) -> tuple[int, int]:
    return value, os.getpid()


def _refuse(value: int) -> int:
    raise RuntimeError(f"refused {value}")


def test_run_ahead_keeps_the_order_and_runs_in_other_processes() -> None:
    def job(value: int):
        if value == 3:
            return None  # the caller's own
        return (_refuse, (value,)) if value == 5 else (_pid_of, (value,))

    results = list(workers.run_ahead(range(8), job, 2))
    assert [item for item, _ in results] == list(range(8))
    assert results[3][1] is None and results[5][1] is None  # handled by the caller / failed: redone there
    ran = [result for item, result in results if item not in (3, 5)]
    assert [value for value, _ in ran] == [0, 1, 2, 4, 6, 7]
    assert all(pid != os.getpid() for _, pid in ran)


def test_run_ahead_stops_its_workers_when_the_caller_leaves_early() -> None:
    taken = workers.run_ahead(range(20), lambda value: (_pid_of, (value,)), 2)
    item, (value, pid) = next(taken)
    assert (item, value) == (0, 0)
    taken.close()
    with pytest.raises(ProcessLookupError):
        for _ in range(100):  # shut down: the worker is gone (reaped by the pool) within a moment
            os.kill(pid, 0)
            time.sleep(0.05)


def test_parse_workers_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(workers.WORKERS_ENV, "3")
    assert workers.parse_workers() == 3
    monkeypatch.setenv(workers.WORKERS_ENV, "0")
    assert workers.parse_workers() == 1
    monkeypatch.setenv(workers.WORKERS_ENV, "two")
    with pytest.raises(ValueError, match="IIKO_PARSE_WORKERS must be a whole number"):
        workers.parse_workers()
    monkeypatch.delenv(workers.WORKERS_ENV)
    assert 1 <= workers.parse_workers() <= 2


def test_closures_stay_in_process() -> None:
    assert workers.can_send(frames_module.document_ids, {"a": 1})
    assert not workers.can_send(lambda: None)


# ------------------------------------------------------------------------------------------- parse only what changed

@ON_SQLITE
def test_an_edited_window_parses_only_its_edited_document(synced: CoreSync, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held documents are recognised on their bytes: the parser sees the edited document alone, and a run on
    answers whose cut does not add up (here: a count the raw step did not make) parses everything and writes no
    digest, so nothing is taken as held on a guess."""
    from iiko_pipeline.iiko import parsing

    monkeypatch.setenv(workers.WORKERS_ENV, "1")  # counted in this process
    parsed: list[str] = []
    real = parsing._invoice_fields

    def counting(element):
        record = real(element)
        parsed.append(str(record.get("id")).lower())
        return record

    monkeypatch.setattr(parsing, "_invoice_fields", counting)
    c = synced
    first = c.incremental(lookback=9)
    assert len(parsed) == first.frame.source_records > 1
    edited = next(d for d in c.truth(c.days_ago(9), c.today).values() if d.status != "DELETED")
    c.emulator.state.dataset.edit_invoice(edited.id, {"comment": "только этот"})
    parsed.clear()
    again = c.incremental(lookback=9)
    assert parsed == [edited.id] and again.frame.row_count == 1
    assert c.rows()[edited.id]["source_hash"] and c.rows()[edited.id]["comment"] == "только этот"

    parsed.clear()
    raw = steps.fetch_raw(INVOICES, lambda: c.client, c.engine, c.account, c.work / "raw",
                          WindowPolicy(history_days=10, lookback_days=9, date_to=c.today.isoformat()))
    raw = _with_answers(raw, [body + b"\n" for body in _bodies(raw)], c.work / "raw-touched")  # not unchanged
    capture = raw.capture
    miscounted = tuple(dataclasses.replace(part, records=part.records + 1) for part in capture.parts)
    raw = dataclasses.replace(raw, capture=dataclasses.replace(capture, parts=miscounted))
    manifest = write_frames(steps.frames(INVOICES, raw, c.engine, c.account), c.work / "frames" / "miscounted")
    changed = [chunk for chunk in manifest["chunks"] if not chunk["unchanged"]]
    assert changed and not any(chunk["kept"] for chunk in changed)
    assert len(parsed) == sum(chunk["source_records"] for chunk in changed)


class _Farewell:
    """Garbage with a last word: a stand-in for a database connection, whose finaliser talks on a shared socket."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.cycle = self

    def __del__(self) -> None:
        with self.log.open("a") as fh:
            fh.write(f"{os.getpid()}\n")


def _collect(_value: int) -> int:
    import gc

    gc.collect()
    return os.getpid()


def test_workers_never_collect_garbage_they_inherited(tmp_path: Path) -> None:
    import gc

    log = tmp_path / "finalised"
    gc.disable()  # the cycle must still be uncollected when the workers fork
    try:
        _Farewell(log)  # unreachable at once, collectable only by the garbage collector
        results = list(workers.run_ahead(range(4), lambda value: (_collect, (value,)), 2))
        worker_pids = {pid for _, pid in results}
        assert worker_pids and os.getpid() not in worker_pids
    finally:
        gc.enable()
    gc.collect()
    finalised_in = {int(line) for line in log.read_text().split()}
    assert finalised_in == {os.getpid()}  # here, by this process's own collection: never in a worker


def test_the_table_step_refuses_a_frame_set_not_read_back_from_its_spool(core: CoreSync) -> None:
    """Written windows read their chunks by window, which only a read-back spool can give without parsing the
    capture again per window; the set `write_frames` consumed has the summary but not that."""
    raw = _raw(core)
    lazy = steps.frames(INVOICES, raw, core.engine, core.account)
    write_frames(lazy, core.work / "frames" / "not-read-back")
    assert lazy.summary["chunks"]
    with pytest.raises(ValueError, match="needs the spooled frame set"):
        steps.write(INVOICES, core.engine, core.account_id, lazy, raw, WritePolicy(), "run-1")
    assert core.rows() == {}
    with pytest.raises(ValueError, match="need the spooled frame set"):
        next(lazy.window_chunks(raw.capture.parts[0].label))
