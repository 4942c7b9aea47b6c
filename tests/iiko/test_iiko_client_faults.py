"""Retries, their bounds, and the failures that must not be retried (faults injected by the emulator)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from iiko_helpers import Control

from iiko_pipeline.iiko import IikoClient, RetryPolicy
from iiko_pipeline.iiko.errors import (
    IikoApiError,
    IikoBadRequestError,
    IikoResponseError,
    IikoTransportError,
)
from iiko_pipeline.iiko.parsing import iter_suppliers

MakeClient = Callable[..., IikoClient]


def supplier_names(control: Control) -> set[str]:
    return {s["name"] for s in control.truth("suppliers")}


@pytest.mark.parametrize("kind", ["http_500", "http_502", "http_503", "http_504", "reset", "truncated",
                                  "malformed", "wrong_charset"])
def test_transient_faults_are_retried_and_seats_stay_balanced(kind: str, make_client: MakeClient,
                                                              control: Control) -> None:
    control.fault("suppliers", kind, count=2)
    with make_client() as client:
        response = client.suppliers()
    assert {s["name"] for s in iter_suppliers(response.body)} == supplier_names(control)
    records = control.requests("suppliers")
    assert [r["fault"] for r in records] == [kind, kind, None]
    agg = control.aggregates()
    assert agg["logins"] == agg["logouts"] == 1 and agg["active_tokens"] == 0
    assert agg["max_concurrency_per_token"] == 1


@pytest.mark.parametrize("kind", ["bom"])
def test_harmless_variations_are_parsed_without_retry(kind: str, make_client: MakeClient,
                                                      control: Control) -> None:
    control.fault("suppliers", kind, count=1)
    with make_client() as client:
        response = client.suppliers()
    assert {s["name"] for s in iter_suppliers(response.body)} == supplier_names(control)
    assert len(control.requests("suppliers")) == 1


def test_charset_in_content_type_and_no_gzip(make_client: MakeClient, control: Control) -> None:
    control.configure(charset_in_content_type=True, gzip=False)
    with make_client() as client:
        response = client.suppliers()
    assert response.content_type == "application/xml;charset=UTF-8"
    assert {s["name"] for s in iter_suppliers(response.body)} == supplier_names(control)


def test_wrong_charset_persisting_is_refused_not_turned_into_mojibake(make_client: MakeClient,
                                                                       control: Control) -> None:
    # CP1251 bytes under an XML declaration that says UTF-8: parsing from bytes detects it; guessing
    # another encoding would store mojibake.
    control.fault("suppliers", "wrong_charset", count=10)
    with make_client(retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)) as client, \
            pytest.raises(IikoResponseError) as info:
        client.suppliers()
    err = info.value
    assert err.endpoint == "suppliers" and err.status == 200 and err.attempts == 2
    assert "encoding" in str(err) and "line" in str(err)


def test_html_page_with_200_is_a_transport_error_and_not_retried(make_client: MakeClient,
                                                                  control: Control) -> None:
    control.fault("suppliers", "html200", count=5)
    with make_client() as client, pytest.raises(IikoTransportError) as info:
        client.suppliers()
    err = info.value
    assert err.status == 200 and err.endpoint == "suppliers" and not err.transient
    assert "got an HTML page, not an API answer: check the base URL / proxy" in str(err)
    assert len(control.requests("suppliers")) == 1
    assert control.aggregates()["logouts"] == 1


def test_wrong_content_type_is_a_response_error(make_client: MakeClient, control: Control) -> None:
    control.fault("corporation/departments", "wrong_content_type", count=5)
    with make_client() as client, pytest.raises(IikoResponseError) as info:
        client.departments()
    assert info.value.kind == "content_type" and "application/octet-stream" in str(info.value)
    assert len(control.requests("corporation/departments")) == 1


def test_persistent_malformed_xml_names_endpoint_status_and_what(make_client: MakeClient,
                                                                 control: Control) -> None:
    control.fault("corporation/stores", "malformed", count=10)
    with make_client(retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01)) as client, \
            pytest.raises(IikoResponseError) as info:
        client.stores()
    err = info.value
    text = str(err)
    assert err.endpoint == "corporation/stores" and err.status == 200 and err.attempts == 3
    assert text.startswith("corporation/stores (HTTP 200): ")
    assert "malformed or truncated at line" in text and "column" in text and "<corporateItemDtoes>" in text
    assert "gave up after 3 attempts" in text
    assert len(control.requests("corporation/stores")) == 3


def test_retries_are_bounded_by_attempts(make_client: MakeClient, control: Control) -> None:
    control.fault("suppliers", "http_503", count=100)
    with make_client(retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01)) as client, \
            pytest.raises(IikoApiError) as info:
        client.suppliers()
    err = info.value
    assert err.status == 503 and err.attempts == 3 and err.transient
    assert "Service Unavailable" in err.text and "gave up after 3 attempts" in str(err)
    assert len(control.requests("suppliers")) == 3
    agg = control.aggregates()
    assert agg["logins"] == agg["logouts"] == 1


def test_retries_are_bounded_by_total_time(make_client: MakeClient, control: Control) -> None:
    control.fault("suppliers", "http_500", count=1000)
    policy = RetryPolicy(max_attempts=1000, base_delay=0.05, max_delay=0.1, max_total=0.6)
    with make_client(retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(IikoApiError) as info:
            client.suppliers()
        elapsed = time.monotonic() - started
    assert elapsed < policy.max_total + 1.0  # the budget plus at most one in-flight attempt (and slack)
    attempts = info.value.attempts
    assert attempts is not None and 2 <= attempts < 1000
    assert len(control.requests("suppliers")) == attempts
    # the body (a Java stack trace) is never echoed; a known kind is named in fixed words
    assert "java.net" not in str(info.value) and info.value.text == "a Java exception (see the iiko server log)"


def test_slow_first_byte_times_out_and_is_retried(make_client: MakeClient, control: Control) -> None:
    control.fault("suppliers", "slow", count=1, delay=2.0)
    with make_client(read_timeout=0.3) as client:
        started = time.monotonic()
        response = client.suppliers()
        assert time.monotonic() - started < 1.5  # gave up on the first answer instead of waiting 2 s
    assert response.root == "employees"
    assert [r["fault"] for r in control.requests("suppliers")] == ["slow", None]


def test_read_timeouts_exhaust_into_a_transport_error(make_client: MakeClient, control: Control) -> None:
    control.fault("suppliers", "slow", count=5, delay=1.0)
    with make_client(read_timeout=0.2, retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)) \
            as client, pytest.raises(IikoTransportError) as info:
        client.suppliers()
    err = info.value
    assert err.status is None and err.attempts == 2 and "read timeout" in str(err)
    assert err.__cause__ is None and err.__context__ is None


def test_bad_request_is_not_retried(make_client: MakeClient, control: Control) -> None:
    control.fault("suppliers", "http_400", count=5)
    with make_client() as client, pytest.raises(IikoBadRequestError) as info:
        client.suppliers()
    assert info.value.status == 400 and "HTTP 400" in str(info.value)
    assert "must not be null" not in str(info.value) + info.value.text  # an unknown body is never echoed
    assert len(control.requests("suppliers")) == 1


def test_wrong_date_format_is_a_bad_request(make_client: MakeClient, control: Control) -> None:
    # The public API only sends dates it formatted itself; go one level down to send a broken one.
    with make_client() as client, pytest.raises(IikoBadRequestError) as info:
        client._xml("documents/export/incomingInvoice", "incomingInvoiceDtoes", "document",
                    (("from", "2024-13-01"), ("to", "2024-0513")))
    err = info.value
    assert "iiko said: Wrong date format" in str(err) and "retrying will not help" in str(err)
    assert len(control.requests("documents/export/incomingInvoice")) == 1


def test_conflict_409_is_an_api_error_by_status_without_the_text(make_client: MakeClient,
                                                                control: Control) -> None:
    control.fault("suppliers", "http_409", count=1)
    with make_client() as client, pytest.raises(IikoApiError) as info:
        client.suppliers()
    assert info.value.status == 409 and "HTTP 409" in str(info.value)
    assert "задним числом" not in str(info.value) + info.value.text  # not a known iiko text: never echoed
    assert len(control.requests("suppliers")) == 1


def test_faults_on_every_call_still_balance_seats(make_client: MakeClient, control: Control) -> None:
    for endpoint, kind in (("corporation/departments", "reset"), ("corporation/stores", "truncated"),
                           ("suppliers", "http_502"), ("documents/export/incomingInvoice", "http_500")):
        control.fault(endpoint, kind, count=1)
    for endpoint in ("suppliers", "documents/export/incomingInvoice"):
        control.fault(endpoint, "http_503", probability=0.3)  # seeded RNG: replayable
    with make_client(retry=RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.02)) as client:
        client.departments()
        client.stores()
        client.suppliers()
        list(client.incoming_invoices(*_recent_days(10)))
    agg = control.aggregates()
    assert agg["logins"] == agg["logouts"] == 1 and agg["active_tokens"] == 0


def _recent_days(n: int) -> tuple[date, date]:
    end = date.today() - timedelta(days=2)
    return end - timedelta(days=n - 1), end


def test_an_answer_past_the_parsers_safety_limits_is_refused_once_not_retried(make_client: MakeClient,
                                                                              control: Control) -> None:
    """An XML bomb (here: nesting past libxml2's depth limit) stops the parser the same way every time: it is
    bad data, not a truncated answer, so it is not retried (issue 13: it used to be, up to 12 times)."""
    control.fault("corporation/stores", "xml_bomb", count=10)
    with make_client(retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01)) as client, \
            pytest.raises(IikoResponseError) as info:
        client.stores()
    assert info.value.kind == "limit" and not info.value.transient
    assert "exceeds the parser's safety limits" in str(info.value)
    assert len(control.requests("corporation/stores")) == 1
