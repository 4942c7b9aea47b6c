"""Products, product groups, measure units and employees through the core's own steps, against a real emulator
over HTTP and a real warehouse (SQLite and PostgreSQL): what issue 14 promises, behaviour by behaviour."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from core_helpers import CoreSync

from iiko_pipeline.core.failures import SyncFailure
from iiko_pipeline.core.specs import spec
from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.credentials import connected_account_ids, mark_connection, save_credentials
from iiko_pipeline.warehouse.crypto import KeyRing, generate_key
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD

PRODUCTS, GROUPS, UNITS, EMPLOYEES = spec("products"), spec("product_groups"), spec("measure_units"), spec("employees")
REFERENCE_CHAIN = (UNITS, GROUPS, PRODUCTS)


def rows(core: CoreSync, table: sa.Table) -> dict[str, dict]:
    with core.engine.connect() as conn:
        return {r["external_id"]: dict(r) for r in conn.execute(
            sa.select(table).where(table.c.account_id == core.account_id)).mappings()}


def sync_catalogue(core: CoreSync) -> dict:
    return {s.name: core.run(s) for s in REFERENCE_CHAIN}


def test_products_groups_and_units_are_iikos_catalogue_linked_and_checked(core: CoreSync):
    runs = sync_catalogue(core)
    ds = core.emulator.state.dataset
    truth = {p.id: p for p in ds.nomenclature_items()}
    products, groups = rows(core, schema.products), rows(core, schema.product_groups)
    units = rows(core, schema.measure_units)
    assert set(products) == set(truth)  # deleted ones included (includeDeleted=true)
    assert {p.id for p in truth.values() if p.deleted} == {k for k, r in products.items() if r["is_deleted"]}
    assert set(groups) == {g.id for g in ds.product_groups()}
    group_ids = {k: r["id"] for k, r in groups.items()}
    unit_ids = {k: r["id"] for k, r in units.items()}
    for ext, p in truth.items():
        row = products[ext]
        assert (row["name"], row["num"], row["code"], row["product_type"]) == (p.name, p.num, p.code or None, p.type)
        assert row["group_id"] == (group_ids[p.parent_id] if p.parent_id else None), ext
        assert row["main_unit_id"] == unit_ids[p.main_unit_id], ext
        assert row["default_sale_price"] == p.default_sale_price
        assert row["barcodes"] == [{"barcode": b, "containerName": None} for b in p.barcodes]
        assert row["extra"]["defaultIncludedInMenu"] is p.default_included_in_menu  # the docs' spelling, kept
        assert row["deleted_at"] is None
    for g in ds.product_groups():
        assert groups[g.id]["parent_id"] == (group_ids[g.parent_id] if g.parent_id else None)
    for name, run in runs.items():
        assert not run.failed_checks(), (name, run.failed_checks())
        assert run.written.result.errors == 0 and not run.written.result.warnings, name


def test_every_invoice_line_links_to_its_product_and_unit(core: CoreSync):
    core.reference()  # restaurants, stores, suppliers, units, groups, products, employees
    run = core.incremental(history=10)
    items = schema.invoice_items
    with core.engine.connect() as conn:
        lines = conn.execute(sa.select(items.c.product_external_id, items.c.product_id, items.c.amount_unit_id,
                                       items.c.amount_unit_external_id)
                             .where(items.c.account_id == core.account_id)).all()
    assert lines and all(line.product_id is not None for line in lines)
    assert all(line.amount_unit_id is not None for line in lines if line.amount_unit_external_id)
    assert run.checks["links_resolved"].passed and not run.written.result.warnings


def test_lines_synced_before_products_are_kept_reported_and_linked_by_the_products_sync(core: CoreSync):
    for name in ("restaurants", "stores", "suppliers"):
        core.run(spec(name))
    run = core.incremental(history=10)
    warnings = run.written.result.warnings
    assert warnings and all(w["stored"] for w in warnings)  # reported in error_details, not rejected
    assert run.written.result.errors == 0 and run.checks["records_stored"].passed
    assert any("not in products" in w["reason"] for w in warnings)
    links = run.checks["links_resolved"]
    assert not links.passed and links.warn_only
    assert run.written.result.brief()["error_details"] == warnings  # the brief's error_details carry them
    sync_catalogue(core)
    items = schema.invoice_items
    with core.engine.connect() as conn:
        unlinked = conn.execute(sa.select(sa.func.count()).where(
            items.c.account_id == core.account_id, items.c.product_id.is_(None))).scalar_one()
    assert unlinked == 0


def test_a_product_deleted_in_iiko_is_flagged_and_one_that_vanishes_is_marked_deleted(core: CoreSync):
    sync_catalogue(core)
    live = [p for p in core.emulator.state.dataset.nomenclature_items() if not p.deleted]
    flagged, purged = live[0].id, live[1].id
    core.emulator.state.remove_product(flagged)
    core.emulator.state.remove_product(purged, purge=True)
    run = core.run(PRODUCTS)
    products = rows(core, schema.products)
    assert products[flagged]["is_deleted"] and products[flagged]["deleted_at"] is None  # iiko still lists it
    assert products[purged]["deleted_at"] is not None  # gone from the list: our soft delete
    assert run.written.result.updated == 1 and run.written.result.deleted == 1


def test_a_ninety_percent_drop_in_products_is_withheld_by_the_guard(core: CoreSync):
    sync_catalogue(core)
    items = core.emulator.state.dataset.nomenclature_items()
    for product in items[: int(len(items) * 0.9)]:
        core.emulator.state.remove_product(product.id, purge=True)
    run = core.run(PRODUCTS)
    guard = run.checks["deletions_guarded"]
    assert not guard.passed and guard.warn_only
    assert all(r["deleted_at"] is None for r in rows(core, schema.products).values())
    assert run.written.result.deleted == 0


def test_an_unknown_new_field_is_kept_in_extra_and_warned_about(core: CoreSync):
    sync_catalogue(core)
    core.emulator.state.configure(product_fields_added={"allergenGroups": [{"id": "nuts", "level": 2}]})
    run = core.run(PRODUCTS)
    assert run.checks["records_stored"].passed and run.written.result.errors == 0
    fields = run.checks["fields_as_documented"]
    assert not fields.passed and fields.warn_only and "allergenGroups" in fields.metadata["detail"]
    products = rows(core, schema.products)
    assert all(r["extra"]["allergenGroups"] == [{"id": "nuts", "level": 2}] for r in products.values())
    assert run.written.result.updated == len(products)  # extra changed, nothing else


def test_a_renamed_field_warns_and_keeps_the_stored_values(core: CoreSync):
    sync_catalogue(core)
    before = rows(core, schema.products)
    core.emulator.state.configure(product_fields_renamed={"mainUnit": "mainUnitId"})
    run = core.run(PRODUCTS)
    detail = run.checks["fields_as_documented"].metadata["detail"]
    assert "'mainUnit' missing" in detail and "'mainUnitId'" in detail
    after = rows(core, schema.products)
    for ext, row in after.items():  # the column whose field vanished keeps what we held
        assert (row["main_unit_external_id"], row["main_unit_id"]) == \
            (before[ext]["main_unit_external_id"], before[ext]["main_unit_id"]), ext
        assert row["extra"]["mainUnitId"] == before[ext]["main_unit_external_id"]  # the new name is kept too


def test_a_bad_product_is_named_with_its_field_and_the_rest_is_stored(core: CoreSync):
    sync_catalogue(core)
    state = core.emulator.state
    bad = state.add_product(name="Испорченный товар", num="BAD-1")
    before = rows(core, schema.products)

    def corrupt(body: bytes) -> bytes:
        items = json.loads(body)
        for item in items:
            if item["id"] == bad.id:
                item["defaultSalePrice"] = {"amount": 1}
        return json.dumps(items, ensure_ascii=False).encode()

    run = core.run(PRODUCTS, rewrite=corrupt)
    [error] = run.written.result.error_details
    assert error["entity"] == "products" and error["external_id"] == bad.id
    assert "BAD-1" in error["record"] and "Испорченный товар" in error["record"]
    assert "defaultSalePrice" in error["reason"] and "object" in error["reason"]
    after = rows(core, schema.products)
    assert set(after) == set(before)  # the bad one is not stored, nothing held is lost or deleted
    assert all(r["deleted_at"] is None for r in after.values())


def test_employees_are_stored_without_contact_or_card_data(core: CoreSync):
    run = core.run(EMPLOYEES)
    staff = core.emulator.state.dataset.employees()
    stored = rows(core, schema.employees)
    assert set(stored) == {e.id for e in staff} and not run.failed_checks()
    secrets = {v for e in staff for v in (e.phone, e.cell_phone, e.email, e.address, e.card_number) if v}
    assert secrets  # the emulator sends them, as iiko does
    dumped = json.dumps([list(r.values()) for r in stored.values()], default=str, ensure_ascii=False)
    assert not [s for s in secrets if s in dumped]
    for e in staff:
        row = stored[e.id]
        assert (row["first_name"], row["last_name"], row["main_role_code"]) == \
            (e.first_name, e.last_name, e.main_role_code)
        assert row["role_codes"] == list(e.role_codes) and row["department_codes"] == list(e.department_codes)
        assert (row["hire_date"], row["fire_date"], row["is_deleted"]) == (e.hire_date, e.fire_date, e.deleted)
    assert not {c.name for c in schema.employees.columns} & {"phone", "email", "address", "card_number"}


@pytest.mark.parametrize("cause", ["old_version", "no_right"])
def test_an_optional_entity_iiko_cannot_give_is_skipped_without_failing_or_disconnecting(core: CoreSync,
                                                                                        cause: str):
    sync_catalogue(core)
    before = rows(core, schema.products)
    if cause == "old_version":
        core.emulator.state.configure(version="5.4.5000.0")
    else:
        core.emulator.state.configure(permission_denied=["v2/entities/products/list"])
    run = core.run(PRODUCTS)
    assert run.raw.skipped and "products skipped" in run.raw.skipped
    assert ("not available on this iiko version" if cause == "old_version" else "HTTP 403") in run.raw.skipped
    available = run.checks["entity_available"]
    assert not available.passed and available.warn_only
    assert [n for n, c in run.checks.items() if not c.passed and not c.warn_only] == []
    assert rows(core, schema.products) == before  # nothing written, nothing taken for deleted
    assert run.written.result.total == 0


def test_a_required_entity_is_not_skipped_on_a_refusal(core: CoreSync):
    core.emulator.state.configure(permission_denied=["suppliers"])
    with pytest.raises(SyncFailure) as failed:
        core.run(spec("suppliers"))
    assert failed.value.kind.value == "rights"


def test_a_skip_leaves_the_account_connected(core: CoreSync):
    save_credentials(core.engine, KeyRing.with_key(generate_key()), core.account, "iiko", EMULATOR_LOGIN,
                     EMULATOR_PASSWORD, core.emulator.url)
    mark_connection(core.engine, core.account, "iiko", is_connected=True, error=None)
    assert core.account_id in set(connected_account_ids(core.engine))
    core.emulator.state.configure(permission_denied=["employees"])
    run = core.run(EMPLOYEES)
    assert run.raw.skipped
    assert core.account_id in set(connected_account_ids(core.engine))


@pytest.mark.parametrize("kind", ["truncated", "malformed"])
def test_a_broken_products_answer_fails_clearly_and_keeps_what_is_held(core: CoreSync, kind: str):
    sync_catalogue(core)
    before = rows(core, schema.products)
    core.emulator.state.add_fault(endpoint="v2/entities/products/list", kind=kind, count=5)
    with pytest.raises(SyncFailure) as failed:
        core.run(PRODUCTS)
    assert failed.value.kind.value in ("bad_data", "transient")  # a cut answer may heal on a retry
    assert "v2/entities/products/list" in failed.value.reason and "JSON" in failed.value.reason
    assert "Traceback" not in failed.value.reason
    assert rows(core, schema.products) == before
