"""iiko's reference data beyond the brief's three dimensions: products, product groups, measure units (the v2
JSON lists) and employees (XML in the suppliers' schema).

JSON items are dicts as the client decoded them (numbers exact, as `Decimal` or `int`). Every field without a
column of its own goes, unchanged, into `extra` (canonical JSON text): a field iiko adds tomorrow is kept and never
fails the sync; the `fields_as_documented` check warns about it. Employees deliberately keep no personal
contact data (see `EMPLOYEE_FIELDS_LEFT_OUT`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from iiko_pipeline.adapters import values as v
from iiko_pipeline.adapters.base import AdaptedBatch, Row
from iiko_pipeline.adapters.records import adapt, describe, name

#: The product types iiko documents; another value is kept as sent.
PRODUCT_TYPES = frozenset({"GOODS", "DISH", "PREPARED", "SERVICE", "MODIFIER", "OUTER", "RATE"})
#: Keys of a v2 list item that have a column of their own (everything else goes to `extra`).
_COMMON_KEYS = frozenset({"id", "deleted", "code", "name"})
_GROUP_KEYS = _COMMON_KEYS | {"num", "description", "parent"}
_PRODUCT_KEYS = _GROUP_KEYS | {"type", "mainUnit", "category", "accountingCategory", "taxCategory",
                               "defaultSalePrice", "unitWeight", "unitCapacity", "notInStoreMovement",
                               "containers", "barcodes"}
_UNIT_KEYS = _COMMON_KEYS | {"rootType"}
#: Personal data on an employee card that the warehouse does not keep (the raw answer has it, nothing else): the
#: platform needs who did what, under which role and department, not how to reach them. Stored on purpose:
#: id, code, name and its parts, main role and role codes, department codes, hire and fire dates, flags.
EMPLOYEE_FIELDS_LEFT_OUT = frozenset({"phone", "cellPhone", "email", "address", "cardNumber", "birthday",
                                      "taxpayerIdNumber", "note", "login", "snils", "pinCode"})


def extra_fields(record: Mapping[str, Any], mapped: frozenset[str]) -> str | None:
    """The fields without a column, as canonical JSON (None when there are none)."""
    rest = {k: val for k, val in record.items() if k not in mapped}
    if not rest:
        return None
    try:
        return v.canonical_json(rest)
    except ValueError:  # name the field (rare: find it only now)
        for key, value in rest.items():
            try:
                v.canonical_json(value)
            except ValueError as exc:
                raise ValueError(f"{key} (kept in extra) {exc}") from None
        raise


def _json_list(record: Mapping[str, Any], key: str) -> str | None:
    """An array field as canonical JSON; None when the key is absent (an older server), [] when empty."""
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"{key} is not a JSON array")
    try:
        return v.canonical_json(value)
    except ValueError as exc:
        raise ValueError(f"{key} {exc}") from None


#: Column -> the JSON field it is read from, per list: a column whose field no item of an answer carries (a newer
#: iiko renamed or dropped it, an older one never had it) is left out of every row, so the stored values stay
#: (the upsert only writes the columns a batch has) instead of being overwritten with NULL; the
#: `fields_as_documented` check warns. A field present but null does write NULL.
_COMMON_SOURCES = {"is_deleted": "deleted", "code": "code", "name": "name"}
_GROUP_SOURCES = {**_COMMON_SOURCES, "parent_external_id": "parent", "num": "num", "description": "description"}
_PRODUCT_SOURCES = {**_COMMON_SOURCES, "group_external_id": "parent", "main_unit_external_id": "mainUnit",
                    "num": "num", "description": "description", "product_type": "type",
                    "category_external_id": "category", "accounting_category_external_id": "accountingCategory",
                    "tax_category_external_id": "taxCategory", "default_sale_price": "defaultSalePrice",
                    "unit_weight": "unitWeight", "unit_capacity": "unitCapacity",
                    "not_in_store_movement": "notInStoreMovement", "containers": "containers",
                    "barcodes": "barcodes"}


def adapt_list(entity: str, records: Iterable[Mapping[str, Any]],
               build: Callable[[Mapping[str, Any]], tuple[Row, list[Row]] | None],
               describe_record: Callable[[Mapping[str, Any]], str], sources: Mapping[str, str]) -> AdaptedBatch:
    """`records.adapt` over a whole v2 list answer, then the columns whose field no item carried are dropped
    from every row (see `_COMMON_SOURCES`)."""
    seen: set[str] = set()

    def noting() -> Iterator[Mapping[str, Any]]:
        for record in records:
            seen.update(record.keys())
            yield record

    batch = adapt(entity, noting(), build, describe_record)
    absent = [column for column, key in sources.items() if key not in seen]
    if seen and absent:
        for row in batch.rows:
            for column in absent:
                row.pop(column, None)
    return batch


def _reference_row(record: Mapping[str, Any]) -> Row:
    """The columns every v2 list item fills."""
    return {
        "external_id": v.json_guid(record.get("id"), field_name="id", required=True),
        "is_deleted": bool(v.json_boolean(record.get("deleted"), field_name="deleted")),
        "code": v.json_text(record.get("code"), field_name="code"),
        "name": v.json_text(record.get("name"), field_name="name"),
    }


def _codes(value: Any) -> str:
    """A repeated XML element (no wrapper) as a JSON array of its texts: absent -> [], once -> [text]."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    return v.canonical_json([t for t in (v.text(i) if isinstance(i, str) else None for i in items) if t])


