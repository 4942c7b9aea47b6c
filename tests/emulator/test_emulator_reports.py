"""Issue 15, emulator slice: OLAP v2 SALES, stock balances and cash shifts, over real HTTP.

The truth comes from the control API (`/_emulator/sales/...`, `/_emulator/stock/...`) and `emu.state.dataset`; the
answers from the iiko endpoints, as a client sees them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from emulator_helpers import TIMEOUT, Api

from iiko_pipeline.emulator import EmulatorConfig, EmulatorServer
from iiko_pipeline.emulator.dataset import Dataset
from iiko_pipeline.emulator.sales import CARD, CASH, CREDIT
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD

TODAY = date(2024, 6, 30)
OLAP = "v2/reports/olap"
COLUMNS = "v2/reports/olap/columns"
BALANCES = "v2/reports/balance/stores"
SHIFTS = "v2/cashshifts/list"
LIVE = {"DeletedWithWriteoff": {"filterType": "IncludeValues", "values": ["NOT_DELETED"]},
        "OrderDeleted": {"filterType": "IncludeValues", "values": ["NOT_DELETED"]}}


def days(first: date, last: date) -> Iterator[date]:
    while first <= last:
        yield first
        first += timedelta(days=1)


def date_range(first: date, last: date, **extra: Any) -> dict[str, Any]:
    """The half-open OpenDate.Typed filter of the business days [first, last]."""
    return {"filterType": "DateRange", "periodType": "CUSTOM", "from": f"{first}T00:00:00.000",
            "to": f"{last + timedelta(days=1)}T00:00:00.000", "includeLow": True, "includeHigh": False, **extra}


def report(groups: list[str], aggregates: list[str], first: date, last: date, live: bool = True,
           **extra: Any) -> dict[str, Any]:
    filters = {"OpenDate.Typed": date_range(first, last), **(LIVE if live else {})}
    return {"reportType": "SALES", "buildSummary": False, "groupByRowFields": groups, "groupByColFields": [],
            "aggregateFields": aggregates, "filters": filters, **extra}


def post(api: Api, token: str, body: Any, **kwargs: Any) -> requests.Response:
    return requests.post(api.url(OLAP), params={"key": token}, json=body, timeout=TIMEOUT, **kwargs)


def rows(api: Api, token: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    r = post(api, token, body)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    answer = r.json(parse_float=Decimal, parse_int=Decimal)
    assert set(answer) == {"data", "summary"}
    return answer["data"]


def truth(api: Api, path: str, **params: Any) -> Any:
    r = api.control("GET", path, **params)
    assert r.status_code == 200, r.text
    return r.json()


def balances(api: Api, token: str, at: str, **params: Any) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    r = api.get(BALANCES, token, timestamp=at, **params)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    out = {}
    for row in r.json(parse_float=Decimal, parse_int=Decimal):
        assert set(row) == {"store", "product", "amount", "sum"}
        out[(row["store"], row["product"])] = (row["amount"], row["sum"])
    return out


@pytest.fixture
def emu(make_emulator: Any) -> Iterator[EmulatorServer]:
    with make_emulator(today=TODAY, seats=3) as server:
        yield server


@pytest.fixture
def session(emu: EmulatorServer) -> Iterator[tuple[Api, str]]:
    api = Api(emu)
    token = api.login()
    yield api, token
    api.logout(token)


# ------------------------------------------------------------------ OLAP

def test_detail_rows_summed_per_department_and_day_equal_the_totals(session: tuple[Api, str]) -> None:
    api, token = session
    first, last = TODAY - timedelta(days=13), TODAY
    detail = rows(api, token, report(["Department.Id", "OpenDate.Typed", "DishId", "OrderType", "PayTypes"],
                                     ["DishAmountInt", "DishSumInt", "DishDiscountSumInt",
                                      "ProductCostBase.ProductCost"], first, last))
    totals = rows(api, token, report(["Department.Id", "OpenDate.Typed"],
                                     ["UniqOrderId.OrdersCount", "DishSumInt", "DishDiscountSumInt"], first, last))
    summed: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in detail:
        key = (row["Department.Id"], row["OpenDate.Typed"])
        summed[key][0] += row["DishSumInt"]
        summed[key][1] += row["DishDiscountSumInt"]
        assert row["DishDiscountSumInt"] <= row["DishSumInt"] and row["DishAmountInt"] >= 1
        assert 0 < row["ProductCostBase.ProductCost"] < row["DishSumInt"]
    assert {(r["Department.Id"], r["OpenDate.Typed"]): [r["DishSumInt"], r["DishDiscountSumInt"]] for r in totals} \
        == dict(summed)
    assert len(totals) == 2 * 14  # two restaurants (tiny), every business day
    # The orders count is the generated non-deleted orders of each restaurant and business day.
    orders: dict[tuple[str, str], int] = defaultdict(int)
    for order in truth(api, "sales/orders", **{"from": first.isoformat(), "to": last.isoformat()}):
        if order["order_deleted"] == "NOT_DELETED":
            orders[(order["department_id"], f"{order['business_day']}T00:00:00")] += 1
    assert {(r["Department.Id"], r["OpenDate.Typed"]): int(r["UniqOrderId.OrdersCount"]) for r in totals} == orders
    # Every business day of the answer is inside the half-open range.
    assert {r["OpenDate.Typed"] for r in totals} == {f"{d}T00:00:00" for d in days(first, last)}


def test_deleted_orders_and_dishes_are_excluded_by_the_usual_filters(session: tuple[Api, str]) -> None:
    api, token = session
    first, last = TODAY - timedelta(days=59), TODAY
    orders = truth(api, "sales/orders", **{"from": first.isoformat(), "to": last.isoformat()})
    deleted = [o for o in orders if o["order_deleted"] == "DELETED"]
    dropped_lines = [ln for o in orders if o["order_deleted"] == "NOT_DELETED" for ln in o["lines"]
                     if ln["deleted_with_writeoff"] != "NOT_DELETED"]
    assert deleted and dropped_lines, "60 tiny days have deleted orders and deleted dishes"
    live = sum(Decimal(ln["sum"]) for o in orders if o["order_deleted"] == "NOT_DELETED" for ln in o["lines"]
               if ln["deleted_with_writeoff"] == "NOT_DELETED")
    everything = sum(Decimal(ln["sum"]) for o in orders for ln in o["lines"])
    filtered = rows(api, token, report([], ["DishSumInt", "UniqOrderId.OrdersCount"], first, last))
    unfiltered = rows(api, token, report([], ["DishSumInt", "UniqOrderId.OrdersCount"], first, last, live=False))
    assert filtered[0]["DishSumInt"] == live and unfiltered[0]["DishSumInt"] == everything > live
    assert int(filtered[0]["UniqOrderId.OrdersCount"]) == len(orders) - len(deleted)
    assert int(unfiltered[0]["UniqOrderId.OrdersCount"]) == len(orders)
    by_state = rows(api, token, report(["OrderDeleted", "DeletedWithWriteoff"], ["UniqOrderId"], first, last,
                                       live=False))
    assert {(r["OrderDeleted"], r["DeletedWithWriteoff"]) for r in by_state} >= {
        ("NOT_DELETED", "NOT_DELETED"), ("DELETED", "DELETED_WITHOUT_WRITEOFF")}
    excluded = rows(api, token, {**report(["OrderDeleted"], ["DishSumInt"], first, last, live=False),
                                 "filters": {"OpenDate.Typed": date_range(first, last),
                                             "OrderDeleted": {"filterType": "ExcludeValues",
                                                              "values": ["NOT_DELETED"]}}})
    assert [r["OrderDeleted"] for r in excluded] == ["DELETED"]


def test_a_request_without_a_date_filter_gets_the_real_refusal(emu: EmulatorServer,
                                                              session: tuple[Api, str]) -> None:
    api, token = session
    body = {"reportType": "SALES", "buildSummary": False, "groupByRowFields": ["Department"],
            "aggregateFields": ["DishSumInt"], "filters": LIVE}
    r = post(api, token, body)
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("text/plain")
    assert "Date filter is required" in r.text
    emu.state.configure(version="5.4.1")  # before 5.5 a date filter was optional: the whole history answers
    assert len(rows(api, token, body)) == 2


@pytest.mark.parametrize(("change", "expected"), [
    ({"filters": {"OpenDate.Typed": {"filterType": "DateRange", "periodType": "CUSTOM",
                                     "from": "2024-06-01 00:00", "to": "2024-06-02T00:00:00.000"}}},
     "Wrong date format: 2024-06-01 00:00"),
    ({"filters": {"OpenDate.Typed": {"filterType": "DateRange", "periodType": "CUSTOM",
                                     "from": "01.06.2024", "to": "2024-06-02"}}}, "Wrong date format: 01.06.2024"),
    ({"filters": {"OpenDate.Typed": {"filterType": "DateRange", "periodType": "SOMETIME", "from": "x"}}},
     "Unknown period type: SOMETIME"),
    ({"groupByRowFields": ["NoSuchField"]}, "Unknown OLAP field: NoSuchField"),
    ({"groupByRowFields": ["DishSumInt"]}, "DishSumInt cannot be used for grouping"),
    ({"aggregateFields": ["DishName"]}, "DishName cannot be used for aggregation"),
    ({"filters": {"OpenDate.Typed": date_range(TODAY, TODAY),
                  "DishName": {"filterType": "Range", "from": 1, "to": 2}}}, "not applicable to field DishName"),
    ({"filters": {"OpenDate.Typed": date_range(TODAY, TODAY),
                  "DishName": {"filterType": "LikeValues", "values": []}}}, "Unknown filter type: LikeValues"),
    ({"reportType": "STOCK"}, "Unknown report type: STOCK"),
    ({"reportType": "TRANSACTIONS"}, "only SALES"),
    ({"groupByRowFields": "Department"}, "Wrong request body"),
])
def test_bad_requests_get_400_with_a_text(session: tuple[Api, str], change: dict[str, Any], expected: str) -> None:
    api, token = session
    body = {**report(["Department"], ["DishSumInt"], TODAY, TODAY), **change}
    r = post(api, token, body)
    assert r.status_code == 400, r.text
    assert r.headers["Content-Type"].startswith("text/plain") and expected in r.text


def test_method_content_type_and_body_refusals(session: tuple[Api, str]) -> None:
    api, token = session
    assert api.get(OLAP, token).status_code == 405
    form = requests.post(api.url(OLAP), params={"key": token}, data={"reportType": "SALES"}, timeout=TIMEOUT)
    assert form.status_code == 415
    for raw in (b"", b"{not json", b"[]"):
        r = requests.post(api.url(OLAP), params={"key": token}, data=raw, timeout=TIMEOUT,
                          headers={"Content-Type": "application/json; charset=utf-8"})
        assert r.status_code == 400 and "Wrong request body" in r.text
    assert requests.post(api.url(OLAP), json=report([], ["DishSumInt"], TODAY, TODAY), timeout=TIMEOUT
                         ).status_code == 401  # no key


def test_date_ranges_are_half_open_and_accept_the_documented_formats(session: tuple[Api, str]) -> None:
    api, token = session
    day = TODAY - timedelta(days=3)

    def days_of(flt: dict[str, Any]) -> set[str]:
        body = report(["OpenDate.Typed"], ["DishSumInt"], day, day)
        body["filters"] = {"OpenDate.Typed": flt}
        return {r["OpenDate.Typed"] for r in rows(api, token, body)}

    assert days_of(date_range(day, day)) == {f"{day}T00:00:00"}
    both = {"filterType": "DateRange", "periodType": "CUSTOM", "from": f"{day}T00:00:00.000",
            "to": f"{day + timedelta(days=1)}T00:00:00.000"}  # includeLow/includeHigh defaults: [from, to)
    assert days_of(both) == {f"{day}T00:00:00"}
    assert days_of({**both, "includeHigh": True}) == {f"{day}T00:00:00", f"{day + timedelta(days=1)}T00:00:00"}
    assert days_of({**both, "includeLow": False}) == set()
    assert days_of({"filterType": "DateRange", "periodType": "CUSTOM", "from": day.isoformat(),
                    "to": day.isoformat(), "includeLow": True, "includeHigh": True}) == {f"{day}T00:00:00"}
    assert days_of({"filterType": "DateRange", "periodType": "CUSTOM", "from": f"{day}T00:00:00",
                    "to": f"{day}T00:00:00"}) == set()
    yesterday = TODAY - timedelta(days=1)
    assert days_of({"filterType": "DateRange", "periodType": "YESTERDAY", "from": "ignored"}) == \
        {f"{yesterday}T00:00:00"}
    assert days_of({"filterType": "DateRange", "periodType": "CURRENT_MONTH", "from": "x"}) == \
        {f"{d}T00:00:00" for d in days(TODAY.replace(day=1), TODAY)}
    # A calendar-time filter on OpenTime works as the date filter too.
    opened = rows(api, token, {**report(["OpenDate.Typed"], ["UniqOrderId"], day, day),
                               "filters": {"OpenTime": {"filterType": "DateRange", "periodType": "CUSTOM",
                                                        "from": f"{day}T12:00:00.000", "to": f"{day}T14:00:00.000"}}})
    assert opened and all(r["OpenDate.Typed"] in (f"{day}T00:00:00", f"{day - timedelta(days=1)}T00:00:00")
                          for r in opened)


def test_shape_summary_and_catalogue(emu: EmulatorServer, session: tuple[Api, str]) -> None:
    api, token = session
    first, last = TODAY - timedelta(days=2), TODAY
    body = report(["PayTypes", "OpenDate.Typed"], ["DishSumInt", "UniqOrderId"], first, last, buildSummary=True)
    r = post(api, token, body)
    answer = r.json(parse_float=Decimal, parse_int=Decimal)
    data, summary = answer["data"], answer["summary"]
    assert all(list(row) == sorted(row) for row in data)  # keys in alphabetical order, as iiko prints them
    assert {row["PayTypes"] for row in data} <= {CASH, CARD, CREDIT}
    total = summary[0]
    assert total[0] == {} and total[1]["DishSumInt"] == sum(row["DishSumInt"] for row in data)
    by_pay = {tuple(block[0].items()): block[1] for block in summary[1:] if len(block[0]) == 1}
    assert {k[0][1] for k in by_pay} == {row["PayTypes"] for row in data}
    assert len([b for b in summary if len(b[0]) == 2]) == len(data)
    assert all(isinstance(v, int | float) for row in r.json()["data"] for k, v in row.items()
               if k in ("DishSumInt", "UniqOrderId"))
    # buildSummary defaults to true before 9.1.2 (the emulator's 8.9 by default) and false after.
    del body["buildSummary"]
    assert post(api, token, body).json()["summary"]
    emu.state.configure(version="9.1.2")
    assert post(api, token, body).json()["summary"] == []
    # The catalogue: every field served, with its type and what it allows; deprecated OpenDate not listed.
    cat = api.get(COLUMNS, token, reportType="SALES")
    assert cat.status_code == 200 and cat.headers["Content-Type"] == "application/json"
    fields = cat.json()
    for name, kind in (("Department", "STRING"), ("Department.Id", "ID"), ("OpenDate.Typed", "DATE"),
                       ("DishId", "ID"), ("DishName", "STRING"), ("DishCode", "STRING"), ("OrderType", "STRING"),
                       ("PayTypes", "STRING"), ("UniqOrderId", "ID"), ("DishAmountInt", "AMOUNT"),
                       ("DishSumInt", "MONEY"), ("DishDiscountSumInt", "MONEY"),
                       ("ProductCostBase.ProductCost", "MONEY"), ("UniqOrderId.OrdersCount", "INTEGER"),
                       ("DeletedWithWriteoff", "ENUM"), ("OrderDeleted", "ENUM")):
        assert fields[name]["type"] == kind
        assert set(fields[name]) == {"name", "type", "aggregationAllowed", "groupingAllowed", "filteringAllowed",
                                     "tags"}
    assert fields["DishSumInt"]["aggregationAllowed"] and not fields["DishSumInt"]["groupingAllowed"]
    assert fields["OpenDate.Typed"]["groupingAllowed"] and fields["OpenDate.Typed"]["filteringAllowed"]
    assert "OpenDate" not in fields
    assert api.get(COLUMNS, token, reportType="LABOUR").status_code == 404
    assert api.get(COLUMNS, token).status_code == 400


def test_late_shift_moves_sales_between_business_days(emu: EmulatorServer, session: tuple[Api, str]) -> None:
    api, token = session
    day = TODAY - timedelta(days=5)
    department = emu.state.dataset.sales.profiles[0].department_id
    body = report(["Department.Id", "OpenDate.Typed"], ["DishDiscountSumInt", "UniqOrderId.OrdersCount"],
                  day - timedelta(days=1), day)

    def totals() -> dict[str, tuple[Decimal, Decimal]]:
        return {r["OpenDate.Typed"][:10]: (r["DishDiscountSumInt"], r["UniqOrderId.OrdersCount"])
                for r in rows(api, token, body) if r["Department.Id"] == department}

    def shifts() -> dict[str, dict[str, Any]]:
        answer = api.get(SHIFTS, token, openDateFrom=str(day - timedelta(days=1)), openDateTo=str(day),
                         status="ANY", departmentId=department).json()
        return {s["openDate"][:10]: s for s in answer}

    before, shifts_before = totals(), shifts()
    r = api.control("POST", "sales/late_shift", json={"department": department, "date": day.isoformat(),
                                                      "until": "16:00:00"})
    assert r.status_code == 200, r.text
    after, shifts_after = totals(), shifts()
    prev, this = str(day - timedelta(days=1)), str(day)
    moved = after[prev][0] - before[prev][0]
    assert moved > 0 and before[this][0] - after[this][0] == moved  # sales moved a day back ...
    assert before[prev][0] + before[this][0] == after[prev][0] + after[this][0]  # ... and none was lost
    assert after[prev][1] + after[this][1] == before[prev][1] + before[this][1]
    # The orders opened on `day` before 16:00 now belong to business day `day - 1`, their shift closed at 16:00.
    moved_orders = [o for o in truth(api, "sales/orders", **{"from": prev, "to": this, "department": department})
                    if o["nominal_day"] == this and o["business_day"] == prev]
    assert moved_orders and all(o["open_time"] < f"{this}T16:00:00" for o in moved_orders)
    assert shifts_after[prev]["closeDate"] == f"{this}T16:00:00"
    assert shifts_after[this]["openDate"] > f"{this}T16:00:00" >= shifts_before[this]["openDate"]
    assert shifts_after[prev]["payOrders"] == after[prev][0] and shifts_after[this]["payOrders"] == after[this][0]
    # The change is a revision: revisionFrom returns the two touched shifts only.
    revision = max(s["revision"] for s in truth(api, "sales/shifts", **{"from": prev, "to": this}))
    changed = api.get(SHIFTS, token, openDateFrom=prev, openDateTo=this, status="ANY",
                      revisionFrom=revision - 1).json()
    assert sorted(s["openDate"][:10] for s in changed) == [prev, this]
    # Cancelling it restores the generated business days; a bad request is a 400, an unknown restaurant a 404.
    api.control("POST", "sales/late_shift", json={"department": department, "date": this, "until": None})
    assert totals() == before
    assert truth(api, "sales/late_shifts") == [{"department": department, "date": this, "until": None}]
    assert api.control("POST", "sales/late_shift", json={"department": department}).status_code == 400
    assert api.control("POST", "sales/late_shift", json={"department": department, "date": this,
                                                         "until": "25:00"}).status_code == 400
    assert api.control("POST", "sales/late_shift", json={"department": "nope", "date": this}).status_code == 404


def test_shifts_left_open_by_the_generator_put_orders_on_the_day_before(make_emulator: Any) -> None:
    with make_emulator(today=TODAY, scale="seed") as emu:
        ds = emu.state.dataset
        week = ds.sales.orders_by_business_day(TODAY - timedelta(days=6), TODAY - timedelta(days=1))
        moved = [(b, o) for b, o in week if b != o.day]
        assert moved, "about 3 % of nights are left open at seed scale"
        assert all(b == o.day - timedelta(days=1) and o.open_time.date() == o.day for b, o in moved)


# ------------------------------------------------------------------ cash shifts

def test_cash_shift_sales_agree_with_olap_by_pay_type_and_business_day(session: tuple[Api, str]) -> None:
    api, token = session
    first, last = TODAY - timedelta(days=20), TODAY
    olap = rows(api, token, report(["Department.Id", "OpenDate.Typed", "PayTypes"], ["DishDiscountSumInt"],
                                   first, last))
    sales = {(r["Department.Id"], r["OpenDate.Typed"][:10], r["PayTypes"]): r["DishDiscountSumInt"] for r in olap}
    point_of_sale = {s["point_of_sale"]: s["department_id"]
                     for s in truth(api, "sales/shifts", **{"from": first.isoformat(), "to": last.isoformat()})}
    answer = api.get(SHIFTS, token, openDateFrom=first.isoformat(), openDateTo=last.isoformat(), status="ANY")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    shifts = answer.json(parse_float=Decimal, parse_int=Decimal)
    assert len(shifts) == 2 * 21
    for s in shifts:
        key = (point_of_sale[s["pointOfSale"]], s["openDate"][:10])
        assert s["salesCash"] == sales.get((*key, CASH), 0)
        assert s["salesCard"] == sales.get((*key, CARD), 0)
        assert s["salesCredit"] == sales.get((*key, CREDIT), 0)
        assert s["payOrders"] == s["salesCash"] + s["salesCard"] + s["salesCredit"]


def test_cash_shift_shape_statuses_numbers_and_filters(emu: EmulatorServer, session: tuple[Api, str]) -> None:
    api, token = session
    first = TODAY - timedelta(days=9)
    shifts = api.get(SHIFTS, token, openDateFrom=first.isoformat(), openDateTo=TODAY.isoformat(), status="ANY").json()
    keys = ["id", "sessionNumber", "fiscalNumber", "cashRegNumber", "cashRegSerial", "openDate", "closeDate",
            "acceptDate", "managerId", "responsibleUser", "sessionStartCash", "payOrders", "sumWriteoffOrders",
            "salesCash", "salesCredit", "salesCard", "payIn", "payOut", "payIncome", "cashRemain", "cashDiff",
            "sessionStatus", "conception", "pointOfSale"]
    assert all(list(s) == keys for s in shifts)
    by_pos: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in shifts:
        by_pos[s["pointOfSale"]].append(s)
        opened = s["openDate"][:10]
        if opened == str(TODAY):
            assert s["sessionStatus"] == "OPEN" and s["closeDate"] is None and s["acceptDate"] is None
        elif opened >= str(TODAY - timedelta(days=2)):
            assert s["sessionStatus"] == ("HASWARNINGS" if s["cashDiff"] else "UNACCEPTED")
            assert s["closeDate"] > s["openDate"] and s["acceptDate"] is None
        else:
            assert s["sessionStatus"] == "ACCEPTED" and s["acceptDate"] > s["closeDate"] > s["openDate"]
    assert len(by_pos) == 2
    for own in by_pos.values():  # one shift a day per point of sale, numbered one up a day
        numbers = [s["sessionNumber"] for s in sorted(own, key=lambda s: s["openDate"])]
        assert numbers == list(range(numbers[0], numbers[0] + 10))
    every = {s["id"] for s in shifts}

    def ids(status: str, **params: Any) -> set[str]:
        r = api.get(SHIFTS, token, openDateFrom=first.isoformat(), openDateTo=TODAY.isoformat(), status=status,
                    **params)
        assert r.status_code == 200, r.text
        return {s["id"] for s in r.json()}

    status_of = {s["id"]: s["sessionStatus"] for s in shifts}
    assert ids("OPEN") == {i for i, st in status_of.items() if st == "OPEN"} and len(ids("OPEN")) == 2
    assert ids("CLOSED") == every - ids("OPEN")
    assert ids("ACCEPTED") | ids("UNACCEPTED") == ids("CLOSED")
    assert ids("HASWARNINGS") <= ids("UNACCEPTED")
    department = emu.state.dataset.sales.profiles[1].department_id
    assert len(ids("ANY", departmentId=department)) == 10
    one_day = api.get(SHIFTS, token, openDateFrom=str(TODAY - timedelta(days=1)),
                      openDateTo=str(TODAY - timedelta(days=1)), status="ANY").json()
    assert {s["openDate"][:10] for s in one_day} == {str(TODAY - timedelta(days=1))}  # both dates inclusive
    assert api.get(SHIFTS, token, openDateFrom=str(TODAY), openDateTo=str(TODAY)).status_code == 400  # status
    assert api.get(SHIFTS, token, openDateFrom="2024-13-01", openDateTo=str(TODAY), status="ANY"
                   ).status_code == 400
    assert api.get(SHIFTS, token, openDateFrom=str(TODAY), openDateTo=str(TODAY), status="SOMETIMES"
                   ).status_code == 400
    assert api.get(SHIFTS, token, openDateTo=str(TODAY), status="ANY").status_code == 400


# ------------------------------------------------------------------ stock balances

def test_balance_delta_between_two_days_is_the_day_incoming_minus_consumption(session: tuple[Api, str]) -> None:
    api, token = session
    day = TODAY - timedelta(days=4)
    before = balances(api, token, f"{day - timedelta(days=1)}T23:59:59")
    after = balances(api, token, f"{day}T23:59:59")
    moves = truth(api, "stock/movements", date=day.isoformat())
    assert moves["incoming"] and moves["consumption"]
    expected: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for sign, kind in ((1, "incoming"), (-1, "consumption")):
        for row in moves[kind]:
            expected[(row["store"], row["product"])][0] += sign * Decimal(row["amount"])
            expected[(row["store"], row["product"])][1] += sign * Decimal(row["sum"])
    zero = (Decimal(0), Decimal(0))
    for key in set(before) | set(after) | set(expected):
        b, a = before.get(key, zero), after.get(key, zero)
        assert [a[0] - b[0], a[1] - b[1]] == expected.get(key, [0, 0]), key


def test_a_back_dated_invoice_changes_the_balances_from_its_date_on(emu: EmulatorServer,
                                                                    session: tuple[Api, str]) -> None:
    api, token = session
    ds = emu.state.dataset
    store = ds.universe.restaurant_stores[ds.universe.restaurants[1].id][1].id
    product = ds.universe.products[3].id
    snapshot_days = [TODAY - timedelta(days=n) for n in (6, 4, 2, 0)]
    before = {d: balances(api, token, f"{d}T23:59:59") for d in snapshot_days}
    created = api.control("POST", "documents", json={
        "date_incoming": f"{TODAY - timedelta(days=4)}T10:00:00",
        "items": [{"product_id": product, "amount": "12.5", "price": "100.00", "store_id": store}]})
    assert created.status_code == 201, created.text
    doc_id = created.json()["id"]
    zero = (Decimal(0), Decimal(0))

    def change(d: date) -> tuple[Decimal, Decimal]:
        now, then = balances(api, token, f"{d}T23:59:59").get((store, product), zero), \
            before[d].get((store, product), zero)
        return now[0] - then[0], now[1] - then[1]

    assert change(snapshot_days[0]) == (0, 0)
    assert all(change(d) == (Decimal("12.5"), Decimal("1250")) for d in snapshot_days[1:])
    # Back-date it further: the balances in between change too; a NEW (unprocessed) document moves no stock.
    api.control("PATCH", f"documents/{doc_id}", json={"date_incoming": f"{TODAY - timedelta(days=7)}T09:00:00"})
    assert all(change(d) == (Decimal("12.5"), Decimal("1250")) for d in snapshot_days)
    api.control("PATCH", f"documents/{doc_id}", json={"status": "NEW"})
    assert all(change(d) == (0, 0) for d in snapshot_days)
    # Back-dating a generated document moves its goods to the earlier days.
    doc = next(d for d in ds.invoices(TODAY - timedelta(days=2), TODAY - timedelta(days=2))
               if d.status == "PROCESSED" and not any(i.is_additional_expense for i in d.items))
    line = doc.items[0]
    key = (line.store_id, line.product_id)
    old_day = balances(api, token, f"{TODAY - timedelta(days=3)}T23:59:59").get(key, zero)
    api.control("PATCH", f"documents/{doc.id}", json={"date_incoming": f"{TODAY - timedelta(days=5)}T08:00:00"})
    moved_day = balances(api, token, f"{TODAY - timedelta(days=3)}T23:59:59").get(key, zero)
    amount = sum(i.amount for i in doc.items if (i.store_id, i.product_id) == key)
    assert moved_day[0] - old_day[0] == amount
    assert balances(api, token, f"{TODAY}T23:59:59") == before[TODAY]  # today's totals are as before


def test_zero_balances_are_omitted_and_negative_ones_kept(emu: EmulatorServer, session: tuple[Api, str]) -> None:
    api, token = session
    store = api.control("POST", "stores", json={"name": "Склад «Новый»",
                                                "parent_id": emu.state.dataset.universe.restaurants[0].id}).json()
    product = emu.state.dataset.universe.products[0].id
    at = f"{TODAY}T23:59:59"
    assert not any(s == store["id"] for s, _ in balances(api, token, at))
    doc = api.control("POST", "documents", json={
        "date_incoming": f"{TODAY - timedelta(days=1)}T10:00:00", "default_store_id": store["id"],
        "items": [{"product_id": product, "amount": "3", "price": "10"}]}).json()
    assert balances(api, token, at)[(store["id"], product)] == (3, 30)
    api.control("PATCH", f"documents/{doc['id']}", json={"status": "DELETED"})  # back to zero: omitted
    assert (store["id"], product) not in balances(api, token, at)
    api.control("POST", "documents", json={
        "date_incoming": f"{TODAY - timedelta(days=1)}T11:00:00", "default_store_id": store["id"],
        "items": [{"product_id": product, "amount": "-2.5", "price": "10"}]})
    assert balances(api, token, at)[(store["id"], product)] == (Decimal("-2.5"), -25)
    assert balances(api, token, at, store=store["id"]) == {(store["id"], product): (Decimal("-2.5"), -25)}
    assert balances(api, token, at, product=product, store=store["id"]).keys() == {(store["id"], product)}
    by_department = balances(api, token, at, department=emu.state.dataset.universe.restaurants[0].id)
    first_restaurant = emu.state.dataset.universe.restaurants[0].id
    own_stores = {s.id for s in emu.state.dataset.stores() if s.parent_id == first_restaurant}
    assert by_department and {s for s, _ in by_department} <= own_stores


def test_balance_timestamp_rules_and_stock_start(emu: EmulatorServer, session: tuple[Api, str]) -> None:
    api, token = session
    missing = api.get(BALANCES, token)
    assert missing.status_code == 400 and "timestamp" in missing.text
    for bad in ("2024-06-01", "2024-06-01 10:00:00", "01.06.2024T10:00:00"):
        r = api.get(BALANCES, token, timestamp=bad)
        assert r.status_code == 400 and r.text == f"Wrong date format: {bad}"
    start = date.fromisoformat(truth(api, "stock")["start"])
    assert start == TODAY - timedelta(days=14)
    assert balances(api, token, f"{start - timedelta(days=1)}T23:59:59") == {}
    opening = balances(api, token, f"{start}T00:00:00")
    assert opening and all(a > 0 for a, _ in opening.values())
    later = f"{TODAY + timedelta(days=9)}T10:00:00"
    assert balances(api, token, f"{TODAY}T23:59:59.000") == balances(api, token, later)
    noon = balances(api, token, f"{TODAY}T12:00:00")
    assert noon != balances(api, token, f"{TODAY}T23:59:59")
    emu.state.configure(stock_history_days=3)
    assert balances(api, token, f"{TODAY - timedelta(days=4)}T23:59:59") == {}


# ------------------------------------------------------------------ plumbing

def test_endpoint_names_faults_rights_log_and_versions(emu: EmulatorServer, session: tuple[Api, str]) -> None:
    api, token = session
    body = report(["Department"], ["DishSumInt"], TODAY, TODAY)
    emu.state.add_fault(OLAP, "http_503", count=1)
    assert post(api, token, body).status_code == 503
    assert post(api, token, body).status_code == 200
    emu.state.add_fault(SHIFTS, "truncated", count=1)
    cut = api.get(SHIFTS, token, openDateFrom=str(TODAY), openDateTo=str(TODAY), status="ANY")
    with pytest.raises(ValueError):
        cut.json()
    assert api.get(BALANCES, token, timestamp=f"{TODAY}T10:00:00").status_code == 200
    emu.state.configure(permission_denied=[BALANCES, COLUMNS])
    assert api.get(BALANCES, token, timestamp=f"{TODAY}T10:00:00").text == "Permission denied"
    assert api.get(COLUMNS, token, reportType="SALES").status_code == 403
    log = api.control("GET", "log").json()
    windows = {r["endpoint"]: r["window"] for r in log["requests"] if r["status"] == 200}
    assert windows[OLAP] == [f"{TODAY}T00:00:00.000", f"{TODAY + timedelta(days=1)}T00:00:00.000"]
    assert windows[SHIFTS] == [str(TODAY), str(TODAY)] and windows[BALANCES] == [f"{TODAY}T10:00:00"] * 2
    assert {OLAP, SHIFTS, BALANCES, COLUMNS} <= set(log["aggregates"]["by_endpoint"])
    emu.state.configure(version="4.0.0", permission_denied=[])
    assert post(api, token, body).status_code == 404 and api.get(COLUMNS, token, reportType="SALES").status_code == 404
    emu.state.configure(version="5.1.0")
    assert api.get(BALANCES, token, timestamp=f"{TODAY}T10:00:00").status_code == 404
    assert post(api, token, body).status_code == 200


def test_sales_are_deterministic_and_leave_the_existing_data_alone() -> None:
    def dataset(seed: int) -> Dataset:
        return Dataset(seed, "tiny", today=lambda: TODAY, history_days=lambda: 400)

    a, b, c = dataset(1), dataset(1), dataset(2)
    invoices_before = a.invoices(TODAY - timedelta(days=3), TODAY)
    day = TODAY - timedelta(days=3)
    orders_a = [(x.id, x.open_time, x.lines) for _, x in a.sales.orders_by_business_day(day, TODAY)]
    assert orders_a == [(x.id, x.open_time, x.lines) for _, x in b.sales.orders_by_business_day(day, TODAY)]
    assert orders_a != [(x.id, x.open_time, x.lines) for _, x in c.sales.orders_by_business_day(day, TODAY)]
    assert a.sales.shifts(day, TODAY) == b.sales.shifts(day, TODAY)
    assert a.stock.balances(datetime(2024, 6, 29, 23, 59, 59)) == b.stock.balances(datetime(2024, 6, 29, 23, 59, 59))
    assert a.invoices(day, TODAY) == invoices_before == b.invoices(day, TODAY)
    # Every dish sold is a live DISH item of the nomenclature, priced at its defaultSalePrice.
    items = {i.id: i for i in a.nomenclature.items}
    for _, order in a.sales.orders_by_business_day(day, TODAY):
        for index, portions, sum_c, _d, _c, _s in order.lines:
            item = items[a.sales.dishes[index].id]
            assert item.type == "DISH" and not item.deleted
            assert Decimal(sum_c) / 100 == item.default_sale_price * portions


@pytest.mark.parametrize(("scale", "low", "high"), [("tiny", 3, 8), ("seed", 60, 200)])
def test_orders_per_restaurant_and_day_per_scale(scale: str, low: int, high: int) -> None:
    ds = Dataset(1, scale, today=lambda: TODAY, history_days=lambda: 400)
    counts: dict[str, int] = defaultdict(int)
    for order in ds.sales.day_orders(TODAY - timedelta(days=1)):
        counts[order.department_id] += 1
    assert len(counts) == len(ds.universe.restaurants)
    assert all(low <= n <= high for n in counts.values())


@pytest.fixture(scope="module")
def seed_emu() -> Iterator[EmulatorServer]:
    cfg = EmulatorConfig(host="127.0.0.1", port=0, login=EMULATOR_LOGIN, password=EMULATOR_PASSWORD, seed=1,
                         scale="seed", seats=3, today=TODAY)
    with EmulatorServer(cfg) as server:
        yield server


def test_seed_scale_balances_answer_in_about_a_second(seed_emu: EmulatorServer) -> None:
    api = Api(seed_emu)
    token = api.login()
    try:
        started = time.perf_counter()
        cold = api.get(BALANCES, token, timestamp=f"{TODAY - timedelta(days=1)}T23:59:59")
        cold_s = time.perf_counter() - started
        started = time.perf_counter()
        warm = api.get(BALANCES, token, timestamp=f"{TODAY}T23:59:59")
        warm_s = time.perf_counter() - started
    finally:
        api.logout(token)
    assert cold.status_code == warm.status_code == 200
    rows_ = cold.json()
    assert len(rows_) > 10_000 and any(r["amount"] < 0 for r in rows_)  # a chain's stock, some negative
    # About a second on a quiet machine (a cold snapshot computes stock_history_days days); generous bounds
    # so a loaded CI runner does not fail it.
    assert cold_s < 15 and warm_s < 5, (cold_s, warm_s)


def test_seed_scale_detail_and_totals_agree(seed_emu: EmulatorServer) -> None:
    api = Api(seed_emu)
    token = api.login()
    try:
        first = last = TODAY - timedelta(days=2)
        detail = rows(api, token, report(["Department.Id", "OpenDate.Typed", "DishId", "OrderType", "PayTypes"],
                                         ["DishSumInt", "DishDiscountSumInt"], first, last))
        totals = rows(api, token, report(["Department.Id"], ["DishSumInt", "UniqOrderId.OrdersCount"], first, last))
    finally:
        api.logout(token)
    summed: dict[str, Decimal] = defaultdict(Decimal)
    for row in detail:
        summed[row["Department.Id"]] += row["DishSumInt"]
    assert {r["Department.Id"]: r["DishSumInt"] for r in totals} == dict(summed)
    assert len(totals) == 31 and all(50 <= r["UniqOrderId.OrdersCount"] <= 220 for r in totals)


@pytest.mark.parametrize("scale", ["tiny", "seed"])
def test_the_light_invoice_generator_draws_the_same_documents(scale: str) -> None:
    """Stock reads invoices through `generate_day(light=True)`: the same documents, money to the kopeck."""
    from iiko_pipeline.emulator.generator import generate_day

    ds = Dataset(1, scale, today=lambda: TODAY, history_days=lambda: 400)
    for day in (TODAY - timedelta(days=n) for n in ((0, 1, 2) if scale == "tiny" else (1,))):
        full = generate_day(ds.universe, 1, ds.scale, day)
        light = generate_day(ds.universe, 1, ds.scale, day, light=True)
        assert [(d.id, d.date_incoming, d.status, d.default_store_id,
                 [(i.store_id, i.product_id, int(i.amount * 1000), int(i.sum * 100), i.is_additional_expense)
                  for i in d.items]) for d in full] == [(a, b, c, e, f) for a, b, c, e, f in light]
