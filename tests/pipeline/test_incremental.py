"""Incremental invoice sync: the sliding window, reconciliation, guards, resumable onboarding and backfills."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta

import pytest
import sqlalchemy as sa

from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.dated_windows import get_watermark
from tests.conftest import ON_POSTGRESQL, ON_SQLITE

pytestmark = pytest.mark.slow

HISTORY, LOOKBACK = 10, 4
ALL = ("restaurants", "stores", "suppliers", "invoices")
TODAY = date.today()


def _incremental(p, entities=("invoices",), **kw):
    return p.sync(list(entities), mode="incremental", history_days=kw.pop("history_days", HISTORY),
                  lookback_days=LOOKBACK, **kw)


def _invoice_rows(p) -> dict[str, dict]:
    inv = schema.invoices
    with p.engine.connect() as conn:
        return {r["external_id"]: dict(r) for r in conn.execute(
            sa.select(inv).where(inv.c.account_id == uuid.UUID(p.account_id))).mappings()}


def _lines(p, external_id: str) -> list[tuple]:
    inv, items = schema.invoices, schema.invoice_items
    with p.engine.connect() as conn:
        return conn.execute(sa.select(items.c.line_number, items.c.amount, items.c.price, items.c.sum)
                            .join(inv, inv.c.id == items.c.invoice_id).where(inv.c.external_id == external_id)
                            .order_by(items.c.line_number)).all()


def _at(day: date, hour: int = 10) -> str:
    return datetime.combine(day, time(hour)).isoformat()


def _assert_window_matches_truth(p, date_from: date, date_to: date, removed: set[str] = frozenset()):
    truth = {i.id: i for i in p.emulator.state.dataset.invoices(date_from, date_to)}
    rows = {k: v for k, v in _invoice_rows(p).items() if date_from <= v["document_date"] <= date_to}
    live = {k for k, v in rows.items() if not v["is_deleted"]}
    assert live == set(truth)
    for ext in removed:
        assert rows[ext]["is_deleted"] and rows[ext]["deleted_at"] is not None
    for ext, inv in truth.items():
        assert rows[ext]["status"] == inv.status
        assert [(n, a, pr, s) for n, a, pr, s in _lines(p, ext)] == [
            (i.num, i.amount, i.price, i.sum) for i in sorted(inv.items, key=lambda i: i.num)]


@ON_SQLITE
def test_incremental_run_brings_every_kind_of_change_and_touches_nothing_outside(pipeline):
    p = pipeline
    p.connect()
    first = _incremental(p, ALL)
    assert first.success, first.failures
    assert get_watermark(p.engine, p.account_id) == TODAY
    window_start = TODAY - timedelta(days=LOOKBACK)
    outside_before = {k: v for k, v in _invoice_rows(p).items() if v["document_date"] < window_start}
    assert outside_before

    ds = p.emulator.state.dataset
    recent = [d for d in ds.invoices(window_start, TODAY) if d.status != "DELETED"]
    edited, deleted_status, removed = recent[0], recent[1], recent[2]
    new = ds.add_invoice({"date_incoming": _at(TODAY)})
    backdated = ds.add_invoice({"date_incoming": _at(TODAY - timedelta(days=3), 8)})
    ds.edit_invoice(edited.id, {"items": [{"num": 1, "amount": "2.500", "price": "99.90"},
                                          {"num": 2, "amount": "1.000", "price": "10.00"}]})
    ds.set_status(deleted_status.id, "DELETED")
    ds.remove_invoice(removed.id)

    second = _incremental(p)
    assert second.success, second.failures
    result = second.results["invoices"]
    assert (result["created"], result["updated"], result["deleted"]) == (2, 2, 1), result
    rows = _invoice_rows(p)
    assert {new.id, backdated.id} <= set(rows)
    assert rows[deleted_status.id]["status"] == "DELETED" and not rows[deleted_status.id]["is_deleted"]
    _assert_window_matches_truth(p, window_start, TODAY, removed={removed.id})
    outside_after = {k: v for k, v in rows.items() if v["document_date"] < window_start}
    assert outside_after == outside_before  # not one value (not even synced_at) outside the window
    assert get_watermark(p.engine, p.account_id) == TODAY

    third = _incremental(p)  # nothing changed since: nothing is written
    assert (third.results["invoices"]["created"], third.results["invoices"]["updated"],
            third.results["invoices"]["deleted"]) == (0, 0, 0)


# Each way of tripping the guard once, the pair on both backends.
@pytest.mark.parametrize(("db_url", "share"), [("sqlite", "all"),
                                              pytest.param("postgresql", "most", marks=pytest.mark.postgres)],
                         indirect=["db_url"])
def test_deletion_guard_holds_when_a_window_empties_or_mostly_vanishes(pipeline, share):
    p = pipeline
    p.connect()
    assert _incremental(p, ALL).success
    window_start = TODAY - timedelta(days=LOOKBACK)
    docs = p.emulator.state.dataset.invoices(window_start, TODAY)
    victims = docs if share == "all" else docs[: max(2, len(docs) // 2)]
    for doc in victims:
        p.emulator.state.dataset.remove_invoice(doc.id)
    outcome = _incremental(p)
    assert outcome.success, outcome.failures  # a warning, not a failure
    assert outcome.results["invoices"]["deleted"] == 0
    rows = _invoice_rows(p)
    assert not any(rows[d.id]["is_deleted"] for d in victims)
    import dagster as dg

    evaluation = p.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("invoices"), "deletions_guarded")])
    event = evaluation[dg.AssetCheckKey(dg.AssetKey("invoices"), "deletions_guarded")].event
    data = event.dagster_event.event_specific_data
    assert not data.passed and data.severity == dg.AssetCheckSeverity.WARN
    assert "nothing deleted" in data.metadata["detail"].value


@ON_POSTGRESQL
def test_interrupted_onboarding_resumes_and_every_window_lands_once(pipeline):
    p = pipeline
    p.connect()
    history = 28  # four windows of seven days
    p.emulator.state.add_fault(endpoint="documents/export/incomingInvoice", kind="http_503", after=2, count=40)
    first = _incremental(p, ALL, history_days=history)
    assert not first.success
    assert any("export_complete" in f for f in first.failures), first.failures
    start = TODAY - timedelta(days=history - 1)
    committed_to = start + timedelta(days=13)
    assert get_watermark(p.engine, p.account_id) == committed_to  # where the committed data ends
    _assert_window_matches_truth(p, start, committed_to)
    assert not [r for r in _invoice_rows(p).values() if r["document_date"] > committed_to]

    p.emulator.state.clear_faults()
    second = _incremental(p, history_days=history)
    assert second.success, second.failures
    assert get_watermark(p.engine, p.account_id) == TODAY
    _assert_window_matches_truth(p, start, TODAY)
    truth = p.emulator.state.dataset.invoices(start, TODAY)
    assert len(_invoice_rows(p)) == len(truth)  # each document exactly once


@ON_SQLITE
def test_backfill_resyncs_a_range_without_moving_the_watermark(pipeline):
    p = pipeline
    p.connect()
    assert _incremental(p, ALL).success
    older_from, older_to = TODAY - timedelta(days=40), TODAY - timedelta(days=30)
    outcome = p.sync(["invoices"], date_from=older_from.isoformat(), date_to=older_to.isoformat())
    assert outcome.success, outcome.failures
    assert outcome.results["invoices"]["created"] == len(p.emulator.state.dataset.invoices(older_from, older_to))
    assert get_watermark(p.engine, p.account_id) == TODAY
    _assert_window_matches_truth(p, older_from, older_to)


def _frame_metadata(p):
    import dagster as dg

    event = p.instance.get_latest_materialization_event(dg.AssetKey("invoices_frame"))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@ON_POSTGRESQL
def test_unchanged_answers_are_skipped_and_a_change_is_not(pipeline):
    p = pipeline
    p.connect()
    assert _incremental(p, ALL).success
    assert _incremental(p).success  # a new window shape: processed, fingerprint recorded
    quiet = _incremental(p)
    assert quiet.success and _frame_metadata(p)["unchanged_answers_skipped"] == 1
    result = quiet.results["invoices"]
    window_docs = p.emulator.state.dataset.invoices(TODAY - timedelta(days=LOOKBACK), TODAY)
    assert (result["created"], result["updated"], result["unchanged"]) == (0, 0, len(window_docs))

    doc = next(d for d in window_docs if d.status != "DELETED")
    p.emulator.state.dataset.edit_invoice(doc.id, {"comment": "изменено"})
    changed = _incremental(p)
    assert _frame_metadata(p)["unchanged_answers_skipped"] == 0
    assert changed.results["invoices"]["updated"] == 1
    assert _invoice_rows(p)[doc.id]["comment"] == "изменено"

    assert _incremental(p).success and _frame_metadata(p)["unchanged_answers_skipped"] == 1
    forced = p.sync(["invoices"], mode="incremental", lookback_days=LOOKBACK, reprocess_unchanged=True)
    assert _frame_metadata(p)["unchanged_answers_skipped"] == 0  # parsed and compared again, on request
    assert (forced.results["invoices"]["updated"], forced.results["invoices"]["unchanged"]) == (0, len(window_docs))