class IikoReferenceAdapter:
    """Products, groups, units and employees; mixed into `IikoAdapter`."""

    def measure_units(self, records: Iterable[Mapping[str, Any]]) -> AdaptedBatch:
        """`v2/entities/list?rootType=MeasureUnit`: an item of another root type is not a unit (skipped)."""
        def build(record: Mapping[str, Any]) -> tuple[Row, list[Row]] | None:
            root = v.json_text(record.get("rootType"), field_name="rootType")
            if root is not None and root != "MeasureUnit":
                return None
            return {**_reference_row(record), "extra": extra_fields(record, _UNIT_KEYS)}, []

        return adapt_list("measure_units", records, build, lambda r: f"measure unit {describe(r)}",
                          _COMMON_SOURCES)

    def product_groups(self, records: Iterable[Mapping[str, Any]]) -> AdaptedBatch:
        def build(record: Mapping[str, Any]) -> tuple[Row, list[Row]]:
            return {
                **_reference_row(record),
                "parent_external_id": v.json_guid(record.get("parent"), field_name="parent"),
                "num": v.json_text(record.get("num"), field_name="num"),
                "description": v.json_text(record.get("description"), field_name="description"),
                "extra": extra_fields(record, _GROUP_KEYS),
            }, []

        return adapt_list("product_groups", records, build,
                          lambda r: f"product group {describe(r, number_key='num')}", _GROUP_SOURCES)

    def products(self, records: Iterable[Mapping[str, Any]]) -> AdaptedBatch:
        """Every product type (goods, dishes, modifiers, services...), deleted ones flagged."""
        def build(record: Mapping[str, Any]) -> tuple[Row, list[Row]]:
            kind = v.json_text(record.get("type"), field_name="type")
            return {
                **_reference_row(record),
                "group_external_id": v.json_guid(record.get("parent"), field_name="parent"),
                "main_unit_external_id": v.json_guid(record.get("mainUnit"), field_name="mainUnit"),
                "num": v.json_text(record.get("num"), field_name="num"),
                "description": v.json_text(record.get("description"), field_name="description"),
                "product_type": kind.upper() if kind else None,
                "category_external_id": v.json_guid(record.get("category"), field_name="category"),
                "accounting_category_external_id": v.json_guid(record.get("accountingCategory"),
                                                               field_name="accountingCategory"),
                "tax_category_external_id": v.json_guid(record.get("taxCategory"), field_name="taxCategory"),
                "default_sale_price": v.json_decimal(record.get("defaultSalePrice"), field_name="defaultSalePrice"),
                "unit_weight": v.json_decimal(record.get("unitWeight"), field_name="unitWeight"),
                "unit_capacity": v.json_decimal(record.get("unitCapacity"), field_name="unitCapacity"),
                "not_in_store_movement": v.json_boolean(record.get("notInStoreMovement"),
                                                        field_name="notInStoreMovement", default=None),
                "containers": _json_list(record, "containers"),
                "barcodes": _json_list(record, "barcodes"),
                "extra": extra_fields(record, _PRODUCT_KEYS),
            }, []

        return adapt_list("products", records, build, lambda r: f"product {describe(r, number_key='num')}",
                          _PRODUCT_SOURCES)

    def employees(self, records: Iterable[Mapping[str, Any]]) -> AdaptedBatch:
        """Staff cards, system accounts and dismissed staff included (iiko's list has them); no contact data."""
        def flag(record: Mapping[str, Any], tag: str) -> bool | None:
            return v.boolean(record.get(tag), field_name=tag, default=None)

        def build(record: Mapping[str, Any]) -> tuple[Row, list[Row]]:
            return {
                "external_id": v.guid(record.get("id"), required=True),
                "code": v.text(record.get("code")),
                "name": name(record),
                "first_name": v.text(record.get("firstName")),
                "middle_name": v.text(record.get("middleName")),
                "last_name": v.text(record.get("lastName")),
                "main_role_code": v.text(record.get("mainRoleCode")),
                "role_codes": _codes(record.get("roleCodes")),
                "department_codes": _codes(record.get("departmentCodes")),
                "hire_date": v.local_date(record.get("hireDate"), field_name="hireDate"),
                "fire_date": v.local_date(record.get("fireDate"), field_name="fireDate"),
                "is_deleted": bool(v.boolean(record.get("deleted"), field_name="deleted")),
                "is_employee": flag(record, "employee"),
                "is_supplier": flag(record, "supplier"),
                "is_client": flag(record, "client"),
            }, []

        return adapt("employees", records, build, lambda r: f"employee {describe(r)}")
