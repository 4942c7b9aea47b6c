"""Soft links on real SQLite and PostgreSQL: products, groups, units and invoice lines are stored even when
what they name is not held yet (the link NULL, a warning with `"stored": true`, never an error), and linked
when it arrives; JSON columns round-trip and never count as changed when they are not."""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from iiko_pipeline.adapters import IIKO_ADAPTER
from iiko_pipeline.adapters.base import AdaptedBatch
from iiko_pipeline.iiko.parsing import iter_employees, iter_json_items
from iiko_pipeline.warehouse import quality, schema
from iiko_pipeline.warehouse.entities import MAX_LINK_NOTES, SyncResult, upsert_dimension, upsert_invoices

ACCOUNT = uuid.UUID("11111111-2222-4333-8444-555555555555")
OTHER_ACCOUNT = uuid.UUID("99999999-2222-4333-8444-555555555555")
ROOT, DAIRY, CHEESE = (f"9a2e0000-0000-4000-8000-0000000000{n:02x}" for n in (1, 2, 3))
KG, PIECE = "6040d92d-e286-f4f9-a613-ed0e6fd241e1", "6040d92d-e286-f4f9-a613-ed0e6fd241e2"
MILK, BRIE, SALT = (f"c1ebbf72-0000-4000-8000-00000000f0{n:02x}" for n in (1, 2, 3))
INV1, INV2 = "aa000000-0000-4000-8000-000000000001", "aa000000-0000-4000-8000-000000000002"
SUP = "3f08e41c-0000-4000-8000-00000000c001"


