"""Documents iiko returned that could not be stored: kept as pending with their reason, retried, never lost.

Fast (no Dagster): the window commit, the pending list, when a retry is due, and the "stored too little"
verdict, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from iiko_pipeline.adapters import IIKO_ADAPTER
from iiko_pipeline.core.specs import with_prerequisites
from iiko_pipeline.warehouse import pending, quality, state
from iiko_pipeline.warehouse.dated_windows import WindowBatch, commit_window, get_watermark
from iiko_pipeline.warehouse.engine import make_engine
from iiko_pipeline.warehouse.entities import SyncResult, upsert_dimension
from iiko_pipeline.warehouse.migrate import migrate

ACCOUNT = uuid.UUID("11111111-2222-4333-8444-555555555555")
R1 = "6f1c2b1e-0000-4000-8000-000000000101"
S1 = "1239d270-0000-4000-8000-00000000a001"
SUP, LATE_SUP = "3f08e41c-0000-4000-8000-00000000c001", "3f08e41c-0000-4000-8000-00000000c0ff"
DOC_OK, DOC_LATE = "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"
DAY = date(2024, 3, 1)
NOW = datetime(2024, 3, 20, 12, tzinfo=UTC)


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    migrate(eng)
    batch = IIKO_ADAPTER.restaurants([{"id": R1, "type": "DEPARTMENT", "name": "Ресторан"}])
    upsert_dimension(eng, "restaurants", ACCOUNT, batch.rows)
    upsert_dimension(eng, "stores", ACCOUNT, IIKO_ADAPTER.stores([{"id": S1, "parentId": R1, "name": "Склад"}]).rows)
    _suppliers(eng, [SUP])
    return eng


def _suppliers(engine, ids):
    upsert_dimension(engine, "suppliers", ACCOUNT,
                     IIKO_ADAPTER.suppliers([{"id": i, "name": f"Поставщик {i[-3:]}"} for i in ids]).rows)


def _doc(doc_id: str, supplier: str, day: date = DAY) -> dict:
    return {"id": doc_id, "documentNumber": doc_id[-3:], "dateIncoming": f"{day.isoformat()}T10:00:00",
            "status": "PROCESSED", "supplier": supplier, "defaultStore": S1,
            "items": [{"num": "1", "amount": "1", "price": "10", "sum": "10", "store": S1}]}


def _commit(engine, docs, *, window=(DAY, DAY + timedelta(days=6)), now=NOW, returned=None):
    batch = IIKO_ADAPTER.invoices(docs)
    ids = {r["external_id"] for r in batch.rows} | {e.external_id.lower() for e in batch.errors if e.external_id}
    return commit_window(engine, ACCOUNT, *window, [WindowBatch(batch.rows, batch.children, batch.errors)],
                         returned_ids=ids if returned is None else returned, advance_watermark=True, now=now)


def test_a_document_rejected_for_a_missing_supplier_waits_and_stores_once_the_supplier_exists(engine):
    first = _commit(engine, [_doc(DOC_OK, SUP), _doc(DOC_LATE, LATE_SUP)])
    assert (first.result.created, first.result.errors) == (1, 1)
    assert get_watermark(engine, ACCOUNT) == DAY + timedelta(days=6)  # moves on: the document is not forgotten
    [row] = pending.list_pending(engine, ACCOUNT, "invoices")
    assert (row["external_id"], row["kind"], row["date_from"], row["date_to"], row["attempts"]) == (
        DOC_LATE, pending.REFERENCE, DAY, DAY, 1)
    assert LATE_SUP in row["reason"] and "supplier" in row["reason"]

    again = _commit(engine, [_doc(DOC_OK, SUP), _doc(DOC_LATE, LATE_SUP)], now=NOW + timedelta(hours=1))
    assert again.result.errors == 1
    assert pending.list_pending(engine, ACCOUNT, "invoices")[0]["attempts"] == 2

    _suppliers(engine, [SUP, LATE_SUP])
    stored = _commit(engine, [_doc(DOC_OK, SUP), _doc(DOC_LATE, LATE_SUP)], window=(DAY, DAY),
                     now=NOW + timedelta(hours=2))
    assert (stored.result.created, stored.result.errors) == (1, 0)
    assert pending.list_pending(engine, ACCOUNT, "invoices") == []


def test_pending_documents_go_only_when_a_trusted_reexport_no_longer_holds_them(engine):
    _commit(engine, [_doc(DOC_OK, SUP), _doc(DOC_LATE, LATE_SUP)])
    empty = _commit(engine, [], returned=set())  # an empty answer while we hold rows: suspicious, nothing goes
    assert empty.guard is not None
    assert [r["external_id"] for r in pending.list_pending(engine, ACCOUNT, "invoices")] == [DOC_LATE]
    _commit(engine, [_doc(DOC_OK, SUP)])  # iiko no longer has the document: nothing is left to store
    assert pending.list_pending(engine, ACCOUNT, "invoices") == []


def test_a_record_the_adapter_refuses_is_pending_for_its_window(engine):
    bad = {**_doc(DOC_LATE.upper(), SUP), "dateIncoming": "not a date"}
    outcome = _commit(engine, [_doc(DOC_OK, SUP), bad])
    assert outcome.result.errors == 1
    [row] = pending.list_pending(engine, ACCOUNT, "invoices")
    assert (row["external_id"], row["kind"]) == (DOC_LATE, pending.DATA)  # the GUID as we store it
    assert (row["date_from"], row["date_to"]) == (DAY, DAY + timedelta(days=6))  # its date is what was bad


def _row(kind: str, day: date, attempts: int = 1, last: datetime = NOW) -> dict:
    return {"kind": kind, "date_from": day, "date_to": day, "attempts": attempts, "last_attempt_at": last}


def test_a_retry_is_due_after_reference_data_synced_or_after_a_growing_backoff():
    later = NOW + timedelta(minutes=5)
    assert not pending.is_due(_row(pending.REFERENCE, DAY), later, references_synced_at=NOW - timedelta(hours=1))
    assert pending.is_due(_row(pending.REFERENCE, DAY), later, references_synced_at=NOW + timedelta(minutes=1))
    assert not pending.is_due(_row(pending.DATA, DAY), later, references_synced_at=later)  # data: backoff only
    assert pending.is_due(_row(pending.DATA, DAY), NOW + timedelta(hours=1), references_synced_at=None)
    assert not pending.is_due(_row(pending.DATA, DAY, attempts=3), NOW + timedelta(hours=3), None)
    assert pending.is_due(_row(pending.DATA, DAY, attempts=3), NOW + timedelta(hours=4), None)
    assert pending.backoff(30) == pending.MAX_BACKOFF


def test_due_ranges_merge_close_dates_and_leave_the_runs_own_range_alone(engine):
    docs = [(DOC_OK, date(2024, 1, 1)), (DOC_LATE, date(2024, 1, 5)),
            ("aaaaaaaa-0000-4000-8000-000000000003", date(2024, 2, 20)),
            ("aaaaaaaa-0000-4000-8000-000000000004", date(2024, 3, 10))]
    with engine.begin() as conn:
        pending.record(conn, ACCOUNT, "invoices", [pending.PendingDocument(
            ext, day, day, pending.REFERENCE, "supplier x does not exist") for ext, day in docs], NOW)
    synced = NOW + timedelta(minutes=1)
    assert pending.due_ranges(engine, ACCOUNT, "invoices", before=date(2024, 3, 1), references_synced_at=synced,
                              now=NOW + timedelta(minutes=2)) == [
        (date(2024, 1, 1), date(2024, 1, 5)), (date(2024, 2, 20), date(2024, 2, 20))]
    assert pending.due_ranges(engine, ACCOUNT, "invoices", before=date(2024, 3, 1), references_synced_at=None,
                              now=NOW + timedelta(minutes=2)) == []


def _result(total: int, errors: int, references: int) -> SyncResult:
    result = SyncResult("invoices", total=total, errors=errors)
    result.reference_rejections = {f"id{i}": "suppliers" for i in range(references)}
    result.error_details = [{"external_id": f"id{i}", "reason": "supplier x does not exist"} for i in range(errors)]
    return result


def test_a_step_that_stored_nothing_is_not_green_and_says_why():
    everything = quality.rejections_within_limit(_result(365, 365, 365))
    assert not everything.passed
    assert "365 of 365 invoices not stored" in everything.detail
    assert "reference suppliers we do not hold: sync reference data first" in everything.detail
    assert quality.rejections_within_limit(_result(10, 5, 0)).passed  # half: within the default limit
    most = quality.rejections_within_limit(_result(10, 6, 0))
    assert not most.passed and "refused by the adapter" in most.detail
    assert quality.rejections_within_limit(_result(10, 6, 0), max_share=0.8).passed
    assert quality.rejections_within_limit(_result(0, 0, 0)).passed


def test_only_a_run_that_stored_its_records_counts_as_synced(engine):
    started = NOW
    assert state.never_synced(engine, ACCOUNT, ["suppliers", "invoices"]) == ["suppliers", "invoices"]
    state.record_run(engine, ACCOUNT, "invoices", "r1", _result(3, 3, 3), started, error="3 of 3 not stored")
    state.record_run(engine, ACCOUNT, "suppliers", "r1", _result(1, 0, 0), started)
    assert state.never_synced(engine, ACCOUNT, ["suppliers", "invoices"]) == ["invoices"]
    assert state.get_state(engine, ACCOUNT)["invoices"]["last_error"] == "3 of 3 not stored"
    assert with_prerequisites(["invoices"]) == ["restaurants", "stores", "suppliers", "invoices"]
    assert with_prerequisites(["stores"]) == ["restaurants", "stores"]
