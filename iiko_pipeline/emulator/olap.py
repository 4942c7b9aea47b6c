"""The OLAP v2 SALES report over the generated orders (issue 15): `POST v2/reports/olap` and
`GET v2/reports/olap/columns`.

Faithful to iiko's documentation (`olap-otchety-v2`, `ogranicheniya-i-rekomendatsii`,
`formirovanie-olap-otcheta-v-api`):

* Request `{"reportType", "buildSummary", "groupByRowFields", "groupByColFields", "aggregateFields", "filters"}`;
  every field must exist in the catalogue and allow what it is used for (grouping, aggregation, filtering).
* Filters: `IncludeValues` / `ExcludeValues` (ENUM, STRING, ID fields), `Range` (INTEGER, PERCENT, AMOUNT, MONEY;
  `includeLow` default true, `includeHigh` default false), `DateRange` (DATE, DATETIME) with `periodType` CUSTOM
  (`from`/`to` as `yyyy-MM-dd'T'HH:mm:ss.SSS`, `yyyy-MM-dd'T'HH:mm:ss` or `yyyy-MM-dd`; half-open by default) or
  one of the documented relative periods (TODAY, YESTERDAY, CURRENT_WEEK, ...; `from` must still be sent).
* From 5.5 every request must carry a date filter; `buildSummary` defaults to true before 9.1.2, false after.
  The docs only *recommend* at most 7 grouping fields, so no limit is enforced.
* Answer `{"data": [...], "summary": [...]}`: one row per distinct combination of the grouping fields, keys in
  alphabetical order (as iiko's own examples print them), rows ordered by the grouping values; the summary is
  the grand total (`[{}, {...}]`) then subtotals by every prefix of `groupByRowFields`. Rows carry no id.
* `OpenDate.Typed` is the business day of the cash shift (`"2025-03-18T00:00:00"`); `OpenDate` is the legacy field
  (`"2025.03.18"`, deprecated, so not listed by `columns`, yet still accepted). `DishDiscountSumInt` is the sum
  after discount, `DishSumInt` before it, `DiscountSum` the difference. Money and amounts are JSON numbers.

Every refusal is a `text/plain` 400; the exact wording of iiko's own texts is not documented, so these texts
are the emulator's (see README).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from .models import CorporateItem
from .sales import DELETED, NOT_DELETED, Order, Sales, java_datetime
from .stock import number

REPORT_TYPES = ("SALES", "TRANSACTIONS", "DELIVERIES")
PERIOD_TYPES = ("CUSTOM", "OPEN_PERIOD", "TODAY", "YESTERDAY", "CURRENT_WEEK", "CURRENT_MONTH", "CURRENT_YEAR",
                "LAST_WEEK", "LAST_MONTH", "LAST_YEAR")
VALUE_TYPES = frozenset({"ENUM", "STRING", "ID"})
RANGE_TYPES = frozenset({"INTEGER", "PERCENT", "AMOUNT", "MONEY"})
DATE_TYPES = frozenset({"DATE", "DATETIME"})
DATE_FILTER_SINCE = (5, 5)
SUMMARY_DEFAULT_FALSE_SINCE = (9, 1, 2)

DATE_FILTER_REQUIRED = ("Date filter is required: since iiko 5.5 every OLAP request must have a DateRange filter "
                        "(OpenDate.Typed for SALES)")


class OlapError(Exception):
    """A refused request: `status` and the `text/plain` body."""

    def __init__(self, text: str, status: int = 400) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True)
class Field:
    name: str
    title: str
    type: str
    group: bool
    aggregate: bool
    filter: bool
    tags: tuple[str, ...]
    level: str  # "order" | "line": where the value comes from
    listed: bool = True  # deprecated fields work but are not listed by `columns`


_O, _L = "order", "line"
FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("Department", "Торговое предприятие", "STRING", True, False, True, ("Организация",), _O),
    Field("Department.Id", "Торговое предприятие.ID", "ID", True, False, True, ("Организация",), _O),
    Field("Department.Code", "Код торгового предприятия", "STRING", True, False, True, ("Организация",), _O),
    Field("OpenDate.Typed", "Учетный день", "DATE", True, False, True, ("Дата и время",), _O),
    Field("OpenDate", "Учетный день", "DATE", True, False, True, ("Дата и время",), _O, listed=False),
    Field("OpenTime", "Время открытия", "DATETIME", True, False, True, ("Дата и время",), _O),
    Field("CloseTime", "Время закрытия", "DATETIME", True, False, True, ("Дата и время",), _O),
    Field("SessionNum", "Номер кассовой смены", "INTEGER", True, False, True, ("Кассовая смена",), _O),
    Field("OrderNum", "Номер заказа", "INTEGER", True, False, True, ("Заказ",), _O),
    Field("UniqOrderId", "Уникальный заказ", "ID", True, True, False, ("Заказ",), _O),
    Field("UniqOrderId.OrdersCount", "Заказов", "INTEGER", False, True, False, ("Заказ",), _O),
    Field("OrderType", "Тип заказа", "STRING", True, False, True, ("Заказ",), _O),
    Field("PayTypes", "Тип оплаты", "STRING", True, False, True, ("Оплата",), _O),
    Field("OrderDeleted", "Заказ удален", "ENUM", True, False, True, ("Заказ",), _O),
    Field("DeletedWithWriteoff", "Блюдо удалено", "ENUM", True, False, True, ("Блюдо",), _L),
    Field("DishId", "ID блюда", "ID", True, False, True, ("Блюдо",), _L),
    Field("DishName", "Блюдо", "STRING", True, False, True, ("Блюдо",), _L),
    Field("DishCode", "Код блюда", "STRING", True, False, True, ("Блюдо",), _L),
    Field("DishAmountInt", "Количество блюд", "AMOUNT", False, True, True, ("Блюдо",), _L),
    Field("DishSumInt", "Сумма без скидки, р.", "MONEY", False, True, True, ("Оплата",), _L),
    Field("DishDiscountSumInt", "Сумма со скидкой, р.", "MONEY", False, True, True, ("Оплата",), _L),
    Field("DiscountSum", "Сумма скидки, р.", "MONEY", False, True, True, ("Скидки",), _L),
    Field("ProductCostBase.ProductCost", "Себестоимость, р.", "MONEY", False, True, False, ("Себестоимость",), _L),
)}
#: Aggregates that count distinct orders instead of summing lines.
COUNT_FIELDS = frozenset({"UniqOrderId", "UniqOrderId.OrdersCount"})
#: Line values of the aggregates: (portions, sum, discount, cost) -> integer, and how many decimals it has.
_LINE_AGGREGATES: dict[str, tuple[Callable[[tuple[int, int, int, int, int, str]], int], int]] = {
    "DishAmountInt": (lambda ln: ln[1], 0),
    "DishSumInt": (lambda ln: ln[2], 2),
    "DishDiscountSumInt": (lambda ln: ln[2] - ln[3], 2),
    "DiscountSum": (lambda ln: ln[3], 2),
    "ProductCostBase.ProductCost": (lambda ln: ln[4], 2),
}


def columns(report_type: str) -> dict[str, dict[str, Any]]:
    """The `olap/columns` answer for SALES: `{FieldName: {name, type, aggregationAllowed, groupingAllowed,
    filteringAllowed, tags}}` (deprecated fields left out)."""
    return {f.name: {"name": f.title, "type": f.type, "aggregationAllowed": f.aggregate,
                     "groupingAllowed": f.group, "filteringAllowed": f.filter, "tags": list(f.tags)}
            for f in FIELDS.values() if f.listed}


# ------------------------------------------------------------------ request parsing

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?$")


def parse_datetime(value: Any) -> datetime:
    """`yyyy-MM-dd'T'HH:mm:ss.SSS` (the documented format), without milliseconds, or `yyyy-MM-dd`."""
    if isinstance(value, str) and (_DATE_ONLY.match(value) or _DATE_TIME.match(value)):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise OlapError(f"Wrong date format: {value}")


def _flag(value: Any, default: bool, name: str) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise OlapError(f"Wrong request body: {name} must be true or false, not {value!r}")


def _month_start(day: date, months_back: int = 0) -> date:
    month = day.month - 1 - months_back
    return date(day.year + month // 12, month % 12 + 1, 1)


def period_bounds(period: str, today: date) -> tuple[datetime, datetime]:
    """[from, to) of a relative period type (OPEN_PERIOD is taken as the current month)."""
    def at(day: date) -> datetime:
        return datetime(day.year, day.month, day.day)

    monday = today - timedelta(days=today.weekday())
    if period == "TODAY":
        return at(today), at(today + timedelta(days=1))
    if period == "YESTERDAY":
        return at(today - timedelta(days=1)), at(today)
    if period == "CURRENT_WEEK":
        return at(monday), at(monday + timedelta(days=7))
    if period == "LAST_WEEK":
        return at(monday - timedelta(days=7)), at(monday)
    if period in ("CURRENT_MONTH", "OPEN_PERIOD"):
        return at(_month_start(today)), at(_month_start(today, -1))
    if period == "LAST_MONTH":
        return at(_month_start(today, 1)), at(_month_start(today))
    if period == "CURRENT_YEAR":
        return datetime(today.year, 1, 1), datetime(today.year + 1, 1, 1)
    if period == "LAST_YEAR":
        return datetime(today.year - 1, 1, 1), datetime(today.year, 1, 1)
    raise OlapError(f"Unknown period type: {period}")


@dataclass(frozen=True)
class DateBounds:
    low: datetime
    high: datetime
    include_low: bool
    include_high: bool

    def test(self, value: datetime) -> bool:
        if value < self.low or (value == self.low and not self.include_low):
            return False
        return value < self.high or (value == self.high and self.include_high)


def _decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise OlapError(f"Wrong request body: the Range filter of {field} needs numbers, not {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise OlapError(f"Wrong request body: the Range filter of {field} needs numbers, not {value!r}") from None


@dataclass
class Request:
    rows: list[str]
    cols: list[str]
    aggregates: list[str]
    filters: list[tuple[Field, Callable[[Any], bool]]]
    date_bounds: list[tuple[Field, DateBounds]]
    summary: bool
    window: tuple[str, str] | None  # the OpenDate.Typed filter's from/to as sent (for the request log)


def _field_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OlapError(f"Wrong request body: {key} must be a list of field names")
    return list(value)


def _known(name: str) -> Field:
    field = FIELDS.get(name)
    if field is None:
        raise OlapError(f"Unknown OLAP field: {name} (report type SALES)")
    return field


def parse_request(body: Any, version: tuple[int, ...], today: date) -> Request:
    """Validate the JSON body the way the docs describe; `OlapError` (400) otherwise."""
    if not isinstance(body, dict):
        raise OlapError("Wrong request body: expected a JSON object")
    report = body.get("reportType")
    if report not in REPORT_TYPES:
        raise OlapError(f"Unknown report type: {report}")
    if report != "SALES":
        raise OlapError(f"Report type {report} is not served by this emulator: only SALES")
    rows, cols = _field_list(body, "groupByRowFields"), _field_list(body, "groupByColFields")
    aggregates = _field_list(body, "aggregateFields")
    for name in rows + cols:
        if not _known(name).group:
            raise OlapError(f"Field {name} cannot be used for grouping")
    for name in aggregates:
        if not _known(name).aggregate:
            raise OlapError(f"Field {name} cannot be used for aggregation")
    filters_raw = body.get("filters")
    if filters_raw is None:
        filters_raw = {}
    if not isinstance(filters_raw, dict):
        raise OlapError("Wrong request body: filters must be an object of FieldName: filter")
    filters: list[tuple[Field, Callable[[Any], bool]]] = []
    bounds: list[tuple[Field, DateBounds]] = []
    window: tuple[str, str] | None = None
    for name, spec in filters_raw.items():
        field = _known(name)
        if not field.filter:
            raise OlapError(f"Field {name} cannot be used for filtering")
        if not isinstance(spec, dict):
            raise OlapError(f"Wrong request body: the filter of {name} must be an object")
        kind = spec.get("filterType")
        if kind in ("IncludeValues", "ExcludeValues"):
            if field.type not in VALUE_TYPES:
                raise OlapError(f"Filter type {kind} is not applicable to field {name} ({field.type})")
            values = spec.get("values")
            if not isinstance(values, list):
                raise OlapError(f"Wrong request body: the {kind} filter of {name} needs a list of values")
            wanted = {str(v).lower() if field.type == "ID" else v for v in values}
            include = kind == "IncludeValues"
            if field.type == "ID":
                filters.append((field, lambda v, w=wanted, inc=include: ((v or "").lower() in w) == inc))
            else:
                filters.append((field, lambda v, w=wanted, inc=include: (v in w) == inc))
        elif kind == "Range":
            if field.type not in RANGE_TYPES:
                raise OlapError(f"Filter type Range is not applicable to field {name} ({field.type})")
            low = _decimal(spec["from"], name) if spec.get("from") is not None else None
            high = _decimal(spec["to"], name) if spec.get("to") is not None else None
            inc_low = _flag(spec.get("includeLow"), True, "includeLow")
            inc_high = _flag(spec.get("includeHigh"), False, "includeHigh")

            def in_range(v: Any, lo: Decimal | None = low, hi: Decimal | None = high, il: bool = inc_low,
                         ih: bool = inc_high) -> bool:
                if v is None:
                    return False
                if lo is not None and (v < lo or (v == lo and not il)):
                    return False
                return hi is None or v < hi or (v == hi and ih)

            filters.append((field, in_range))
        elif kind == "DateRange":
            if field.type not in DATE_TYPES:
                raise OlapError(f"Filter type DateRange is not applicable to field {name} ({field.type})")
            period = spec.get("periodType", "CUSTOM")
            if period not in PERIOD_TYPES:
                raise OlapError(f"Unknown period type: {period}")
            if "from" not in spec:
                raise OlapError(f"Wrong request body: the DateRange filter of {name} needs 'from'")
            if period == "CUSTOM":
                low_dt = parse_datetime(spec.get("from"))
                if spec.get("to") is None:
                    raise OlapError(f"Wrong request body: the CUSTOM DateRange filter of {name} needs 'to'")
                high_dt = parse_datetime(spec.get("to"))
                date_bounds = DateBounds(low_dt, high_dt, _flag(spec.get("includeLow"), True, "includeLow"),
                                         _flag(spec.get("includeHigh"), False, "includeHigh"))
                if name in ("OpenDate.Typed", "OpenDate"):
                    window = (str(spec.get("from")), str(spec.get("to")))
            else:
                low_dt, high_dt = period_bounds(period, today)
                date_bounds = DateBounds(low_dt, high_dt, True, False)
            bounds.append((field, date_bounds))
            filters.append((field, date_bounds.test))
        else:
            raise OlapError(f"Unknown filter type: {kind}")
    if not bounds and version >= DATE_FILTER_SINCE:
        raise OlapError(DATE_FILTER_REQUIRED)
    summary = _flag(body.get("buildSummary"), version < SUMMARY_DEFAULT_FALSE_SINCE, "buildSummary")
    return Request(rows, cols, aggregates, filters, bounds, summary, window)


# ------------------------------------------------------------------ evaluation

@dataclass
class Context:
    """What a report reads: the orders, the current department records (renames show), the generated span."""

    sales: Sales
    departments: dict[str, CorporateItem]


def _scan_days(req: Request, first: date, last: date) -> tuple[date, date]:
    """Business days that can match the date filters (the per-row test decides), within the span."""
    lo, hi = first, last
    for field, b in req.date_bounds:
        if field.name in ("OpenDate.Typed", "OpenDate"):
            lo, hi = max(lo, b.low.date()), min(hi, b.high.date())
        else:  # a calendar time: the order's business day is at most two days earlier
            lo, hi = max(lo, b.low.date() - timedelta(days=2)), min(hi, b.high.date())
    return lo, hi


def _order_values(names: Iterable[str], business: date, order: Order, ctx: Context) -> dict[str, Any]:
    dept = ctx.departments.get(order.department_id)
    values: dict[str, Any] = {}
    for name in names:
        if name == "Department":
            values[name] = dept.name if dept else None
        elif name == "Department.Id":
            values[name] = order.department_id
        elif name == "Department.Code":
            values[name] = dept.code if dept else None
        elif name == "OpenDate.Typed" or name == "OpenDate":
            values[name] = datetime(business.year, business.month, business.day)
        elif name == "OpenTime":
            values[name] = order.open_time
        elif name == "CloseTime":
            values[name] = order.close_time
        elif name == "SessionNum":
            prof = ctx.sales.profile(order.department_id)
            values[name] = ctx.sales.session_number(prof, business) if prof else None
        elif name == "OrderNum":
            values[name] = order.num
        elif name == "UniqOrderId":
            values[name] = order.id
        elif name == "OrderType":
            values[name] = order.order_type
        elif name == "PayTypes":
            values[name] = order.pay_type
        elif name == "OrderDeleted":
            values[name] = DELETED if order.deleted else NOT_DELETED
    return values


def _line_value(name: str, line: tuple[int, int, int, int, int, str], sales: Sales) -> Any:
    if name == "DeletedWithWriteoff":
        return line[5]
    dish = sales.dishes[line[0]]
    if name == "DishId":
        return dish.id
    if name == "DishName":
        return dish.name
    if name == "DishCode":
        return dish.code
    if name == "DishAmountInt":
        return Decimal(line[1])
    if name == "DishSumInt":
        return Decimal(line[2]).scaleb(-2)
    if name == "DishDiscountSumInt":
        return Decimal(line[2] - line[3]).scaleb(-2)
    if name == "DiscountSum":
        return Decimal(line[3]).scaleb(-2)
    raise KeyError(name)


def _render(name: str, value: Any) -> Any:
    """A grouping value as iiko prints it."""
    if isinstance(value, datetime):
        if name == "OpenDate.Typed":
            return value.strftime("%Y-%m-%dT00:00:00")
        if name == "OpenDate":
            return value.strftime("%Y.%m.%d")
        return java_datetime(value)
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, int | float | Decimal):
        return (1, value)
    return (2, str(value))


def run(body: Any, ctx: Context, version: tuple[int, ...], today: date) -> tuple[dict[str, Any], Request]:
    """Answer one OLAP request: (`{"data", "summary"}`, the parsed request). Raises `OlapError`."""
    req = parse_request(body, version, today)
    first, last = ctx.sales.span()
    lo, hi = _scan_days(req, first, last)
    group_names = req.rows + req.cols
    order_names = [n for n in dict.fromkeys(group_names + [f.name for f, _ in req.filters]) if FIELDS[n].level == _O]
    order_filters = [(f.name, test) for f, test in req.filters if f.level == _O]
    line_filters = [(f.name, test) for f, test in req.filters if f.level == _L]
    line_groups = [n for n in group_names if FIELDS[n].level == _L]
    sums = [(n, *_LINE_AGGREGATES[n]) for n in req.aggregates if n in _LINE_AGGREGATES]
    counts = [n for n in req.aggregates if n in COUNT_FIELDS]
    groups: dict[tuple[Any, ...], list[Any]] = {}
    sales = ctx.sales
    if lo <= hi:
        for business, order in sales.orders_by_business_day(lo, hi):
            values = _order_values(order_names, business, order, ctx)
            if not all(test(values[name]) for name, test in order_filters):
                continue
            for line in order.lines:
                line_values = {name: _line_value(name, line, sales) for name in line_groups}
                if line_filters and not all(
                        test(line_values[name] if name in line_values else _line_value(name, line, sales))
                        for name, test in line_filters):
                    continue
                key = tuple(values[n] if FIELDS[n].level == _O else line_values[n] for n in group_names)
                acc = groups.get(key)
                if acc is None:
                    acc = groups[key] = [0] * len(sums) + [set() for _ in counts]
                for i, (_name, get, _places) in enumerate(sums):
                    acc[i] += get(line)
                for j in range(len(counts)):
                    acc[len(sums) + j].add(order.id_bits)

    def aggregates(acc: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, (name, _get, places) in enumerate(sums):
            out[name] = number(acc[i], places)
        for j, name in enumerate(counts):
            out[name] = len(acc[len(sums) + j])
        return out

    def merge(into: list[Any] | None, acc: list[Any]) -> list[Any]:
        if into is None:
            return [a if i < len(sums) else set(a) for i, a in enumerate(acc)]
        for i in range(len(sums)):
            into[i] += acc[i]
        for j in range(len(counts)):
            into[len(sums) + j] |= acc[len(sums) + j]
        return into

    rendered: dict[tuple[str, Any], Any] = {}
    sort_keys: dict[Any, tuple[int, Any]] = {}

    def shown(name: str, value: Any) -> Any:
        key = (name, value)
        if key not in rendered:
            rendered[key] = _render(name, value)
        return rendered[key]

    def order(key: tuple[Any, ...]) -> tuple[tuple[int, Any], ...]:
        out = []
        for value in key:
            known = sort_keys.get(value)
            if known is None:
                known = sort_keys[value] = _sort_key(value)
            out.append(known)
        return tuple(out)

    data = []
    for key in sorted(groups, key=order):
        row = {name: shown(name, value) for name, value in zip(group_names, key, strict=True)}
        row.update(aggregates(groups[key]))
        data.append(dict(sorted(row.items())))
    summary: list[list[dict[str, Any]]] = []
    if req.summary:
        total: list[Any] | None = None
        for acc in groups.values():
            total = merge(total, acc)
        summary.append([{}, dict(sorted(aggregates(total).items())) if total is not None else {}])
        for size in range(1, len(req.rows) + 1):
            partial: dict[tuple[Any, ...], list[Any]] = {}
            for key, acc in groups.items():
                partial[key[:size]] = merge(partial.get(key[:size]), acc)
            for prefix in sorted(partial, key=order):
                head = {name: shown(name, value) for name, value in zip(req.rows[:size], prefix, strict=True)}
                summary.append([dict(sorted(head.items())), dict(sorted(aggregates(partial[prefix]).items()))])
    return {"data": data, "summary": summary}, req
