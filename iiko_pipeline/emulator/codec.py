"""Conversions between the truth records and JSON-able data, and input coercion.

Used by the control API (JSON in/out: decimals as strings, dates ISO) and by the `EmulatorState` Python
methods, which accept either Python values or the same strings the JSON API takes: coercion is
idempotent, so `Decimal("1.5")`, `"1.5"` and `1.5` all become `Decimal("1.5")`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .models import CORPORATE_TYPES, INVOICE_STATUSES, PRODUCT_TYPES, Container


def to_jsonable(obj: Any) -> Any:
    """Recursively turn dataclasses / Decimal / dates into JSON-friendly values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, list | tuple):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


class CoercionError(ValueError):
    """A control-API value that cannot be turned into the field's type (answered with 400)."""


def as_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise CoercionError(f"not a decimal: {value!r}")
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise CoercionError(f"not a decimal: {value!r}") from exc


def as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise CoercionError(f"not an ISO date-time: {value!r}") from exc
        return parsed.replace(tzinfo=None)
    raise CoercionError(f"not a date-time: {value!r}")


def as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).date() if "T" in value else date.fromisoformat(value)
        except ValueError as exc:
            raise CoercionError(f"not an ISO date: {value!r}") from exc
    raise CoercionError(f"not a date: {value!r}")


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise CoercionError(f"not a boolean: {value!r}")


def as_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CoercionError(f"not an id: {value!r}")
    return value.strip().lower()


def as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise CoercionError(f"not a string: {value!r}")
    return value


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise CoercionError(f"not an integer: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise CoercionError(f"not an integer: {value!r}") from exc


def _optional(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else fn(v)


def _status(value: Any) -> str:
    s = as_str(value).upper()
    if s not in INVOICE_STATUSES:
        raise CoercionError(f"status must be one of {INVOICE_STATUSES}, not {value!r}")
    return s


def _corporate_type(value: Any) -> str:
    s = as_str(value).upper()
    if s not in CORPORATE_TYPES:
        raise CoercionError(f"type must be one of {CORPORATE_TYPES}, not {value!r}")
    return s


INVOICE_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": as_id, "document_number": as_str, "date_incoming": as_datetime, "incoming_date": _optional(as_date),
    "incoming_document_number": _optional(as_str), "invoice_number": _optional(as_str),
    "supplier_id": as_id, "default_store_id": _optional(as_id), "due_date": _optional(as_datetime),
    "status": _status, "comment": _optional(as_str), "conception_id": _optional(as_id),
}
ITEM_FIELDS: dict[str, Callable[[Any], Any]] = {
    "num": as_int, "product_id": as_id, "product_article": _optional(as_str), "code": _optional(as_str),
    "amount": as_decimal, "actual_amount": as_decimal, "amount_unit": as_id, "price": as_decimal,
    "price_without_vat": as_decimal, "sum": as_decimal, "vat_percent": as_decimal, "vat_sum": as_decimal,
    "discount_sum": as_decimal, "store_id": _optional(as_id), "is_additional_expense": as_bool,
}
SUPPLIER_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": as_id, "code": _optional(as_str), "name": as_str, "deleted": as_bool, "is_supplier": as_bool,
    "is_employee": as_bool, "is_client": as_bool, "represents_store": as_bool,
    "represented_store_id": _optional(as_id), "taxpayer_id": _optional(as_str), "note": _optional(as_str),
}
CORPORATE_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": as_id, "parent_id": _optional(as_id), "code": _optional(as_str), "name": as_str,
    "type": _corporate_type, "taxpayer_id": _optional(as_str), "deleted": as_bool,
}



def _product_type(value: Any) -> str:
    s = as_str(value).upper()
    if s not in PRODUCT_TYPES:
        raise CoercionError(f"type must be one of {PRODUCT_TYPES}, not {value!r}")
    return s


def _str_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise CoercionError(f"not a list of strings: {value!r}")
    return tuple(as_str(v) for v in value)


def _id_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise CoercionError(f"not a list of ids: {value!r}")
    return tuple(as_id(v) for v in value)


def _rgb(value: Any) -> tuple[int, int, int]:
    if isinstance(value, Mapping):
        value = [value.get("red"), value.get("green"), value.get("blue")]
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple) or len(value) != 3:
        raise CoercionError(f"a colour is [red, green, blue] or {{red, green, blue}}, not {value!r}")
    r, g, b = (as_int(v) for v in value)
    return (r, g, b)


CONTAINER_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": as_id, "num": as_str, "name": as_str, "count": as_decimal, "container_weight": as_decimal,
    "deleted": as_bool,
}


def _containers(value: Any) -> tuple[Container, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise CoercionError(f"containers must be a list, not {value!r}")
    out: list[Container] = []
    for n, raw in enumerate(value):
        if isinstance(raw, Container):
            out.append(raw)
            continue
        data = coerce(raw, CONTAINER_FIELDS, "container")
        if "id" not in data:
            raise CoercionError("container: id is required")
        out.append(Container(id=data["id"], num=data.get("num", str(n + 1)), name=data.get("name", "Упаковка"),
                             count=data.get("count", Decimal(1)),
                             container_weight=data.get("container_weight", Decimal(0)),
                             deleted=data.get("deleted", False)))
    return tuple(out)


PRODUCT_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": as_id, "name": as_str, "num": as_str, "code": _optional(as_str), "type": _product_type,
    "main_unit_id": as_id, "parent_id": _optional(as_id), "deleted": as_bool, "description": _optional(as_str),
    "category_id": _optional(as_id), "accounting_category_id": _optional(as_id),
    "tax_category_id": _optional(as_id), "default_sale_price": as_decimal, "unit_weight": as_decimal,
    "unit_capacity": as_decimal, "not_in_store_movement": as_bool, "containers": _containers,
    "barcodes": _str_tuple, "color": _rgb, "font_color": _rgb, "front_font_size": as_int,
    "default_included_in_menu": as_bool,
}
GROUP_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": as_id, "name": as_str, "num": as_str, "code": _optional(as_str), "parent_id": _optional(as_id),
    "description": _optional(as_str), "deleted": as_bool, "visibility_departments": _optional(_id_tuple),
    "visibility_excluding": as_bool,
}
EMPLOYEE_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": as_id, "code": _optional(as_str), "name": as_str, "first_name": _optional(as_str),
    "middle_name": _optional(as_str), "last_name": _optional(as_str), "login": _optional(as_str),
    "main_role_id": _optional(as_id), "main_role_code": _optional(as_str), "role_codes": _str_tuple,
    "department_codes": _str_tuple, "hire_date": _optional(as_date), "fire_date": _optional(as_date),
    "deleted": as_bool, "is_supplier": as_bool, "is_employee": as_bool, "is_client": as_bool,
    "phone": _optional(as_str), "cell_phone": _optional(as_str), "email": _optional(as_str),
    "address": _optional(as_str), "card_number": _optional(as_str), "birthday": _optional(as_date),
    "taxpayer_id": _optional(as_str), "note": _optional(as_str),
}


def coerce(data: Mapping[str, Any], spec: Mapping[str, Callable[[Any], Any]], what: str,
           extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Validate keys against `spec` and convert each value; keys in `extra` pass through unchanged."""
    if not isinstance(data, Mapping):
        raise CoercionError(f"{what}: expected an object")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in extra:
            out[key] = value
        elif key in spec:
            out[key] = spec[key](value)
        else:
            raise CoercionError(f"{what}: unknown field {key!r}")
    return out
