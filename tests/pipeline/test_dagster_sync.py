"""End-to-end: the asset graph through a real Dagster instance, against the emulator, into real databases."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from iiko_pipeline.warehouse import schema
from tests.conftest import ON_POSTGRESQL, ON_SQLITE

pytestmark = pytest.mark.slow

WINDOW_DAYS = 10


def _window():
    today = date.today()
    return {"date_from": (today - timedelta(days=WINDOW_DAYS - 1)).isoformat(), "date_to": today.isoformat()}


def _truth(emulator):
    ds = emulator.state.dataset
    today = date.today()
    return {
        "restaurants": {r.id: r for r in ds.restaurants()},
        "stores": {s.id: s for s in ds.stores()},
        "suppliers": {s.id: s for s in ds.suppliers()},
        "invoices": {i.id: i for i in ds.invoices(today - timedelta(days=WINDOW_DAYS - 1), today)},
    }


def _rows(engine, table, account):
    with engine.connect() as conn:
        return {r["external_id"]: r for r in conn.execute(
            sa.select(table).where(table.c.account_id == uuid.UUID(account))).mappings()}


def _row_versions(p):
    """Each row's xmin (the transaction that last wrote it) on PostgreSQL; None on SQLite."""
    if p.engine.dialect.name != "postgresql":
        return None
    with p.engine.connect() as conn:
        return {name: dict(conn.execute(sa.text(f"SELECT id, xmin::text FROM {name}")).all())  # noqa: S608
                for name in ("restaurants", "stores", "suppliers", "invoices", "invoice_items")}


def _assert_warehouse_equals_truth(p):
    truth = _truth(p.emulator)
    restaurants = _rows(p.engine, schema.restaurants, p.account_id)
    assert set(restaurants) == set(truth["restaurants"])
    for ext, r in truth["restaurants"].items():
        assert (restaurants[ext]["name"], restaurants[ext]["code"]) == (r.name, r.code or None)
    stores = _rows(p.engine, schema.stores, p.account_id)
    assert set(stores) == set(truth["stores"])
    for ext, s in truth["stores"].items():
        assert stores[ext]["restaurant_external_id"] == s.parent_id
        assert stores[ext]["restaurant_id"] == restaurants[s.parent_id]["id"]
    suppliers = _rows(p.engine, schema.suppliers, p.account_id)
    assert set(suppliers) == set(truth["suppliers"])
    for ext, s in truth["suppliers"].items():
        row = suppliers[ext]
        assert (row["name"], row["is_deleted"], bool(row["represents_store"])) == (s.name, s.deleted,
                                                                                   bool(s.represents_store))
        assert row["represented_store_external_id"] == s.represented_store_id
    invoices = _rows(p.engine, schema.invoices, p.account_id)
    assert set(invoices) == set(truth["invoices"])
    with p.engine.connect() as conn:
        lines = conn.execute(sa.select(schema.invoice_items, schema.invoices.c.external_id.label("doc")).join(
            schema.invoices, schema.invoices.c.id == schema.invoice_items.c.invoice_id)).mappings().all()
    by_doc: dict[str, dict[int, dict]] = {}
    for line in lines:
        by_doc.setdefault(line["doc"], {})[line["line_number"]] = line
    for ext, inv in truth["invoices"].items():
        row = invoices[ext]
        assert (row["status"], row["document_number"], row["document_date"]) == (
            inv.status, inv.document_number, inv.date_incoming.date())
        assert row["supplier_external_id"] == inv.supplier_id
        stored = by_doc.get(ext, {})
        assert set(stored) == {item.num for item in inv.items}
        for item in inv.items:
            got = stored[item.num]
            for ours, theirs in (("amount", item.amount), ("price", item.price), ("sum", item.sum),
                                 ("vat_sum", item.vat_sum), ("discount_sum", item.discount_sum)):
                assert got[ours] == theirs, (ext, item.num, ours)
            assert got["store_external_id"] == item.store_id
            assert bool(got["is_additional_expense"]) == bool(item.is_additional_expense)


