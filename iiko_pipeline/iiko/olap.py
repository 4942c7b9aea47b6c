"""The fixed OLAP v2 SALES request bodies we send, and the names of their fields (pure functions, no I/O).

Why fixed bodies and not iiko's saved presets: presets change format on server upgrades (iiko's docs say so), and
a body we own is reproducible and reviewable. Why these choices (docs `olap-otchety-v2`, `ogranicheniya-i-
rekomendatsii`; see docs/iiko-more-entities.md, "OLAP v2"):

* `buildSummary: false`: summaries are not needed and can hang a large chain's server (before 9.1.2 the default
  is true, so it is always sent).
* A `DateRange` filter on `OpenDate.Typed` (mandatory since 5.5): the *business day of the cash shift*, not the
  calendar date of the order (an order opened after midnight in a shift left open belongs to the day before).
  The range is half-open: `from` = the first day at 00:00, `to` = the day after the last at 00:00,
  `includeHigh: false`, so a window of inclusive dates `[date_from, date_to]` is exactly those business days.
* `DeletedWithWriteoff` and `OrderDeleted` = `NOT_DELETED`: deleted orders and deleted dishes are not sales.
* At most 7 grouping fields (the docs' recommendation). Rows carry no id: a row is identified by its grouping
  values (`SALES_DETAIL_GROUPS`), and orders are counted in a separate totals query (`UniqOrderId.OrdersCount`),
  never by summing detail rows (one order spans several rows).

Meaning of the numbers: `DishSumInt` is the sum before discount, `DishDiscountSumInt` the sum after it (the
revenue), `DishAmountInt` the number of portions, `ProductCostBase.ProductCost` the cost of the goods.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from .windows import as_date

#: The report type we read.
SALES = "SALES"

# Grouping fields
DEPARTMENT_ID = "Department.Id"
OPEN_DATE = "OpenDate.Typed"  # the business day, answered as "2025-03-18T00:00:00"
DISH_ID = "DishId"
ORDER_TYPE = "OrderType"
PAY_TYPES = "PayTypes"

# Aggregate fields
DISH_AMOUNT = "DishAmountInt"
DISH_SUM = "DishSumInt"
DISH_DISCOUNT_SUM = "DishDiscountSumInt"
PRODUCT_COST = "ProductCostBase.ProductCost"
ORDERS_COUNT = "UniqOrderId.OrdersCount"

# Filter fields and the value that keeps live sales only
DELETED_WITH_WRITEOFF = "DeletedWithWriteoff"
ORDER_DELETED = "OrderDeleted"
NOT_DELETED = "NOT_DELETED"

SALES_DETAIL_GROUPS: tuple[str, ...] = (DEPARTMENT_ID, OPEN_DATE, DISH_ID, ORDER_TYPE, PAY_TYPES)
SALES_DETAIL_AGGREGATES: tuple[str, ...] = (DISH_AMOUNT, DISH_SUM, DISH_DISCOUNT_SUM, PRODUCT_COST)
SALES_TOTALS_GROUPS: tuple[str, ...] = (DEPARTMENT_ID, OPEN_DATE)
SALES_TOTALS_AGGREGATES: tuple[str, ...] = (ORDERS_COUNT, DISH_SUM, DISH_DISCOUNT_SUM)

#: `yyyy-MM-dd'T'HH:mm:ss.SSS`, the documented format of DateRange bounds.
DATE_RANGE_FORMAT = "%Y-%m-%dT%H:%M:%S.000"


def _bounds(date_from: date, date_to: date) -> tuple[date, date]:
    start, end = as_date(date_from), as_date(date_to)
    if start > end:
        raise ValueError(f"date_from {start.isoformat()} is after date_to {end.isoformat()}")
    return start, end


def business_days_filter(date_from: date, date_to: date) -> dict[str, Any]:
    """The half-open `OpenDate.Typed` DateRange covering the business days `[date_from, date_to]` (inclusive)."""
    start, end = _bounds(date_from, date_to)
    return {"filterType": "DateRange", "periodType": "CUSTOM",
            "from": datetime(start.year, start.month, start.day).strftime(DATE_RANGE_FORMAT),
            "to": datetime.combine(end + timedelta(days=1), datetime.min.time()).strftime(DATE_RANGE_FORMAT),
            "includeLow": True, "includeHigh": False}


def live_sales_filters(date_from: date, date_to: date) -> dict[str, Any]:
    """The filters of both requests: the business days, and no deleted orders or dishes."""
    return {
        OPEN_DATE: business_days_filter(date_from, date_to),
        DELETED_WITH_WRITEOFF: {"filterType": "IncludeValues", "values": [NOT_DELETED]},
        ORDER_DELETED: {"filterType": "IncludeValues", "values": [NOT_DELETED]},
    }


def _request(groups: tuple[str, ...], aggregates: tuple[str, ...], date_from: date, date_to: date) -> dict[str, Any]:
    return {"reportType": SALES, "buildSummary": False, "groupByRowFields": list(groups), "groupByColFields": [],
            "aggregateFields": list(aggregates), "filters": live_sales_filters(date_from, date_to)}


def sales_detail_request(date_from: date, date_to: date) -> dict[str, Any]:
    """Daily sales per restaurant, business day, dish, order type and pay type (amount, sums, cost)."""
    return _request(SALES_DETAIL_GROUPS, SALES_DETAIL_AGGREGATES, date_from, date_to)


def sales_totals_request(date_from: date, date_to: date) -> dict[str, Any]:
    """Per restaurant and business day: the number of orders and the sums (to check the detail against)."""
    return _request(SALES_TOTALS_GROUPS, SALES_TOTALS_AGGREGATES, date_from, date_to)


def open_date(value: str) -> date:
    """The business day of an `OpenDate.Typed` value (`"2025-03-18T00:00:00"`, or a bare `"2025-03-18"`)."""
    if not isinstance(value, str) or len(value) < 10:
        raise ValueError(f"not an OpenDate.Typed value: {value!r}")
    return date.fromisoformat(value[:10])