def _decoded(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items as the client decodes them (numbers as exact Decimal, digit for digit)."""
    text = json.dumps(items, ensure_ascii=False, default=lambda d: f"@@{d}@@")
    return list(iter_json_items(re.sub(r'"@@([^@]+)@@"', r"\1", text).encode()))


def _product(ident: str, *, group: str | None = DAIRY, unit: str | None = KG, **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": ident, "deleted": False, "name": f"Товар {ident[-2:]}", "description": None, "num": ident[-5:],
        "code": ident[-2:], "parent": group, "type": "GOODS", "mainUnit": unit, "category": None,
        "accountingCategory": None, "taxCategory": None, "defaultSalePrice": Decimal("123.456789"),
        "unitWeight": Decimal("1.025"), "unitCapacity": 0, "notInStoreMovement": False,
        "containers": [{"id": "9a2e0000-0000-4000-8000-0000000000b1", "name": "Ящик", "count": Decimal("12"),
                        "containerWeight": Decimal("0.35")}],
        "barcodes": [{"barcode": "46012345" + ident[-5:], "containerName": None}],
        "modifiers": [], "color": {"red": 255, "green": 250, "blue": 240}, "frontFontSize": 0,
        "frontImageId": None, "position": None, "defaultIncludedInMenu": False,
    }
    item.update(fields)
    return item


def _group(ident: str, parent: str | None, name: str) -> dict[str, Any]:
    return {"id": ident, "deleted": False, "name": name, "num": ident[-4:], "code": None, "parent": parent,
            "description": None, "modifiers": [], "visibilityFilter": None}


def _unit(ident: str, name: str) -> dict[str, Any]:
    return {"id": ident, "rootType": "MeasureUnit", "deleted": False, "code": name[:2], "name": name}


def _sync(engine: sa.Engine, entity: str, items: list[dict[str, Any]],
          account: uuid.UUID = ACCOUNT) -> SyncResult:
    batch: AdaptedBatch = getattr(IIKO_ADAPTER, entity)(_decoded(items))
    return upsert_dimension(engine, entity, account, batch.rows, batch.errors)


def _rows(engine: sa.Engine, table: sa.Table, account: uuid.UUID = ACCOUNT) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r["external_id"]: dict(r) for r in conn.execute(
            sa.select(table).where(table.c.account_id == account)).mappings()}


def _ids(engine: sa.Engine, table: sa.Table) -> dict[str, int]:
    return {ext: row["id"] for ext, row in _rows(engine, table).items()}


def _invoice(doc_id: str, products: list[str | None], unit: str | None = None, supplier: str | None = None):
    return {"id": doc_id, "documentNumber": doc_id[-4:], "dateIncoming": "2024-03-01T10:15:00+03:00",
            "status": "PROCESSED", "supplier": supplier,
            "items": [{"num": str(n), "amount": "2.000000000", "price": "50.700000000", "sum": "101.400000000",
                       "product": product, "amountUnit": unit} for n, product in enumerate(products, 1)]}


def _sync_invoices(engine: sa.Engine, *documents: dict[str, Any]) -> SyncResult:
    batch = IIKO_ADAPTER.invoices(list(documents))
    return upsert_invoices(engine, ACCOUNT, batch.rows, batch.children, batch.errors)


def _lines(engine: sa.Engine) -> list[dict[str, Any]]:
    t = schema.invoice_items
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(t.c.line_number, t.c.product_external_id, t.c.product_id, t.c.amount_unit_external_id,
                      t.c.amount_unit_id, schema.invoices.c.external_id.label("invoice"))
            .join(schema.invoices, schema.invoices.c.id == t.c.invoice_id)
            .order_by(schema.invoices.c.external_id, t.c.line_number)).mappings()]


# ------------------------------------------------------------------ products and groups


def test_a_product_whose_group_is_not_held_is_stored_unlinked_warned_then_linked(engine):
    _sync(engine, "measure_units", [_unit(KG, "Килограмм")])
    first = _sync(engine, "products", [_product(MILK, group=DAIRY), _product(SALT, group=None)])
    assert (first.total, first.created, first.errors, first.error_details) == (2, 2, 0, [])
    [warning] = first.warnings
    assert warning["stored"] is True
    assert (warning["entity"], warning["external_id"]) == ("products", MILK)
    assert DAIRY in warning["reason"] and "product_groups" in warning["reason"]
    products = _rows(engine, schema.products)
    assert set(products) == {MILK, SALT}
    milk = products[MILK]
    assert (milk["group_id"], milk["group_external_id"]) == (None, DAIRY)
    assert milk["main_unit_id"] == _ids(engine, schema.measure_units)[KG]  # the held unit links at once
    assert milk["default_sale_price"] == Decimal("123.456789")

    groups = _sync(engine, "product_groups", [_group(ROOT, None, "Продукты"), _group(DAIRY, ROOT, "Молочные")])
    assert (groups.created, groups.errors, groups.warnings) == (2, 0, [])
    assert _rows(engine, schema.products)[MILK]["group_id"] == _ids(engine, schema.product_groups)[DAIRY]

    again = _sync(engine, "products", [_product(MILK, group=DAIRY), _product(SALT, group=None)])
    assert again.warnings == [] and again.errors == 0
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)  # the relinked row is not "changed"


def test_a_product_whose_unit_arrives_later_is_linked_by_the_units_sync(engine):
    _sync(engine, "product_groups", [_group(DAIRY, None, "Молочные")])
    first = _sync(engine, "products", [_product(MILK, unit=PIECE)])
    assert [(w["external_id"], PIECE in w["reason"], "measure_units" in w["reason"]) for w in first.warnings] == [
        (MILK, True, True)]
    assert _rows(engine, schema.products)[MILK]["main_unit_id"] is None
    _sync(engine, "measure_units", [_unit(PIECE, "Штука")])
    assert _rows(engine, schema.products)[MILK]["main_unit_id"] == _ids(engine, schema.measure_units)[PIECE]


def test_a_sync_links_only_its_own_accounts_rows(engine):
    _sync(engine, "products", [_product(MILK, group=DAIRY, unit=None)], account=OTHER_ACCOUNT)
    _sync(engine, "product_groups", [_group(DAIRY, None, "Молочные")])  # ACCOUNT's group, same iiko id
    [other] = _rows(engine, schema.products, OTHER_ACCOUNT).values()
    assert other["group_id"] is None


def test_groups_whose_parent_arrives_in_the_same_batch_are_linked(engine):
    # children before their parents, as nothing promises iiko's order
    result = _sync(engine, "product_groups", [_group(CHEESE, DAIRY, "Сыры"), _group(DAIRY, ROOT, "Молочные"),
                                              _group(ROOT, None, "Продукты")])
    assert (result.created, result.errors, result.warnings) == (3, 0, [])
    groups, ids = _rows(engine, schema.product_groups), _ids(engine, schema.product_groups)
    assert groups[CHEESE]["parent_id"] == ids[DAIRY]
    assert groups[DAIRY]["parent_id"] == ids[ROOT]
    assert groups[ROOT]["parent_id"] is None
    again = _sync(engine, "product_groups", [_group(CHEESE, DAIRY, "Сыры"), _group(DAIRY, ROOT, "Молочные"),
                                             _group(ROOT, None, "Продукты")])
    assert (again.created, again.updated, again.unchanged, again.warnings) == (0, 0, 3, [])


def test_a_group_whose_parent_is_not_in_the_answer_is_kept_and_warned(engine):
    result = _sync(engine, "product_groups", [_group(CHEESE, DAIRY, "Сыры"), _group(ROOT, None, "Продукты")])
    assert (result.created, result.errors) == (2, 0)
    [warning] = result.warnings
    assert (warning["entity"], warning["external_id"], warning["stored"]) == ("product_groups", CHEESE, True)
    assert warning["record"] == f"product group id {CHEESE}"
    assert _rows(engine, schema.product_groups)[CHEESE]["parent_id"] is None


# ------------------------------------------------------------------ invoice lines


def test_lines_naming_unknown_products_are_kept_reported_once_per_product_then_linked(engine):
    result = _sync_invoices(engine, _invoice(INV2, [MILK, BRIE, MILK]), _invoice(INV1, [MILK, None]))
    assert (result.created, result.errors, result.error_details, result.items_written) == (2, 0, [], 5)
    assert all(line["product_id"] is None for line in _lines(engine))
    notes = {w["reason"].split()[2]: w for w in result.warnings}  # "line's product <id> is not in ..."
    assert sorted(notes) == sorted([MILK, BRIE])  # one note per missing product, however many lines name it
    assert all(w["stored"] is True and w["entity"] == "invoices" for w in result.warnings)
    assert notes[MILK]["external_id"] == INV1  # the first invoice that names it
    assert notes[MILK]["record"] == f"invoice id {INV1} (3 lines in this batch)"
    assert notes[BRIE]["record"] == f"invoice id {INV2} (1 lines in this batch)"

    waiting = quality.unlinked_rows(engine, [schema.invoice_items], ACCOUNT)
    assert not waiting.passed and waiting.failing == 2
    assert any(MILK in line and "invoice_items: 3 rows" in line for line in waiting.sample)

    _sync(engine, "products", [_product(MILK, group=None, unit=None), _product(BRIE, group=None, unit=None)])
    ids = _ids(engine, schema.products)
    assert [(line["product_external_id"], line["product_id"]) for line in _lines(engine)] == [
        (MILK, ids[MILK]), (None, None), (MILK, ids[MILK]), (BRIE, ids[BRIE]), (MILK, ids[MILK])]
    assert quality.unlinked_rows(engine, [schema.invoice_items], ACCOUNT).passed


def test_lines_of_held_products_and_units_are_linked_at_insert(engine):
    _sync(engine, "measure_units", [_unit(KG, "Килограмм")])
    _sync(engine, "products", [_product(MILK, group=None), _product(BRIE, group=None)])
    result = _sync_invoices(engine, _invoice(INV1, [MILK, BRIE], unit=KG))
    assert (result.errors, result.warnings, result.items_written) == (0, [], 2)
    products, kg = _ids(engine, schema.products), _ids(engine, schema.measure_units)[KG]
    assert [(line["product_id"], line["amount_unit_id"]) for line in _lines(engine)] == [
        (products[MILK], kg), (products[BRIE], kg)]


def test_a_line_unit_not_held_is_reported_beside_its_product(engine):
    _sync(engine, "products", [_product(MILK, group=None, unit=None)])
    result = _sync_invoices(engine, _invoice(INV1, [MILK], unit=PIECE))
    [warning] = result.warnings
    assert warning["reason"].startswith(f"line's amount unit {PIECE} is not in measure_units")
    [line] = _lines(engine)
    assert line["product_id"] is not None and line["amount_unit_id"] is None
    _sync(engine, "measure_units", [_unit(PIECE, "Штука")])
    assert _lines(engine)[0]["amount_unit_id"] == _ids(engine, schema.measure_units)[PIECE]


def test_link_notes_are_capped_with_one_summary(engine):
    extra = 3
    missing = [f"c1ebbf72-0000-4000-8000-0000000{n:05d}" for n in range(MAX_LINK_NOTES + extra)]
    result = _sync_invoices(engine, _invoice(INV1, [*missing, missing[-1]]))
    assert result.errors == 0 and result.items_written == len(missing) + 1
    assert len(result.warnings) == MAX_LINK_NOTES + 1
    named = [w["reason"].split()[2] for w in result.warnings[:MAX_LINK_NOTES]]
    assert named == missing[:MAX_LINK_NOTES]  # the first ones, in order
    summary = result.warnings[-1]
    assert summary["stored"] is True and summary["external_id"] is None
    assert summary["record"] == f"{extra + 1} more lines"
    assert summary["reason"].startswith(f"they name {extra} more products that are not held")


def test_unchanged_invoices_do_not_repeat_their_notes(engine):
    first = _sync_invoices(engine, _invoice(INV1, [MILK]))
    again = _sync_invoices(engine, _invoice(INV1, [MILK]))
    assert len(first.warnings) == 1
    assert (again.unchanged, again.warnings) == (1, [])
    assert _lines(engine)[0]["product_external_id"] == MILK  # the unlinked line is still there


# ------------------------------------------------------------------ JSON columns


def _raw_json(engine: sa.Engine, column: str, external_id: str) -> Any:
    """What the database itself holds: JSONB's type on PostgreSQL, the stored text's type and text on SQLite."""
    t = schema.products
    raw = sa.type_coerce(t.c[column], sa.Text())  # around the JsonDocument type: no decoding on read
    picked = ([sa.func.jsonb_typeof(t.c[column])] if engine.dialect.name == "postgresql"
              else [sa.func.typeof(raw), raw])
    with engine.connect() as conn:
        row = conn.execute(sa.select(*picked).where(t.c.external_id == external_id)).one()
    return row[0] if len(row) == 1 else tuple(row)


def test_json_columns_round_trip_python_values_on_both_backends(engine):
    extra = {"ä": "ünïcode «кавычки»", "nested": {"list": [1, 2.5, None, True, "x\ty"]}, "empty": {}}
    containers = [{"id": "b1", "count": 12}, {"id": "b2", "count": 0.35}]
    rows = [
        {"external_id": MILK, "name": "python values", "extra": extra, "containers": containers, "barcodes": []},
        {"external_id": BRIE, "name": "adapter text", "extra": '{"b":1,"a":[true,null]}',
         "containers": "[]", "barcodes": None},
    ]
    result = upsert_dimension(engine, "products", ACCOUNT, rows)
    assert result.created == 2
    stored = _rows(engine, schema.products)
    assert stored[MILK]["extra"] == extra
    assert stored[MILK]["containers"] == containers and stored[MILK]["barcodes"] == []
    assert stored[BRIE]["extra"] == {"a": [True, None], "b": 1}
    assert (stored[BRIE]["containers"], stored[BRIE]["barcodes"]) == ([], None)
    if engine.dialect.name == "postgresql":
        assert _raw_json(engine, "extra", MILK) == "object"
        assert _raw_json(engine, "containers", BRIE) == "array"
    else:
        kind, text = _raw_json(engine, "extra", BRIE)
        assert (kind, text) == ("text", '{"b":1,"a":[true,null]}')  # the adapter's canonical text, as given
        assert json.loads(_raw_json(engine, "extra", MILK)[1]) == extra


def test_json_documents_written_by_plain_inserts_read_back_as_python_values(engine):
    t = schema.employees
    with engine.begin() as conn:
        conn.execute(sa.insert(t), [
            {"account_id": ACCOUNT, "external_system": "iiko", "external_id": "e1", "role_codes": ["COOK", "BAR"],
             "department_codes": '["001"]'},
            {"account_id": ACCOUNT, "external_system": "iiko", "external_id": "e2", "role_codes": [],
             "department_codes": None}])
    with engine.connect() as conn:
        got = {r.external_id: (r.role_codes, r.department_codes) for r in conn.execute(
            sa.select(t.c.external_id, t.c.role_codes, t.c.department_codes))}
    assert got == {"e1": (["COOK", "BAR"], ["001"]), "e2": ([], None)}


def test_resyncing_the_same_products_changes_nothing_and_one_changed_field_updates_one(engine):
    items = [_product(MILK, group=None, unit=None), _product(BRIE, group=None, unit=None),
             _product(SALT, group=None, unit=None, barcodes=[], containers=[])]
    first = _sync(engine, "products", items)
    assert (first.created, first.updated, first.unchanged) == (3, 0, 0)
    with engine.connect() as conn:
        synced = conn.execute(sa.select(sa.func.max(schema.products.c.synced_at))).scalar_one()
    same = _sync(engine, "products", [{k: item[k] for k in reversed(list(item))} for item in items])
    assert (same.created, same.updated, same.unchanged) == (0, 0, 3)
    with engine.connect() as conn:  # nothing written, not even the bookkeeping timestamp
        assert conn.execute(sa.select(sa.func.max(schema.products.c.synced_at))).scalar_one() == synced

    items[1]["color"] = {"red": 0, "green": 0, "blue": 0}  # a field that lives in `extra`
    changed = _sync(engine, "products", items)
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 2)
    assert _rows(engine, schema.products)[BRIE]["extra"]["color"] == {"red": 0, "green": 0, "blue": 0}

    items[2]["barcodes"] = [{"barcode": "2000000000001", "containerName": None}]
    barcode = _sync(engine, "products", items)
    assert (barcode.updated, barcode.unchanged) == (1, 2)


def test_an_answer_without_barcodes_leaves_the_stored_ones(engine):
    _sync(engine, "products", [_product(MILK, group=None, unit=None)])
    older = _product(MILK, group=None, unit=None)
    del older["barcodes"]
    result = _sync(engine, "products", [older])
    assert (result.updated, result.unchanged) == (0, 1)
    assert _rows(engine, schema.products)[MILK]["barcodes"] == _product(MILK)["barcodes"]


# ------------------------------------------------------------------ quality and the brief's result


def test_unlinked_rows_reports_waiting_rows_and_passes_once_linked(engine):
    tables = [schema.products, schema.product_groups, schema.invoice_items]
    assert quality.unlinked_rows(engine, tables, ACCOUNT).passed  # nothing stored: nothing waits
    _sync(engine, "products", [_product(MILK, group=DAIRY, unit=None), _product(BRIE, group=DAIRY, unit=None)])
    _sync(engine, "product_groups", [_group(CHEESE, ROOT, "Сыры")])
    waiting = quality.unlinked_rows(engine, tables, ACCOUNT)
    assert not waiting.passed
    assert waiting.failing == 2
    assert waiting.sample == [f"products: 2 rows name group {DAIRY}, not in product_groups",
                              f"product_groups: 1 rows name parent {ROOT}, not in product_groups"]
    assert waiting.detail.startswith("3 rows link to 2 rows that are not held")
    assert quality.unlinked_rows(engine, tables, OTHER_ACCOUNT).passed  # per account

    _sync(engine, "product_groups", [_group(CHEESE, ROOT, "Сыры"), _group(ROOT, None, "Продукты"),
                                     _group(DAIRY, ROOT, "Молочные")])
    linked = quality.unlinked_rows(engine, tables, ACCOUNT)
    assert (linked.passed, linked.failing) == (True, 0)


def test_brief_lists_warnings_after_errors_and_counts_only_rejections(engine):
    items = _decoded([_product(MILK, group=DAIRY, unit=None), _product(BRIE, unit=None, parent="not-a-guid")])
    batch = IIKO_ADAPTER.products(items)
    result = upsert_dimension(engine, "products", ACCOUNT, batch.rows, batch.errors)
    brief = result.brief()
    assert set(brief) == {"total", "created", "updated", "errors", "error_details"}
    assert (brief["total"], brief["created"], brief["errors"]) == (2, 1, 1)
    rejected, stored = brief["error_details"]
    assert rejected["external_id"] == BRIE and "stored" not in rejected
    assert rejected["reason"] == "parent 'not-a-guid' is not a GUID"
    assert stored["external_id"] == MILK and stored["stored"] is True
    assert result.as_dict()["error_details"] == brief["error_details"]
    assert set(_rows(engine, schema.products)) == {MILK}


def test_invoice_brief_keeps_a_rejected_invoice_apart_from_unlinked_lines(engine):
    result = _sync_invoices(engine, _invoice(INV1, [MILK]), _invoice(INV2, [BRIE], supplier=SUP))
    brief = result.brief()
    assert (brief["total"], brief["created"], brief["errors"]) == (2, 1, 1)
    rejected, stored = brief["error_details"]
    assert rejected["external_id"] == INV2 and SUP in rejected["reason"] and "stored" not in rejected
    assert (stored["external_id"], stored["stored"]) == (INV1, True) and MILK in stored["reason"]
    assert BRIE not in json.dumps(brief)  # the rejected invoice's lines were not stored, so not noted
    assert result.reference_rejections == {INV2: "suppliers"}


def test_employees_from_xml_round_trip_and_resync_unchanged(engine):
    xml = ("<employees><employee><id>5A000000-0000-4000-8000-000000000001</id><name>Иванова</name>"
           "<roleCodes>COOK</roleCodes><roleCodes>BAR</roleCodes><departmentCodes>001</departmentCodes>"
           "<hireDate>2019-03-01T00:00:00+03:00</hireDate><employee>true</employee><phone>+7 900</phone>"
           "</employee></employees>").encode()

    def sync() -> SyncResult:
        batch = IIKO_ADAPTER.employees(list(iter_employees(xml)))
        return upsert_dimension(engine, "employees", ACCOUNT, batch.rows, batch.errors)

    assert sync().created == 1
    [row] = _rows(engine, schema.employees).values()
    assert (row["role_codes"], row["department_codes"], row["is_employee"]) == (["COOK", "BAR"], ["001"], True)
    again = sync()
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)


@pytest.mark.parametrize("where", [{"name": "Молоко\u0000"}, {"comment": "скидка\u0000 10%"}],
                         ids=["text-column", "extra"])
def test_a_nul_character_from_a_json_list_does_not_fail_the_batch(engine, where):
    """BUG (PostgreSQL only): JSON may carry U+0000 (`\\u0000`), and the v2 lists are JSON. PostgreSQL text refuses
    the NUL byte and JSONB refuses the `\\u0000` escape, so one such product fails the whole products upsert there
    (SQLite stores it). Expected: the same outcome on both backends, the rest of the batch stored: the record
    refused with a RecordError naming the field, or stored with the character dropped."""
    result = _sync(engine, "products", [_product(MILK, group=None, unit=None, **where),
                                        _product(BRIE, group=None, unit=None)])
    assert result.created + result.errors == 2
    assert BRIE in _rows(engine, schema.products)


def test_sqlite_reads_each_staged_row_by_key_not_the_accounts_whole_table(tmp_path):
    """The stage-to-table joins of a write (the unlinked-row notes, the existing-key count) must loop over the
    stage and look each row up by key: SQLite's planner, left alone, walked the account's whole table once per
    staged row, so every batch of a long backfill cost more than the one before."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    schema.metadata.create_all(engine)
    statements: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def capture(_conn, _cursor, statement, *_args):
        if (" JOIN " in statement and "count(*)" in statement) or "IS NULL ORDER BY s.external_id" in statement:
            statements.append(statement)

    _sync(engine, "products", [_product(MILK, group=DAIRY)])
    assert len(statements) >= 2, statements
    sa.event.remove(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        # the stages are temporary tables, gone by now: one of the same shape, indexed on its key like a stage
        conn.exec_driver_sql("CREATE TEMP TABLE plan_stage AS SELECT * FROM products WHERE 0")
        conn.exec_driver_sql("CREATE INDEX ix_plan_stage_external_id ON plan_stage (external_id)")
        for statement in statements:
            stage = re.search(r'FROM ("?[\w]+"?) s ', statement).group(1)
            sql = statement.replace(stage, "plan_stage", 1)
            plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql,
                                                            (str(ACCOUNT), "iiko") * (sql.count(" = ?") // 2))]
            assert plan[0].startswith("SCAN s"), (sql, plan)
            assert any("external_id=?" in step for step in plan[1:]), (sql, plan)


# ------------------------------------------------------------------ hard links
GONE_STORE = "5b0e0000-0000-4000-8000-00000000dead"


def test_a_line_naming_a_store_it_is_not_linked_to_is_reported(engine):
    _sync_invoices(engine, _invoice(INV1, [MILK, BRIE]))
    assert quality.dangling_references(engine, "invoices", ACCOUNT).passed
    t = schema.invoice_items
    with engine.begin() as conn:  # what a store removed under its lines (`ON DELETE SET NULL`) leaves
        conn.execute(t.update().where(t.c.account_id == ACCOUNT, t.c.line_number == 2)
                     .values(store_external_id=GONE_STORE, store_id=None))
    found = quality.dangling_references(engine, "invoices", ACCOUNT)
    assert (found.passed, found.failing) == (False, 1)
    assert found.sample[0].endswith(f": line's store {GONE_STORE} missing")
    assert quality.dangling_references(engine, "invoices", OTHER_ACCOUNT).passed  # per account


@pytest.mark.parametrize("table_name", ["invoice_items", "sales_daily", "stock_balances"])
def test_the_hard_link_check_reads_only_the_unlinked_rows_on_sqlite(sqlite_url: str, table_name: str) -> None:
    """These tables grow with an account's history. Without statistics SQLite would answer the check through the
    `account_id` index, every row of the account (0.9 s of an hourly run at a year of invoice lines); the partial
    index holds only the rows the check reports."""
    from iiko_pipeline.warehouse import make_engine, migrate
    from iiko_pipeline.warehouse.entities import parent_refs

    engine = make_engine(sqlite_url)
    migrate(engine)
    table = schema.metadata.tables[table_name]
    (ref,) = parent_refs(table)
    compiled = quality.unlinked_parents(table, ref, ACCOUNT).compile(engine)
    try:
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", (None,) * len(compiled.positiontup)).all()
    finally:
        engine.dispose()
    assert [step[-1] for step in plan] == [
        f"SEARCH {table_name} USING INDEX ix_{table_name}_unlinked_{ref.fk_column.removesuffix('_id')} (account_id=?)"]
