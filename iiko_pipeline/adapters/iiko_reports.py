"""iiko's dated reports and shifts -> our rows: daily sales and their day totals (OLAP v2 SALES), stock balance
snapshots (`v2/reports/balance/stores`) and cash shifts (`v2/cashshifts/list`).

OLAP rows and balances carry no id. Each row's `external_id` is made from what identifies it, so a re-run of a day
lands on the same rows: the grouping values of a sales row (a digest: order and pay type names are free text), and
"<date>|<department>" or "<date>|<store>|<product>" where the parts are ids. Balances do not say their date either:
the frame step stamps each record with its answer's window (`WINDOW_KEY`), which for balances is one day.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from iiko_pipeline.adapters import values as v
from iiko_pipeline.adapters.base import AdaptedBatch, Row
from iiko_pipeline.adapters.records import adapt, shown
from iiko_pipeline.iiko import olap

#: Where the frame step puts the answer's window, `(date_from, date_to)` as ISO dates, in each record it adapts.
WINDOW_KEY = "@window"
_SHIFT_KEYS = frozenset({"id", "departmentId", "sessionNumber", "fiscalNumber", "openDate", "closeDate", "acceptDate",
                         "salesCash", "salesCard", "salesCredit", "payIn", "payOut", "cashDiff", "sessionStatus",
                         "pointOfSaleId", "pointOfSale"})


def _business_date(record: Mapping[str, Any]) -> date:
    day = v.local_date(v.json_text(record.get(olap.OPEN_DATE), field_name=olap.OPEN_DATE), field_name=olap.OPEN_DATE)
    if day is None:
        raise ValueError(f"{olap.OPEN_DATE} is missing")
    return day


def _department(record: Mapping[str, Any]) -> str:
    department = v.json_guid(record.get(olap.DEPARTMENT_ID), field_name=olap.DEPARTMENT_ID, required=True)
    assert department is not None
    return department


def _money(record: Mapping[str, Any], key: str) -> Any:
    return v.json_decimal(record.get(key), field_name=key)


def _sums(record: Mapping[str, Any]) -> dict[str, Any]:
    """iiko's `DishSumInt` is before discount and `DishDiscountSumInt` after it (the revenue): the discount is
    their difference."""
    before, after = _money(record, olap.DISH_SUM), _money(record, olap.DISH_DISCOUNT_SUM)
    discount = before - after if before is not None and after is not None else None
    return {"dish_sum": before, "revenue": after, "discount_sum": discount}


def _sales_key(values: Iterable[str | None]) -> str:
    """A stable id for an OLAP row from its grouping values (lower-case hex: iiko ids are stored lower-case)."""
    return hashlib.sha256("\x1f".join(x or "" for x in values).encode()).hexdigest()


def _describe_olap(record: Mapping[str, Any]) -> str:
    return (f"sales row of department {shown(record.get(olap.DEPARTMENT_ID))}, business day "
            f"{shown(record.get(olap.OPEN_DATE))}, dish {shown(record.get(olap.DISH_ID))}")


class IikoReportsAdapter:
    """Sales, day totals, balances and shifts; mixed into `IikoAdapter`."""

    def sales_daily(self, records: Iterable[Mapping[str, Any]]) -> AdaptedBatch:
        """One row per (department, business day, dish, order type, pay types): the detailed SALES query."""
        def build(record: Mapping[str, Any]) -> tuple[Row, list[Row]]:
            department, day = _department(record), _business_date(record)
            dish = v.json_guid(record.get(olap.DISH_ID), field_name=olap.DISH_ID)
            order_type = v.json_text(record.get(olap.ORDER_TYPE), field_name=olap.ORDER_TYPE)
            pay_types = v.json_text(record.get(olap.PAY_TYPES), field_name=olap.PAY_TYPES)
            return {
                "external_id": _sales_key((department, day.isoformat(), dish, order_type, pay_types)),
                "restaurant_external_id": department,
                "business_date": day,
                "dish_external_id": dish,
                "order_type": order_type,
                "pay_types": pay_types,
                "dish_amount": _money(record, olap.DISH_AMOUNT),
                **_sums(record),
                "cost": _money(record, olap.PRODUCT_COST),
            }, []

        return adapt("sales_daily", records, build, _describe_olap)

    def sales_day_totals(self, records: Iterable[Mapping[str, Any]]) -> AdaptedBatch:
        """One row per (department, business day): unique orders and the sums the detailed rows add up to."""
        def build(record: Mapping[str, Any]) -> tuple[Row, list[Row]]:
            department, day = _department(record), _business_date(record)
            orders = v.json_decimal(record.get(olap.ORDERS_COUNT), field_name=olap.ORDERS_COUNT)
            if orders is not None and orders != orders.to_integral_value():
                raise ValueError(f"{olap.ORDERS_COUNT} {orders} is not a whole number of orders")
            return {
                "external_id": f"{day.isoformat()}|{department}",
                "restaurant_external_id": department,
                "business_date": day,
                "orders": int(orders) if orders is not None else None,
                **_sums(record),
            }, []

        return adapt("sales_day_totals", records, build,
                     lambda r: f"day total of department {shown(r.get(olap.DEPARTMENT_ID))}, business day "
                               f"{shown(r.get(olap.OPEN_DATE))}")

    def stock_balances(self, records: Iterable[Mapping[str, Any]]) -> AdaptedBatch:
        """A snapshot at the end of the window's day: one row per store and product iiko holds a balance for."""
        def build(record: Mapping[str, Any]) -> tuple[Row, list[Row]]:
            window = record.get(WINDOW_KEY)
            if not window:
                raise ValueError("the snapshot's date is unknown (the record carries no window)")
            day = date.fromisoformat(window[1])
            store = v.json_guid(record.get("store"), field_name="store", required=True)
            product = v.json_guid(record.get("product"), field_name="product", required=True)
            return {
                "external_id": f"{day.isoformat()}|{store}|{product}",
                "snapshot_date": day,
                "store_external_id": store,
                "product_external_id": product,
                "amount": _money(record, "amount"),
                "sum": _money(record, "sum"),
            }, []

        return adapt("stock_balances", records, build,
                     lambda r: f"balance of product {shown(r.get('product'))} in store {shown(r.get('store'))}")

    def cash_shifts(self, records: Iterable[Mapping[str, Any]]) -> AdaptedBatch:
        """Shifts by id; times as iiko prints them (local), `open_day` from the opening time for the windows."""
        def build(record: Mapping[str, Any]) -> tuple[Row, list[Row]]:
            opened, _ = v.local_datetime(v.json_text(record.get("openDate"), field_name="openDate"),
                                         field_name="openDate")
            if opened is None:
                raise ValueError("openDate is missing")

            def moment(key: str) -> Any:
                return v.local_datetime(v.json_text(record.get(key), field_name=key), field_name=key)[0]

            number = v.json_text(record.get("sessionNumber"), field_name="sessionNumber")
            point = record.get("pointOfSaleId", record.get("pointOfSale"))
            if isinstance(point, dict):  # some versions nest the point of sale as {id, name}
                point = point.get("name") or point.get("id")
            rest = {k: val for k, val in record.items() if k not in _SHIFT_KEYS and k != WINDOW_KEY}
            return {
                "external_id": v.json_guid(record.get("id"), field_name="id", required=True),
                "restaurant_external_id": v.json_guid(record.get("departmentId"), field_name="departmentId"),
                "session_number": v.integer(number, field_name="sessionNumber"),
                "fiscal_number": v.json_text(record.get("fiscalNumber"), field_name="fiscalNumber"),
                "open_date": opened,
                "open_day": opened.date(),
                "close_date": moment("closeDate"),
                "accept_date": moment("acceptDate"),
                "sales_cash": _money(record, "salesCash"),
                "sales_card": _money(record, "salesCard"),
                "sales_credit": _money(record, "salesCredit"),
                "pay_in": _money(record, "payIn"),
                "pay_out": _money(record, "payOut"),
                "cash_diff": _money(record, "cashDiff"),
                "status": v.json_text(record.get("sessionStatus"), field_name="sessionStatus"),
                "point_of_sale": v.json_text(point, field_name="pointOfSale"),
                "extra": v.canonical_json(rest) if rest else None,
            }, []

        return adapt("cash_shifts", records, build,
                     lambda r: f"cash shift {shown(r.get('sessionNumber'))} opened {shown(r.get('openDate'))} "
                               f"id {shown(r.get('id'))}")
