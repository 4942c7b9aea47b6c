"""The reference adapter (products, product groups, measure units, employees): every column, exact numbers,
`extra` for what has no column, errors that name the record and the field, and no personal contact data."""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from iiko_pipeline.adapters import IIKO_ADAPTER
from iiko_pipeline.adapters.iiko_reference import EMPLOYEE_FIELDS_LEFT_OUT
from iiko_pipeline.emulator import render
from iiko_pipeline.emulator.models import Container, Employee, NomenclatureItem, ProductGroup
from iiko_pipeline.iiko.errors import IikoResponseError
from iiko_pipeline.iiko.parsing import iter_employees, iter_json_items

PRODUCT = "C1EBBF72-0000-4000-8000-00000000F001"
GROUP = "9A2E0000-0000-4000-8000-000000000001"
UNIT = "6040d92d-e286-f4f9-a613-ed0e6fd241e1"
CATEGORY = "9a2e0000-0000-4000-8000-0000000000c1"
ACCOUNTING = "9a2e0000-0000-4000-8000-0000000000a1"
TAX = "9a2e0000-0000-4000-8000-0000000000f1"
CONTAINER = "9a2e0000-0000-4000-8000-0000000000b1"
EMPLOYEE = "5A000000-0000-4000-8000-000000000001"

#: The columns a products row has, exactly (a new column must be added here on purpose).
PRODUCT_COLUMNS = {
    "external_id", "is_deleted", "code", "name", "group_external_id", "main_unit_external_id", "num",
    "description", "product_type", "category_external_id", "accounting_category_external_id",
    "tax_category_external_id", "default_sale_price", "unit_weight", "unit_capacity", "not_in_store_movement",
    "containers", "barcodes", "extra",
}