# On PostgreSQL, where the warehouse's own record (each row's xmin) proves that the second sync wrote nothing;
# the first sync on SQLite is the next test's.
@ON_POSTGRESQL
def test_first_sync_creates_everything_and_second_changes_nothing(pipeline):
    p = pipeline
    assert p.connect().is_connected
    first = p.sync(**_window())
    assert first.success, first.failures
    truth = _truth(p.emulator)
    for entity in ("restaurants", "stores", "suppliers", "invoices"):
        assert first.results[entity]["created"] == len(truth[entity]), entity
        assert first.results[entity]["errors"] == 0, first.results[entity]
    _assert_warehouse_equals_truth(p)

    versions_before = _row_versions(p)
    second = p.sync(**_window())
    assert second.success, second.failures
    if versions_before is not None:  # PostgreSQL's own record: no row got a new version (xmin)
        assert _row_versions(p) == versions_before
    for entity in ("restaurants", "stores", "suppliers", "invoices"):
        result = second.results[entity]
        assert (result["created"], result["updated"]) == (0, 0), (entity, result)
        assert result["unchanged"] == len(truth[entity])
    log = p.emulator.state.log.summary()
    assert log["logins"] == log["logouts"] == 3  # one login per run (two syncs) plus the connect check


@ON_SQLITE
def test_control_api_changes_arrive_as_exact_updates_and_creates(pipeline):
    p = pipeline
    p.connect()
    assert p.sync(**_window()).success
    ds = p.emulator.state.dataset
    today = date.today()
    docs = ds.invoices(today - timedelta(days=3), today)
    edited = docs[0]  # the seeded data depends on today's date: pick a document that is not deleted already
    to_delete = next(d for d in docs[1:] if d.status != "DELETED")
    ds.edit_invoice(edited.id, {"comment": "исправлено"})
    ds.set_status(to_delete.id, "DELETED")
    ds.add_invoice({"date_incoming": f"{today.isoformat()}T09:30:00"})
    supplier = ds.suppliers()[0]
    ds.edit_supplier(supplier.id, {"name": supplier.name + " (new name)"})
    outcome = p.sync(**_window())
    assert outcome.success, outcome.failures
    assert (outcome.results["invoices"]["created"], outcome.results["invoices"]["updated"]) == (1, 2)
    assert (outcome.results["suppliers"]["created"], outcome.results["suppliers"]["updated"]) == (0, 1)
    assert outcome.results["restaurants"]["updated"] == 0
    _assert_warehouse_equals_truth(p)


@ON_SQLITE
def test_materialization_metadata_and_checks_are_visible(pipeline):
    import dagster as dg

    p = pipeline
    p.connect()
    outcome = p.sync(**_window())
    assert outcome.success
    event = p.instance.get_latest_materialization_event(dg.AssetKey("invoices"))
    meta = event.asset_materialization.metadata
    for key in ("total", "created", "updated", "unchanged", "deleted", "errors", "error_details",
                "dagster/row_count", "dagster/table_name", "dagster/column_schema", "preview"):
        assert key in meta, key
    assert event.asset_materialization.partition == p.account_id
    raw = p.instance.get_latest_materialization_event(dg.AssetKey("raw_suppliers")).asset_materialization
    assert len(raw.metadata["sha256"].value) == 64 and raw.metadata["size_bytes"].value > 0
    names = ["external_ids_unique", "references_exist", "row_counts_agree", "line_sums_consistent",
             "statuses_known", "export_complete"]
    keys = [dg.AssetCheckKey(dg.AssetKey("invoices"), name) for name in names]
    latest = p.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    for key in keys:
        data = latest[key].event.dagster_event.event_specific_data
        assert data.passed, key
        assert data.metadata["account_id"].value == p.account_id


@ON_POSTGRESQL
def test_truncated_answer_fails_the_run_and_keeps_previous_state(pipeline):
    p = pipeline
    p.connect()
    assert p.sync(**_window()).success
    before = _rows(p.engine, schema.suppliers, p.account_id)
    p.emulator.state.dataset.edit_supplier(p.emulator.state.dataset.suppliers()[0].id, {"name": "Изменён"})
    p.emulator.state.add_fault(endpoint="suppliers", kind="truncated", count=50)
    outcome = p.sync(["suppliers"])
    assert not outcome.success
    assert any("raw_suppliers" in f for f in outcome.failures)
    assert _rows(p.engine, schema.suppliers, p.account_id) == before


@pytest.mark.postgres
def test_production_shape_instance_and_warehouse_on_postgres(pg_pipeline):
    p = pg_pipeline
    p.connect()
    before = _sessions(p.engine)
    outcome = p.sync(**_window())
    opened = _sessions(p.engine) - before
    assert outcome.success, outcome.failures
    assert type(p.instance.run_storage).__name__ == "PostgresRunStorage"
    _assert_warehouse_equals_truth(p)
    # The run's instance holds its connections (`iiko_pipeline.instance_connections`): dagster-postgres's NullPool
    # opened one per event write and lookup, about 780 for this sync.
    assert opened < 200, f"{opened} PostgreSQL sessions opened by one sync"


def _sessions(engine) -> int:
    """Sessions ever opened to the database (PostgreSQL counts them as each one ends)."""
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
                            ).scalar_one()
