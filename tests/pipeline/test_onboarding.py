"""No invoice iiko returned is lost, whatever order entities are synced in (issue: onboarding data loss).

The production failure: an invoice run before any reference data rejected every document, the run was green,
the watermark moved to today, and later runs never read those dates again. Now: an invoice sync syncs the
never-synced reference data first (CLI, API) or refuses (a run launched from the UI or a schedule); documents
rejected for a missing parent stay pending and are stored by the first run after the parent appears, however
far behind the lookback; and a run that stored nothing is not green.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from iiko_pipeline.warehouse import pending, schema
from iiko_pipeline.warehouse.dated_windows import get_watermark
from iiko_pipeline.warehouse.state import get_state
from tests.conftest import ON_POSTGRESQL, ON_SQLITE

pytestmark = pytest.mark.slow

HISTORY, LOOKBACK = 30, 4
REFERENCE = ("restaurants", "stores", "suppliers")
TODAY = date.today()
START = TODAY - timedelta(days=HISTORY - 1)


def _invoices(p, entities=("invoices",), **window):
    return p.sync(list(entities), mode="incremental", history_days=HISTORY, lookback_days=LOOKBACK, **window)


def _stored_ids(p) -> set[str]:
    inv = schema.invoices
    with p.engine.connect() as conn:
        return set(conn.execute(sa.select(inv.c.external_id).where(
            inv.c.account_id == uuid.UUID(p.account_id), inv.c.is_deleted.is_(False))).scalars())


def _truth(p, date_from: date = START) -> set[str]:
    return {d.id for d in p.emulator.state.dataset.invoices(date_from, TODAY)}


def _latest_check(p, name: str):
    key = dg.AssetCheckKey(dg.AssetKey("invoices"), name)
    record = p.instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    return record.event.dagster_event.event_specific_data


@ON_POSTGRESQL
def test_invoices_synced_before_reference_data_still_store_the_whole_onboarding_window(pipeline):
    p = pipeline
    p.connect()
    first = _invoices(p)  # the first step: invoices before anything else
    assert first.success, first.failures
    assert first.prerequisites == list(REFERENCE)  # synced first, in the same run
    assert first.results["invoices"]["errors"] == 0
    assert _stored_ids(p) == _truth(p) and _truth(p)
    assert get_watermark(p.engine, p.account_id) == TODAY

    assert p.sync(list(REFERENCE)).success
    again = _invoices(p)
    assert again.success and again.prerequisites == []
    assert _stored_ids(p) == _truth(p)  # every invoice of the onboarding window, none lost


@ON_SQLITE
def test_an_invoice_run_launched_without_reference_data_refuses_and_moves_nothing(pipeline):
    from iiko_pipeline.definitions import defs

    p = pipeline
    p.connect()
    result = defs.resolve_job_def("hourly_sync_job").execute_in_process(  # as the UI or a schedule launches it
        instance=p.instance, partition_key=p.account_id, tags={"iiko/account": p.account_id}, raise_on_error=False)
    assert not result.success
    # every dated entity of the job refuses (sales and shifts reference restaurants); the invoices' step names all three
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == "raw_invoices")
    message = failure.step_failure_data.user_failure_data.description
    assert "restaurants, stores, suppliers" in message and "never synced" in message, message
    assert p.emulator.state.log.summary()["logins"] == 1  # the connect only: nothing was fetched
    assert get_watermark(p.engine, p.account_id) is None and _stored_ids(p) == set()
    assert "never synced" in get_state(p.engine, uuid.UUID(p.account_id))["invoices"]["last_error"]

    onboarding = _invoices(p, ("restaurants", "stores", "suppliers", "invoices"))
    assert onboarding.success, onboarding.failures
    assert _stored_ids(p) == _truth(p)


def _at(day: date) -> str:
    return datetime.combine(day, time(11)).isoformat()


@ON_SQLITE
def test_a_document_rejected_for_a_missing_supplier_is_stored_once_it_appears_far_behind_the_lookback(pipeline):
    p = pipeline
    p.connect()
    assert p.sync(list(REFERENCE)).success
    ds = p.emulator.state.dataset
    late_supplier = ds.add_supplier({"name": "ООО «Новый поставщик»", "code": "NEW-1"})  # iiko has it, we do not
    old_day = TODAY - timedelta(days=20)  # far behind the lookback of later runs
    waiting = ds.add_invoice({"date_incoming": _at(old_day), "supplier_id": late_supplier.id})

    first = _invoices(p)
    assert first.success, first.failures  # one of many rejected: a warning, not a failure
    assert first.results["invoices"]["errors"] == 1
    assert _stored_ids(p) == _truth(p) - {waiting.id}
    assert get_watermark(p.engine, p.account_id) == TODAY
    [row] = pending.list_pending(p.engine, p.account_id, "invoices")
    assert (row["external_id"], row["date_from"], row["kind"]) == (waiting.id, old_day, pending.REFERENCE)
    check = _latest_check(p, "documents_pending")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["failing_count"].value == 1

    quiet = _invoices(p)  # nothing new about the supplier yet: the old date is not re-read
    assert quiet.success and waiting.id not in _stored_ids(p)
    assert _raw_metadata(p)["retried_ranges"] == "none"

    assert p.sync(["suppliers"]).success  # the supplier arrives
    stored = _invoices(p)
    assert stored.success, stored.failures
    assert _raw_metadata(p)["retried_ranges"] == f"{old_day}..{old_day}"
    assert _stored_ids(p) == _truth(p)
    assert pending.list_pending(p.engine, p.account_id, "invoices") == []
    assert _latest_check(p, "documents_pending").passed


def _raw_metadata(p) -> dict:
    event = p.instance.get_latest_materialization_event(dg.AssetKey("raw_invoices"))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@ON_POSTGRESQL
def test_a_run_that_stores_none_of_its_invoices_fails_with_the_reason_and_loses_nothing(pipeline):
    p = pipeline
    p.connect()
    assert _invoices(p, ("restaurants", "stores", "suppliers", "invoices")).success
    ds = p.emulator.state.dataset
    moved = ds.add_supplier({"name": "ООО «Перешли»", "code": "MOVED"})
    window = [d for d in ds.invoices(TODAY - timedelta(days=LOOKBACK), TODAY) if d.status != "DELETED"]
    assert window
    for doc in ds.invoices(TODAY - timedelta(days=LOOKBACK), TODAY):  # every document now names that supplier
        ds.edit_invoice(doc.id, {"supplier_id": moved.id})
    state_before = get_state(p.engine, uuid.UUID(p.account_id))["invoices"]["last_success_at"]

    red = _invoices(p)
    assert not red.success
    detail = red.rejected["invoices"]
    assert "not stored (every record rejected: failing)" in detail, detail
    assert "reference suppliers we do not hold: sync reference data first" in detail
    state = get_state(p.engine, uuid.UUID(p.account_id))["invoices"]
    assert state["last_success_at"] == state_before and "sync reference data first" in state["last_error"]
    waiting = {r["external_id"] for r in pending.list_pending(p.engine, p.account_id, "invoices")}
    assert waiting == {d.id for d in ds.invoices(TODAY - timedelta(days=LOOKBACK), TODAY)}

    assert p.sync(["suppliers"]).success
    green = _invoices(p)
    assert green.success, green.failures
    assert pending.list_pending(p.engine, p.account_id, "invoices") == []
    inv = schema.invoices
    with p.engine.connect() as conn:
        suppliers = set(conn.execute(sa.select(inv.c.supplier_external_id).where(
            inv.c.external_id.in_([d.id for d in window]))).scalars())
    assert suppliers == {moved.id}