def _decoded(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items as the client hands them to the adapter: written as JSON (a `Decimal` as the number it spells,
    digit for digit) and read back by the real JSON list parser (numbers as Decimal)."""
    text = json.dumps(items, ensure_ascii=False, default=lambda d: f"@@{d}@@")
    return list(iter_json_items(re.sub(r'"@@([^@]+)@@"', r"\1", text).encode()))


def _served(item: NomenclatureItem, version: tuple[int, ...] = (8, 9, 5012, 0)) -> dict[str, Any]:
    """One product exactly as the emulator's server writes it, decoded as the client decodes it."""
    [record] = iter_json_items(render.nomenclature_items([item], version))
    return record


def _milk(**changes: Any) -> NomenclatureItem:
    fields: dict[str, Any] = dict(
        id=PRODUCT, name="Молоко 3,2%", num="00012", code="12", type="goods", main_unit_id=UNIT,
        parent_id=GROUP, description="Пастеризованное", category_id=CATEGORY,
        accounting_category_id=ACCOUNTING, tax_category_id=TAX, default_sale_price=Decimal("123.456789"),
        unit_weight=Decimal("1.025"), unit_capacity=Decimal("0.95"), not_in_store_movement=True,
        containers=(Container(id=CONTAINER, num="1", name="Ящик", count=Decimal("12")),),
        barcodes=("4601234567890",), color=(250, 240, 230), front_font_size=12, default_included_in_menu=True)
    fields.update(changes)
    return NomenclatureItem(**fields)


def _product(**fields: Any) -> dict[str, Any]:
    """A hand-written v2 product item shaped like iiko's docs (before decoding)."""
    item: dict[str, Any] = {
        "id": PRODUCT, "deleted": False, "name": "Сыр", "description": None, "num": "00077", "code": "77",
        "parent": GROUP, "type": "GOODS", "mainUnit": UNIT, "category": None, "accountingCategory": None,
        "taxCategory": None, "defaultSalePrice": 0, "unitWeight": 1, "unitCapacity": 0,
        "notInStoreMovement": False, "containers": [], "barcodes": [], "modifiers": [],
        "color": {"red": 255, "green": 255, "blue": 255}, "fontColor": {"red": 0, "green": 0, "blue": 0},
        "frontFontSize": 0, "frontImageId": None, "position": None, "modifierSchemaId": None,
        "defaultIncludedInMenu": False,
    }
    item.update(fields)
    return item


# ------------------------------------------------------------------ products


def test_a_served_product_maps_every_column():
    batch = IIKO_ADAPTER.products([_served(_milk())])
    assert batch.errors == []
    [row] = batch.rows
    assert set(row) == PRODUCT_COLUMNS
    assert row["external_id"] == PRODUCT.lower()
    assert row["is_deleted"] is False
    assert (row["code"], row["name"], row["num"], row["description"]) == ("12", "Молоко 3,2%", "00012",
                                                                          "Пастеризованное")
    assert row["group_external_id"] == GROUP.lower()
    assert row["main_unit_external_id"] == UNIT
    assert row["product_type"] == "GOODS"  # upper-cased
    assert (row["category_external_id"], row["accounting_category_external_id"],
            row["tax_category_external_id"]) == (CATEGORY, ACCOUNTING, TAX)
    assert row["not_in_store_movement"] is True
    for column, expected in (("default_sale_price", Decimal("123.456789")), ("unit_weight", Decimal("1.025")),
                             ("unit_capacity", Decimal("0.95"))):
        assert isinstance(row[column], Decimal), column
        assert row[column] == expected and str(row[column]) == str(expected), column
    containers = json.loads(row["containers"])
    assert [(c["id"], c["name"], c["count"]) for c in containers] == [(CONTAINER, "Ящик", 12)]
    assert json.loads(row["barcodes"]) == [{"barcode": "4601234567890", "containerName": None}]
    extra = json.loads(row["extra"])
    # Every field without a column, and only those.
    assert set(extra) == {"modifiers", "color", "fontColor", "frontFontSize", "frontImageId", "position",
                          "modifierSchemaId", "defaultIncludedInMenu"}
    assert extra["color"] == {"red": 250, "green": 240, "blue": 230}
    assert extra["frontFontSize"] == 12 and extra["defaultIncludedInMenu"] is True


def test_a_hand_written_product_maps_exact_decimals_and_null_references():
    [item] = _decoded([_product(defaultSalePrice=Decimal("123.456789"), unitWeight=Decimal("0.000000001"),
                                unitCapacity=Decimal("99999999999.123456789"), type="dish", deleted=True)])
    batch = IIKO_ADAPTER.products([item])
    [row] = batch.rows
    assert row["default_sale_price"] == Decimal("123.456789")
    assert row["unit_weight"] == Decimal("0.000000001")
    assert row["unit_capacity"] == Decimal("99999999999.123456789")  # 20 digits: a float would round it
    assert row["product_type"] == "DISH"
    assert row["is_deleted"] is True
    assert row["category_external_id"] is None and row["description"] is None
    assert (row["containers"], row["barcodes"]) == ("[]", "[]")


def test_all_zero_guid_reference_means_no_reference():
    [item] = _decoded([_product(parent="00000000-0000-0000-0000-000000000000")])
    [row] = IIKO_ADAPTER.products([item]).rows
    assert row["group_external_id"] is None


@pytest.mark.parametrize(("version", "left_out"), [
    ((6, 1, 0), {"containers", "barcodes"}),  # neither key is sent by this server
    ((8, 0, 0), {"barcodes"}),                # containers from 6.2.4, barcodes only from 8.7.1
    ((8, 9, 5012, 0), set()),
])
def test_containers_and_barcodes_no_item_carries_are_left_out_of_the_rows(version, left_out):
    """An older server never sends the key: the column is left out of every row (the upsert then leaves what
    the warehouse holds), rather than written as NULL or as an empty array."""
    batch = IIKO_ADAPTER.products([_served(_milk(), version), _served(_milk(id=CONTAINER, num="2"), version)])
    assert batch.errors == []
    for row in batch.rows:
        assert PRODUCT_COLUMNS - set(row) == left_out
        for column in {"containers", "barcodes"} - left_out:
            assert json.loads(row[column]) != []
        assert not {"containers", "barcodes"} & set(json.loads(row["extra"]))  # not folded into extra either


def test_a_key_absent_from_one_item_only_is_null_for_that_item():
    carried = _product(containers=[{"id": CONTAINER, "count": 6}], barcodes=[{"barcode": "1"}])
    missing = _product(id="c1ebbf72-0000-4000-8000-00000000f002")
    del missing["containers"], missing["barcodes"]
    with_lists, without = IIKO_ADAPTER.products(_decoded([carried, missing])).rows
    assert (without["containers"], without["barcodes"]) == (None, None)
    assert json.loads(with_lists["containers"]) == [{"id": CONTAINER, "count": 6}]
    assert set(with_lists) == set(without) == PRODUCT_COLUMNS


def test_empty_containers_and_barcodes_are_empty_arrays_not_null():
    item = _served(_milk(containers=(), barcodes=()))
    [row] = IIKO_ADAPTER.products([item]).rows
    assert (row["containers"], row["barcodes"]) == ("[]", "[]")
    [null_lists] = IIKO_ADAPTER.products(_decoded([_product(containers=None, barcodes=None)])).rows
    assert (null_lists["containers"], null_lists["barcodes"]) == (None, None)


def test_an_unknown_new_field_lands_in_extra_and_the_row_still_maps():
    added = {"allergenGroups": [{"id": "a1", "name": "Лактоза"}], "estimatedPurchasePrice": Decimal("41.5")}
    [item] = _decoded([_product(**added)])
    batch = IIKO_ADAPTER.products([item])
    assert batch.errors == []
    [row] = batch.rows
    extra = json.loads(row["extra"])
    assert extra["allergenGroups"] == [{"id": "a1", "name": "Лактоза"}]
    assert extra["estimatedPurchasePrice"] == 41.5
    assert row["name"] == "Сыр" and row["group_external_id"] == GROUP.lower()


def test_a_renamed_field_is_kept_in_extra_under_its_new_name():
    body = render.nomenclature_items([_milk()], (8, 9, 5012, 0), renamed={"defaultIncludedInMenu": "inMenu"})
    [row] = IIKO_ADAPTER.products(list(iter_json_items(body))).rows
    extra = json.loads(row["extra"])
    assert extra["inMenu"] is True and "defaultIncludedInMenu" not in extra


def test_extra_is_canonical_whatever_the_key_order():
    item = _product(zeta={"b": 1, "a": [Decimal("2.50"), None]}, alpha="Ä")
    reordered = {key: item[key] for key in reversed(list(item))}
    reordered["zeta"] = {"a": [Decimal("2.5"), None], "b": 1}
    first, second = (IIKO_ADAPTER.products([record]).rows[0] for record in (item, reordered))
    assert first["extra"] == second["extra"]
    assert first == second
    text = first["extra"]
    assert " " not in text.replace("Ä", "")  # no separators with spaces
    assert '"alpha":"Ä"' in text  # non-ASCII kept, not \u-escaped
    keys = list(json.loads(text))
    assert keys == sorted(keys)


def test_extra_is_null_when_every_field_has_a_column():
    item = {key: value for key, value in _product().items() if key in {"id", "name", "parent", "type"}}
    [row] = IIKO_ADAPTER.products([item]).rows
    assert row["extra"] is None


@pytest.mark.parametrize(("change", "field"), [
    ({"parent": "группа-1"}, "parent"),
    ({"mainUnit": "not-a-guid"}, "mainUnit"),
    ({"defaultSalePrice": {"value": 10}}, "defaultSalePrice"),
    ({"unitWeight": Decimal("1.0000000001")}, "unitWeight"),  # 10 decimal places
    ({"unitCapacity": [1, 2]}, "unitCapacity"),
    ({"notInStoreMovement": "yes"}, "notInStoreMovement"),
    ({"containers": {"id": CONTAINER}}, "containers"),
    ({"barcodes": "4601234567890"}, "barcodes"),
    ({"code": True}, "code"),
])
def test_a_bad_value_is_an_error_naming_the_product_and_the_field(change, field):
    good_before = _product(id="c1ebbf72-0000-4000-8000-00000000f002", num="00001", name="Хлеб")
    bad = _product(**change)
    good_after = _product(id="c1ebbf72-0000-4000-8000-00000000f003", num="00003", name="Соль")
    batch = IIKO_ADAPTER.products([good_before, bad, good_after])
    assert [row["num"] for row in batch.rows] == ["00001", "00003"]  # the rest of the batch still maps
    [error] = batch.errors
    assert error.entity == "products"
    assert error.external_id == PRODUCT.lower()
    assert "00077" in error.record and "Сыр" in error.record and PRODUCT in error.record
    assert error.reason.startswith(field), error.reason


def test_ten_decimal_places_is_refused_not_rounded():
    [item] = _decoded([_product(defaultSalePrice=Decimal("10.1234567891"))])
    batch = IIKO_ADAPTER.products([item])
    assert batch.rows == []
    [error] = batch.errors
    assert "defaultSalePrice" in error.reason and "more than 9 decimal places" in error.reason


def test_a_product_without_id_is_named_by_its_number_and_name():
    item = _product(num="00999", name="Без id")
    del item["id"]
    batch = IIKO_ADAPTER.products([item, _product()])
    assert [row["external_id"] for row in batch.rows] == [PRODUCT.lower()]
    [error] = batch.errors
    assert error.external_id is None
    assert error.record == "product num 00999 'Без id' without id"
    assert error.reason == "id is missing"


def test_a_json_number_as_article_and_code_is_kept_as_text():
    [item] = _decoded([_product(num=12, code=Decimal("7"))])
    [row] = IIKO_ADAPTER.products([item]).rows
    assert (row["num"], row["code"]) == ("12", "7")


# ------------------------------------------------------------------ measure units and product groups


def test_measure_units_keep_units_and_skip_other_root_types():
    items = _decoded([
        {"id": UNIT.upper(), "rootType": "MeasureUnit", "deleted": False, "code": "кг", "name": "Килограмм",
         "shortName": "кг"},
        {"id": TAX, "rootType": "TaxCategory", "deleted": False, "code": "20", "name": "НДС 20%",
         "vatPercent": Decimal("20")},
        {"id": "6040d92d-e286-f4f9-a613-ed0e6fd241e2", "deleted": True, "code": "л", "name": "Литр"},
    ])
    batch = IIKO_ADAPTER.measure_units(items)
    assert batch.errors == []
    assert [row["external_id"] for row in batch.rows] == [UNIT, "6040d92d-e286-f4f9-a613-ed0e6fd241e2"]
    kg, litre = batch.rows
    assert (kg["code"], kg["name"], kg["is_deleted"]) == ("кг", "Килограмм", False)
    assert json.loads(kg["extra"]) == {"shortName": "кг"}  # rootType has no column but is not "extra"
    assert litre["is_deleted"] is True and litre["extra"] is None


def test_a_bad_measure_unit_is_an_error_naming_it():
    batch = IIKO_ADAPTER.measure_units(_decoded([
        {"id": "kg", "rootType": "MeasureUnit", "code": "кг", "name": "Килограмм"},
        {"id": UNIT, "rootType": "MeasureUnit", "code": "шт", "name": "Штука"}]))
    assert [row["name"] for row in batch.rows] == ["Штука"]
    [error] = batch.errors
    assert error.record == "measure unit code кг 'Килограмм' id kg"
    assert error.reason == "id 'kg' is not a GUID"


def test_product_groups_map_parent_and_extra():
    child = ProductGroup(id="9a2e0000-0000-4000-8000-000000000002", name="Молочные", num="0002", code="2",
                         parent_id=GROUP, description="Молоко и сыр", visibility_departments=("d1",))
    root = ProductGroup(id=GROUP, name="Продукты", num="0001", code=None, parent_id=None, deleted=True)
    batch = IIKO_ADAPTER.product_groups(list(iter_json_items(render.product_groups([root, child]))))
    assert batch.errors == []
    top, dairy = batch.rows
    assert set(dairy) == {"external_id", "is_deleted", "code", "name", "parent_external_id", "num", "description",
                          "extra"}
    assert (top["external_id"], top["parent_external_id"], top["is_deleted"], top["code"]) == (
        GROUP.lower(), None, True, None)
    assert (dairy["parent_external_id"], dairy["num"], dairy["description"]) == (GROUP.lower(), "0002",
                                                                                 "Молоко и сыр")
    extra = json.loads(dairy["extra"])
    assert extra["visibilityFilter"] == {"departments": ["d1"], "excluding": True}
    assert "parent" not in extra and "num" not in extra


def test_a_group_with_a_bad_parent_is_an_error_naming_it_and_the_field():
    groups = [{"id": GROUP, "name": "Продукты", "num": "0001", "parent": "root"},
              {"id": "9a2e0000-0000-4000-8000-000000000002", "name": "Молочные", "num": "0002", "parent": GROUP}]
    batch = IIKO_ADAPTER.product_groups(groups)
    assert [row["name"] for row in batch.rows] == ["Молочные"]
    [error] = batch.errors
    assert error.record == f"product group num 0001 'Продукты' id {GROUP}"
    assert error.reason == "parent 'root' is not a GUID"


# ------------------------------------------------------------------ employees (XML)

PERSONAL = {
    "phone": "+7 495 111-22-33", "cellPhone": "+7 916 444-55-66", "email": "ivanova@example.ru",
    "address": "Москва, ул. Тверская, д. 7", "cardNumber": "CARD-778899", "birthday": "1987-06-05T00:00:00+03:00",
    "taxpayerIdNumber": "771234567890", "note": "аллергия на орехи", "login": "ivanova.login",
}


def _employee_xml(*records: str) -> bytes:
    """An answer of `GET /resto/api/employees` shaped like iiko's (the suppliers' schema)."""
    return (render.XML_DECLARATION + "<employees>\n" + "".join(records) + "</employees>\n").encode()


def _record(**fields: str | list[str] | None) -> str:
    lines = []
    for tag, value in fields.items():
        for text in value if isinstance(value, list) else [value]:
            lines.append(f"        <{tag}/>\n" if text is None else f"        <{tag}>{text}</{tag}>\n")
    return "    <employee>\n" + "".join(lines) + "    </employee>\n"


def _employees(xml: bytes):
    return IIKO_ADAPTER.employees(list(iter_employees(xml)))


def test_employees_map_names_roles_departments_dates_and_flags():
    xml = _employee_xml(_record(
        id=EMPLOYEE, code="17", name="Иванова Мария Петровна", mainRoleId="6b000000-0000-4000-8000-000000000001",
        mainRoleCode="COOK", roleCodes=["COOK", "BAR", "WAITER"], firstName="Мария", middleName="Петровна",
        lastName="Иванова", hireDate="2019-03-01T00:00:00+03:00", fireDate="2023-11-30T00:00:00+03:00",
        departmentCodes=["001", "002"], deleted="false", supplier="false", employee="true", client="true",
        **PERSONAL))
    batch = _employees(xml)
    assert batch.errors == []
    [row] = batch.rows
    assert row == {
        "external_id": EMPLOYEE.lower(), "code": "17", "name": "Иванова Мария Петровна", "first_name": "Мария",
        "middle_name": "Петровна", "last_name": "Иванова", "main_role_code": "COOK",
        "role_codes": '["COOK","BAR","WAITER"]', "department_codes": '["001","002"]',
        "hire_date": date(2019, 3, 1), "fire_date": date(2023, 11, 30), "is_deleted": False,
        "is_employee": True, "is_supplier": False, "is_client": True,
    }


@pytest.mark.parametrize(("given", "expected"), [
    (["COOK", "BAR"], ["COOK", "BAR"]),  # repeated element -> array, in document order
    ("COOK", ["COOK"]),                   # once -> a one-element array
    (None, []),                           # <roleCodes/> -> empty
    ("absent", []),                       # not sent at all -> empty
])
def test_role_and_department_codes_are_json_arrays(given, expected):
    fields: dict[str, Any] = {"id": EMPLOYEE, "name": "Петров"}
    if given != "absent":
        fields["roleCodes"] = given
        fields["departmentCodes"] = given
    [row] = _employees(_employee_xml(_record(**fields))).rows
    assert json.loads(row["role_codes"]) == expected
    assert json.loads(row["department_codes"]) == expected
    assert row["role_codes"] == json.dumps(expected, separators=(",", ":"))


def test_absent_flags_are_unknown_not_false():
    [row] = _employees(_employee_xml(_record(id=EMPLOYEE, name="Петров"))).rows
    assert (row["is_employee"], row["is_supplier"], row["is_client"]) == (None, None, None)
    assert row["is_deleted"] is False  # iiko's own flag: absent means not deleted
    assert (row["hire_date"], row["fire_date"], row["main_role_code"]) == (None, None, None)


def test_no_personal_contact_data_anywhere_in_the_row():
    xml = _employee_xml(
        _record(id=EMPLOYEE, code="17", name="Иванова Мария", roleCodes=["COOK"], **PERSONAL),
        _record(id="5a000000-0000-4000-8000-000000000002", name="Сидоров", employee="true", **PERSONAL))
    records = list(iter_employees(xml))
    assert all(records[0][tag] == PERSONAL[tag] for tag in PERSONAL)  # the parser did see them
    batch = _employees(xml)
    assert len(batch.rows) == 2 and batch.errors == []
    for row in batch.rows:
        keys = {key.lower() for key in row}
        words = ("phone", "mail", "address", "card", "birth", "taxpayer", "note", "login", "snils", "pin")
        assert not [key for key in keys if any(word in key for word in words)]
        dumped = json.dumps(row, default=str, ensure_ascii=False)
        for tag, value in PERSONAL.items():
            assert value not in dumped, tag
            assert value.split("T")[0] not in dumped, tag  # not the birthday as a date either
    assert set(PERSONAL) <= EMPLOYEE_FIELDS_LEFT_OUT


def test_emulator_rendered_employees_keep_no_contact_data():
    staff = Employee(id=EMPLOYEE, code="17", name="Иванов Иван", first_name="Иван", middle_name=None,
                     last_name="Иванов", login="ivanov-login", main_role_id=None, main_role_code="COOK",
                     role_codes=("COOK",), department_codes=("001", "002"), hire_date=date(2019, 3, 1),
                     phone="+79991234567", cell_phone="+79997654321", email="ivanov@example.ru",
                     address="Москва", card_number="1234-5678", birthday=date(1990, 1, 2),
                     taxpayer_id="770000000001", note="заметка")
    xml = render.employees([staff], render.RenderOptions(date_offset="+03:00")).encode()
    [row] = _employees(xml).rows
    assert (row["hire_date"], row["role_codes"], row["department_codes"]) == (
        date(2019, 3, 1), '["COOK"]', '["001","002"]')
    assert (row["is_employee"], row["is_supplier"], row["is_client"]) == (True, False, False)
    dumped = json.dumps(row, default=str, ensure_ascii=False)
    for value in ("ivanov-login", "+79991234567", "+79997654321", "ivanov@example.ru", "1234-5678",
                  "1990-01-02", "770000000001", "заметка"):
        assert value not in dumped


def test_a_bad_employee_is_an_error_naming_it_and_the_rest_still_map():
    xml = _employee_xml(
        _record(id=EMPLOYEE, code="17", name="Иванова", hireDate="01/03/2019"),
        _record(code="18", name="Без id"),
        _record(id="5a000000-0000-4000-8000-000000000003", code="19", name="Петров", employee="maybe"),
        _record(id="5a000000-0000-4000-8000-000000000004", code="20", name="Сидоров"))
    batch = _employees(xml)
    assert [row["code"] for row in batch.rows] == ["20"]
    first, second, third = batch.errors
    assert first.record == f"employee code 17 'Иванова' id {EMPLOYEE}"
    assert first.reason.startswith("hireDate '01/03/2019'")
    assert (second.external_id, second.record, second.reason) == (None, "employee code 18 'Без id' without id",
                                                                  "id is missing")
    assert third.reason == "employee 'maybe' is not true/false"


def test_extra_keeps_decimals_of_up_to_15_significant_digits_exactly():
    """`canonical_json` writes JSON numbers through `float`, exact up to 15 significant digits (its documented
    assumption about iiko's JSON); these survive digit for digit."""
    values = {"a": Decimal("123.456789"), "b": Decimal("123456789.012345"), "c": Decimal("0.000000001"),
              "d": Decimal("-42"), "e": Decimal("1.50")}
    [row] = IIKO_ADAPTER.products(_decoded([_product(estimates=values)])).rows
    assert '"a":123.456789,' in row["extra"] and '"b":123456789.012345,' in row["extra"]
    kept = json.loads(row["extra"], parse_float=Decimal)["estimates"]
    assert kept == values
    assert '"d":-42,"e":1.5}' in row["extra"]  # one spelling per value: 1.50 and 1.5 compare equal as text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def test_a_nan_in_an_unknown_field_never_makes_extra_invalid_json():
    """BUG: a bare `NaN` / `Infinity` (not JSON, but some writers print it and the client's decoder accepts
    it) in a field without a column reaches `extra` as the non-JSON text `NaN`; PostgreSQL's JSONB refuses it
    and the whole products batch fails there (SQLite stores it). Either the client refuses the answer, or the
    adapter refuses that record (a RecordError naming the field), or `extra` holds valid JSON; the other
    products map either way."""
    body = (f'[{{"id":"{PRODUCT}","num":"00077","name":"Сыр","weird":NaN,"worse":-Infinity}},'
            f'{{"id":"c1ebbf72-0000-4000-8000-00000000f002","num":"00001","name":"Хлеб"}}]').encode()
    try:
        items = list(iter_json_items(body))
    except IikoResponseError:
        return  # the client refused an answer that is not JSON: acceptable
    batch = IIKO_ADAPTER.products(items)
    assert "Хлеб" in [row["name"] for row in batch.rows]
    for row in batch.rows:
        if row["extra"] is not None:
            json.loads(row["extra"], parse_constant=_refuse_constant)  # strict JSON, as JSONB reads it
    for error in batch.errors:
        assert "weird" in error.reason or "worse" in error.reason
