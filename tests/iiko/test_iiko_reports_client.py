"""Issue 15, client slice: OLAP v2 sales, stock balance snapshots and cash shifts through `IikoClient` against the
emulator (real HTTP): the fixed request bodies, the window iterators (boundaries, half-open OLAP ranges, one
request per window), the raw answers kept, and typed errors for refusals and for answers that are not reports."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from iiko_helpers import TIMEOUT, Control

from iiko_pipeline.iiko import (
    ClientSettings,
    DateWindow,
    IikoClient,
    IikoJsonResponse,
    IikoNotAvailableError,
    InvoiceWindow,
    RetryPolicy,
)
from iiko_pipeline.iiko import olap as bodies
from iiko_pipeline.iiko.answers import by_department, json_items, olap_answer
from iiko_pipeline.iiko.client import password_hash
from iiko_pipeline.iiko.errors import IikoApiError, IikoBadRequestError, IikoResponseError, IikoTransportError
from iiko_pipeline.iiko.parsing import iter_department_items, iter_json_items, iter_olap_rows
from iiko_pipeline.iiko.transport import RawAnswer
from tests.conftest import EMULATOR_PASSWORD

MakeClient = Callable[..., IikoClient]
OLAP = "v2/reports/olap"
BALANCES = "v2/reports/balance/stores"
SHIFTS = "v2/cashshifts/list"


def _today(emulator: Any) -> date:
    return emulator.state.config.effective_today()


def _windows(control: Control, endpoint: str) -> list[tuple[str, str]]:
    return [tuple(r["window"]) for r in control.requests(endpoint)]


def _direct(url: str, method: str, path: str, **kwargs: Any) -> bytes:
    """The same answer fetched by hand with a token of its own (logged out after)."""
    with requests.Session() as http:
        token = http.get(f"{url}/resto/api/auth", timeout=TIMEOUT, params={
            "login": "etl_user", "pass": password_hash(EMULATOR_PASSWORD)}).text
        try:
            params = {**kwargs.pop("params", {}), "key": token}
            return http.request(method, f"{url}/resto/api/{path}", params=params, timeout=TIMEOUT, **kwargs).content
        finally:
            http.get(f"{url}/resto/api/logout", params={"key": token}, timeout=TIMEOUT)


# ------------------------------------------------------------------ the fixed bodies (pure)

def test_the_request_bodies_are_the_documented_ones() -> None:
    filters = {
        "OpenDate.Typed": {"filterType": "DateRange", "periodType": "CUSTOM", "from": "2025-03-18T00:00:00.000",
                           "to": "2025-03-25T00:00:00.000", "includeLow": True, "includeHigh": False},
        "DeletedWithWriteoff": {"filterType": "IncludeValues", "values": ["NOT_DELETED"]},
        "OrderDeleted": {"filterType": "IncludeValues", "values": ["NOT_DELETED"]},
    }
    assert bodies.sales_detail_request(date(2025, 3, 18), date(2025, 3, 24)) == {
        "reportType": "SALES", "buildSummary": False,
        "groupByRowFields": ["Department.Id", "OpenDate.Typed", "DishId", "OrderType", "PayTypes"],
        "groupByColFields": [],
        "aggregateFields": ["DishAmountInt", "DishSumInt", "DishDiscountSumInt", "ProductCostBase.ProductCost"],
        "filters": filters}
    assert bodies.sales_totals_request(date(2025, 3, 18), date(2025, 3, 24)) == {
        "reportType": "SALES", "buildSummary": False, "groupByRowFields": ["Department.Id", "OpenDate.Typed"],
        "groupByColFields": [], "aggregateFields": ["UniqOrderId.OrdersCount", "DishSumInt", "DishDiscountSumInt"],
        "filters": filters}
    one_day = bodies.sales_totals_request(date(2024, 12, 31), date(2024, 12, 31))["filters"]["OpenDate.Typed"]
    assert (one_day["from"], one_day["to"]) == ("2024-12-31T00:00:00.000", "2025-01-01T00:00:00.000")
    assert bodies.sales_detail_request(datetime(2025, 3, 18, 15, 30), date(2025, 3, 18))["filters"][
        "OpenDate.Typed"]["from"] == "2025-03-18T00:00:00.000"
    with pytest.raises(ValueError):
        bodies.sales_detail_request(date(2025, 3, 19), date(2025, 3, 18))
    assert json.loads(json.dumps(bodies.sales_detail_request(date(2025, 3, 18), date(2025, 3, 18))))  # plain JSON
    assert len(bodies.SALES_DETAIL_GROUPS) <= 7  # the docs' recommendation
    assert bodies.open_date("2025-03-18T00:00:00") == date(2025, 3, 18) == bodies.open_date("2025-03-18")
    with pytest.raises(ValueError):
        bodies.open_date("18.03")


def test_settings_and_the_window_type() -> None:
    assert ClientSettings().report_window_days == 7
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            ClientSettings(report_window_days=bad)  # type: ignore[arg-type]
    assert InvoiceWindow is DateWindow


# ------------------------------------------------------------------ OLAP

def test_olap_answers_the_data_rows_exactly_and_keeps_the_raw_body(make_client: MakeClient, emulator: Any) -> None:
    today = _today(emulator)
    body = bodies.sales_totals_request(today - timedelta(days=6), today)
    with make_client() as client:
        answer = client.olap(body)
    assert isinstance(answer, IikoJsonResponse)
    assert (answer.endpoint, answer.status, answer.content_type) == (OLAP, 200, "application/json")
    assert list(answer.items) == json.loads(answer.body, parse_float=Decimal, parse_int=Decimal)["data"]
    assert answer.body == _direct(emulator.url, "POST", OLAP, json=body)
    assert len(answer.items) == 2 * 7
    for row in answer.items:
        assert set(row) == {"Department.Id", "OpenDate.Typed", "UniqOrderId.OrdersCount", "DishSumInt",
                            "DishDiscountSumInt"}
        assert all(isinstance(row[k], Decimal) for k in bodies.SALES_TOTALS_AGGREGATES)
        assert today - timedelta(days=6) <= bodies.open_date(row["OpenDate.Typed"]) <= today
    assert list(iter_olap_rows(answer.body)) == list(answer.items)
    assert list(iter_olap_rows(io.BytesIO(answer.body), endpoint=OLAP)) == list(answer.items)


def test_sales_windows_are_half_open_one_request_each_and_cover_the_range(make_client: MakeClient,
                                                                         control: Control, emulator: Any) -> None:
    today = _today(emulator)
    first = today - timedelta(days=9)
    with make_client(report_window_days=3) as client:
        detail = list(client.sales_windows(first, today))
        totals = list(client.sales_total_windows(first, today))
        whole = client.olap(bodies.sales_totals_request(first, today))
    expected = [(first + timedelta(days=n), min(first + timedelta(days=n + 2), today)) for n in (0, 3, 6, 9)]
    assert [(w.date_from, w.date_to) for w in detail] == expected == [(w.date_from, w.date_to) for w in totals]
    sent = _windows(control, OLAP)
    assert sent[:4] == [(f"{a}T00:00:00.000", f"{b + timedelta(days=1)}T00:00:00.000") for a, b in expected]
    for window in detail:
        assert isinstance(window, DateWindow) and window.response.endpoint == OLAP
        assert {bodies.open_date(r["OpenDate.Typed"]) for r in window.response.items} == \
            {window.date_from + timedelta(days=n) for n in range((window.date_to - window.date_from).days + 1)}
        assert set(window.response.items[0]) == {*bodies.SALES_DETAIL_GROUPS, *bodies.SALES_DETAIL_AGGREGATES}
    # The windows' totals together are exactly the one-request answer (no day twice, none missing).
    assert sorted((r["Department.Id"], r["OpenDate.Typed"]) for w in totals for r in w.response.items) == \
        sorted((r["Department.Id"], r["OpenDate.Typed"]) for r in whole.items)
    assert sum(r["DishSumInt"] for w in totals for r in w.response.items) == sum(r["DishSumInt"] for r in whole.items)
    assert sum(r["DishSumInt"] for w in detail for r in w.response.items) == \
        sum(r["DishSumInt"] for r in whole.items)
    agg = control.aggregates()
    assert agg["logins"] == agg["logouts"] == 1 and agg["max_concurrency_per_token"] == 1


def test_window_iterators_check_the_range_at_once(make_client: MakeClient, control: Control) -> None:
    with make_client() as client:
        for method in (client.sales_windows, client.sales_total_windows, client.balance_snapshots,
                       client.cash_shift_windows):
            with pytest.raises(ValueError):
                method(date(2024, 6, 2), date(2024, 6, 1))
    assert not control.requests(OLAP) and not control.requests(BALANCES) and not control.requests(SHIFTS)


def test_olap_refusals_are_typed_errors_with_iikos_text(make_client: MakeClient, control: Control,
                                                       emulator: Any) -> None:
    today = _today(emulator)
    no_date = bodies.sales_totals_request(today, today)
    del no_date["filters"]["OpenDate.Typed"]
    bad_date = bodies.sales_totals_request(today, today)
    bad_date["filters"]["OpenDate.Typed"]["from"] = "2024-0513 15:26"
    with make_client() as client:
        with pytest.raises(IikoBadRequestError) as missing:
            client.olap(no_date)
        with pytest.raises(IikoBadRequestError) as wrong:
            client.olap(bad_date)
        with pytest.raises(IikoBadRequestError) as unknown:
            client.olap({**no_date, "groupByRowFields": ["Order.Id"]})
        control.fault(OLAP, "http_409", count=1)
        with pytest.raises(IikoApiError) as conflict:
            client.olap(bodies.sales_totals_request(today, today))
    assert missing.value.status == 400 and "iiko said: Date filter is required" in str(missing.value)
    assert "retrying will not help" in str(missing.value)
    assert "iiko said: Wrong date format" in str(wrong.value)
    assert "iiko said: Unknown OLAP field" in str(unknown.value)
    assert conflict.value.status == 409 and not isinstance(conflict.value, IikoBadRequestError)
    assert len(control.requests(OLAP)) == 4  # none of them retried


@pytest.mark.parametrize(("kind", "error", "detail"), [
    ("html200", IikoTransportError, "HTML page"),
    ("wrong_content_type", IikoResponseError, "content_type"),
    ("truncated", IikoResponseError, "syntax"),
    ("malformed", IikoResponseError, "syntax"),
])
def test_an_answer_that_is_not_a_report_is_a_typed_error(make_client: MakeClient, control: Control, emulator: Any,
                                                         kind: str, error: type[Exception], detail: str) -> None:
    today = _today(emulator)
    control.fault(OLAP, kind, count=20)
    control.fault(SHIFTS, kind, count=20)
    with make_client(retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)) as client:
        for call in (lambda: client.olap(bodies.sales_totals_request(today, today)),
                     lambda: client.cash_shifts(today, today)):
            with pytest.raises(error) as info:  # type: ignore[call-overload]
                call()
            if isinstance(info.value, IikoResponseError):
                assert info.value.kind == detail
            else:
                assert detail in str(info.value)
            assert "key=" not in str(info.value) or "key=***" in str(info.value)


def test_a_truncated_answer_is_retried(make_client: MakeClient, control: Control, emulator: Any) -> None:
    today = _today(emulator)
    control.fault(OLAP, "truncated", count=1)
    with make_client() as client:
        answer = client.olap(bodies.sales_totals_request(today, today))
    assert len(answer.items) == 2 and len(control.requests(OLAP)) == 2


def test_the_olap_answer_check_names_what_is_wrong() -> None:
    def check(body: bytes, content_type: str = "application/json") -> IikoJsonResponse:
        return olap_answer(RawAnswer(200, content_type, body, 0.1), endpoint=OLAP, display=f"POST /{OLAP}")

    good = b'{"data": [{"DishSumInt": 10.5, "UniqOrderId.OrdersCount": 3, "OpenDate.Typed": "2025-03-18T00:00:00"}],' \
           b' "summary": []}'
    answer = check(good)
    assert answer.items == ({"DishSumInt": Decimal("10.5"), "UniqOrderId.OrdersCount": Decimal(3),
                             "OpenDate.Typed": "2025-03-18T00:00:00"},)
    assert check(b'{"data": []}').items == ()
    for body, kind, words in ((b"[]", "root", "JSON array where an OLAP report object"),
                              (b'{"summary": []}', "root", 'no "data" member'),
                              (b'{"data": {}}', "root", '"data" as a JSON object'),
                              (b'{"data": [1]}', "root", "item 0 is a JSON number"),
                              (b'{"data": [], "summary": {}}', "root", '"summary" is a JSON object'),
                              (good[:40], "syntax", "malformed or truncated"),
                              (b"  ", "empty", "empty answer")):
        with pytest.raises(IikoResponseError) as info:
            check(body)
        assert info.value.kind == kind and words in str(info.value), (body, str(info.value))
        with pytest.raises(IikoResponseError):
            list(iter_olap_rows(body))
    with pytest.raises(IikoResponseError) as wrong:
        check(good, "text/plain")
    assert wrong.value.kind == "content_type"
    assert json.loads(good)["data"][0]["DishSumInt"] == 10.5  # the body itself is untouched


# ------------------------------------------------------------------ balances

def test_balance_snapshots_one_per_day_at_its_last_second(make_client: MakeClient, control: Control,
                                                          emulator: Any) -> None:
    today = _today(emulator)
    with make_client() as client:
        snapshots = list(client.balance_snapshots(today - timedelta(days=2), today))
        noon = client.store_balances(datetime.combine(today, datetime.min.time()).replace(hour=12))
        with pytest.raises(TypeError):
            client.store_balances(today)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            client.store_balances(datetime.now(UTC))
    days = [today - timedelta(days=n) for n in (2, 1, 0)]
    assert [(w.date_from, w.date_to) for w in snapshots] == [(d, d) for d in days]
    assert _windows(control, BALANCES) == [(f"{d}T23:59:59", f"{d}T23:59:59") for d in days] + \
        [(f"{today}T12:00:00", f"{today}T12:00:00")]
    for window in snapshots:
        answer = window.response
        assert isinstance(answer, IikoJsonResponse) and answer.endpoint == BALANCES and answer.items
        assert answer.body == _direct(emulator.url, "GET", BALANCES,
                                      params={"timestamp": f"{window.date_from}T23:59:59"})
        assert list(iter_json_items(answer.body)) == list(answer.items)
        for row in answer.items:
            assert set(row) == {"store", "product", "amount", "sum"}
            assert row["amount"] != 0 or row["sum"] != 0
            assert isinstance(row["amount"], int | Decimal) and isinstance(row["sum"], int | Decimal)
    assert noon.items != snapshots[-1].response.items


# ------------------------------------------------------------------ cash shifts

def test_cash_shift_windows_and_revision(make_client: MakeClient, control: Control, emulator: Any) -> None:
    today = _today(emulator)
    first = today - timedelta(days=9)
    with make_client(report_window_days=4) as client:
        windows = list(client.cash_shift_windows(first, today))
        assert [(w.date_from, w.date_to) for w in windows] == [
            (first, first + timedelta(days=3)), (first + timedelta(days=4), first + timedelta(days=7)),
            (first + timedelta(days=8), today)]
        departments = client.department_ids()
        assert len(departments) == 2
        # one request per window and department: a shift does not name its department, the request does
        assert _windows(control, SHIFTS) == [(str(w.date_from), str(w.date_to)) for w in windows
                                             for _ in departments]
        assert [len(w.response.items) for w in windows] == [8, 8, 4]  # two restaurants, a shift a day each
        truth = {s.id: s.department_id for s in emulator.state.dataset.sales.shifts(first, today)}  # each as asked
        assert {s["id"]: s["departmentId"] for w in windows for s in w.response.items} == truth
        assert all("departmentId" not in s for s in client.cash_shifts(first, today).items)  # iiko's own shape
        for window in windows:
            opened = {date.fromisoformat(s["openDate"][:10]) for s in window.response.items}
            assert opened == {window.date_from + timedelta(days=n)
                              for n in range((window.date_to - window.date_from).days + 1)}
        assert windows[-1].response.items[-1]["sessionStatus"] == "OPEN"
        # revisionFrom: only the shifts changed after that revision (a late night touches two of them).
        department = emulator.state.dataset.sales.profiles[0].department_id
        control._call("POST", "sales/late_shift", {"department": department,
                                                   "date": str(today - timedelta(days=3)), "until": "14:00:00"})
        revision = emulator.state.dataset.revision
        changed = client.cash_shifts(first, today, revision_from=revision - 1)
        assert {s["openDate"][:10] for s in changed.items} == {str(today - timedelta(days=4)),
                                                               str(today - timedelta(days=3))}
        assert client.cash_shifts(first, today, revision_from=revision).items == ()
        answer = client.cash_shifts(today, today)
    assert answer.body == _direct(emulator.url, "GET", SHIFTS, params={
        "openDateFrom": str(today), "openDateTo": str(today), "status": "ANY"})
    assert all(isinstance(s["payOrders"], int | Decimal) for s in answer.items)


def test_old_servers_answer_not_available(make_client: MakeClient, control: Control, emulator: Any) -> None:
    today = _today(emulator)
    control.configure(version="4.0.5")
    with make_client() as client:
        with pytest.raises(IikoNotAvailableError):
            client.olap(bodies.sales_totals_request(today, today))
        with pytest.raises(IikoNotAvailableError):
            client.store_balances(datetime.combine(today, datetime.max.time()).replace(microsecond=0))
        control.configure(version="5.1.0")
        assert client.olap(bodies.sales_totals_request(today, today)).items
        with pytest.raises(IikoNotAvailableError):
            list(client.balance_snapshots(today, today))
    assert len(control.requests(BALANCES)) == 2  # not retried


# ------------------------------------------------------------------ answers asked department by department


def _shift_answer(items: list[dict[str, Any]], charset: str = "utf-8") -> IikoJsonResponse:
    body = json.dumps(items, ensure_ascii=False).encode(charset)
    decoded = json_items(body.decode(charset), endpoint="v2/cashshifts/list", display="test")  # as the client does
    return IikoJsonResponse(endpoint="v2/cashshifts/list", status=200,
                            content_type=f"application/json; charset={charset}", body=body, items=decoded)


def test_by_department_keeps_each_answer_verbatim_and_tags_its_records() -> None:
    first = _shift_answer([{"id": "S1", "cashDiff": 1.10, "pointOfSale": "Касса 1"}])
    second = _shift_answer([{"id": "S2", "cashDiff": -0.5}, {"id": "S3", "departmentId": "D9"}], "windows-1251")
    combined = by_department("v2/cashshifts/list", [("D1", first), ("D2", second), ("D3", _shift_answer([]))])
    assert first.body in combined.body  # what iiko said, byte for byte, inside the envelope
    assert [(i["id"], i["departmentId"]) for i in combined.items] == [("S1", "D1"), ("S2", "D2"), ("S3", "D9")]
    assert combined.items[1]["cashDiff"] == Decimal("-0.5") and combined.items[0]["pointOfSale"] == "Касса 1"
    assert list(iter_department_items(io.BytesIO(combined.body))) == list(combined.items)
    assert by_department("v2/cashshifts/list", []).items == ()


def test_a_shift_answered_for_two_departments_gets_neither() -> None:
    """A server that ignores the departmentId filter answers every shift for every department: no shift may
    then be given the first department asked."""
    answer = _shift_answer([{"id": "S1"}, {"id": "S2"}])
    combined = by_department("v2/cashshifts/list", [("D1", answer), ("D2", answer)])
    assert [i["departmentId"] for i in combined.items] == [None] * 4


@pytest.mark.parametrize("body, found", [
    (b'{"departmentId": "D1"}', "JSON object where an array"),
    (b'[{"departmentId": "D1"}]', "part 0 has no answer array"),
    (b'[{"departmentId": "D1", "answer": [1]}]', "item 0 is a JSON number"),
    (b'[{"departmentId": "D1", "answer": [', "truncated"),
])
def test_a_broken_department_envelope_is_refused_saying_what_is_wrong(body: bytes, found: str) -> None:
    with pytest.raises(IikoResponseError) as caught:
        list(iter_department_items(io.BytesIO(body), endpoint="v2/cashshifts/list"))
    assert found in str(caught.value) and "v2/cashshifts/list" in str(caught.value)
