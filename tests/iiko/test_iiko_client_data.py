"""Data calls against the emulator: parsed results equal its truth, invoice windows and de-duplication,
sequential calls from several threads, TLS verification, and no secret in any error or log line."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from iiko_helpers import FAST_RETRY, Control

from iiko_pipeline.emulator import EmulatorConfig, EmulatorServer
from iiko_pipeline.iiko import ClientSettings, IikoClient, InvoiceWindow, RetryPolicy
from iiko_pipeline.iiko.client import password_hash
from iiko_pipeline.iiko.errors import IikoError, IikoTlsError, IikoTransportError
from iiko_pipeline.iiko.parsing import iter_corporate_items, iter_invoice_documents, iter_suppliers

MakeClient = Callable[..., IikoClient]


def days_back(start_back: int, length: int) -> tuple[date, date]:
    start = date.today() - timedelta(days=start_back)
    return start, start + timedelta(days=length - 1)


def test_dimensions_equal_the_emulator_truth(make_client: MakeClient, control: Control) -> None:
    with make_client() as client:
        departments = list(iter_corporate_items(client.departments().body))
        stores = list(iter_corporate_items(client.stores().body))
        suppliers = list(iter_suppliers(client.suppliers().body))
    assert {d["id"] for d in departments} == {d["id"] for d in control.truth("departments")}
    assert {s["id"] for s in stores} == {s["id"] for s in control.truth("stores")}
    assert all(s["type"] == "STORE" for s in stores)
    truth = {s["id"]: s for s in control.truth("suppliers")}
    assert {s["id"] for s in suppliers} == set(truth)
    for record in suppliers:
        assert record["name"] == truth[record["id"]]["name"]
        assert record["deleted"] == str(truth[record["id"]]["deleted"]).lower()
        assert record["employee"] in ("true", "false")  # the nested flag, not a record


def test_windowing_over_20_days_sends_three_requests(make_client: MakeClient, control: Control) -> None:
    d_from, d_to = days_back(60, 20)
    with make_client() as client:
        windows = list(client.incoming_invoice_windows(d_from, d_to))
    expected = [(d_from, d_from + timedelta(days=6)), (d_from + timedelta(days=7), d_from + timedelta(days=13)),
                (d_from + timedelta(days=14), d_to)]
    assert [(w.date_from, w.date_to) for w in windows] == expected
    assert all(isinstance(w, InvoiceWindow) and w.response.root == "incomingInvoiceDtoes" for w in windows)
    sent = [tuple(r["window"]) for r in control.requests("documents/export/incomingInvoice")]
    assert sent == [(a.isoformat(), b.isoformat()) for a, b in expected]


def test_parsed_invoices_equal_the_emulator_truth(make_client: MakeClient, control: Control) -> None:
    d_from, d_to = days_back(45, 20)
    with make_client(invoice_window_days=5) as client:
        documents = list(client.incoming_invoices(d_from, d_to))
    truth = {d["id"]: d for d in control.truth("documents", **{"from": d_from.isoformat(),
                                                               "to": d_to.isoformat()})}
    assert len(documents) == len(truth) > 0
    assert {d["id"] for d in documents} == set(truth)
    for doc in documents:
        expected = truth[doc["id"]]
        assert doc["documentNumber"] == expected["document_number"]
        assert doc["status"] == expected["status"]
        assert len(doc["items"]) == len(expected["items"])
    assert len(control.requests("documents/export/incomingInvoice")) == 4


def test_a_document_moved_between_window_requests_is_yielded_once(make_client: MakeClient,
                                                                  control: Control) -> None:
    d_from, d_to = days_back(90, 14)
    with make_client() as client:
        documents = client.incoming_invoices(d_from, d_to)
        first = next(documents)  # window 1 has been fetched, window 2 not yet
        moved_to = (d_from + timedelta(days=10)).isoformat() + "T12:00:00"
        control.patch(f"documents/{first['id']}", {"date_incoming": moved_to})
        rest = list(documents)
        second_window = control.requests("documents/export/incomingInvoice")[1]
    ids = [first["id"]] + [d["id"] for d in rest]
    assert len(ids) == len(set(ids))  # no duplicates
    assert tuple(second_window["window"]) == ((d_from + timedelta(days=7)).isoformat(), d_to.isoformat())
    # The raw second window really contained the moved document: the client dropped the repeat.
    with make_client() as client:
        raw = client.incoming_invoices_window(d_from + timedelta(days=7), d_to)
    assert first["id"] in {d["id"] for d in iter_invoice_documents(raw.body)}


def test_empty_window(make_client: MakeClient) -> None:
    far_past = date.today() - timedelta(days=3000)  # before the emulator's history
    with make_client() as client:
        assert list(client.incoming_invoices(far_past, far_past + timedelta(days=2))) == []


def test_threads_sharing_a_client_never_overlap(make_client: MakeClient, control: Control) -> None:
    control.configure(concurrency_fault="http_500")  # an overlapping request would get a 500
    errors: list[BaseException] = []
    with make_client(retry=RetryPolicy(max_attempts=1)) as client:
        def work() -> None:
            try:
                for _ in range(3):
                    client.suppliers()
                    client.departments()
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    agg = control.aggregates()
    assert agg["max_concurrency"] == 1 and agg["max_concurrency_per_token"] == 1
    assert agg["by_endpoint"]["suppliers"] == 12


# ------------------------------------------------------------------------------------------ TLS

@pytest.fixture
def tls_emulator(emulator: EmulatorServer, certificate: tuple[str, str]) -> Iterator[EmulatorServer]:
    cert, key = certificate
    cfg = EmulatorConfig(host="127.0.0.1", port=0, login=emulator.config.login,
                         password=emulator.config.password, seed=7, scale="tiny", certfile=cert, keyfile=key)
    with EmulatorServer(cfg) as emu:
        yield emu


def tls_client(emu: EmulatorServer, verify: bool | str) -> IikoClient:
    settings = ClientSettings(verify=verify, connect_timeout=2, read_timeout=5, retry=FAST_RETRY)
    return IikoClient(emu.url, emu.config.login, emu.config.password, settings=settings)


def test_tls_with_a_ca_bundle_path(tls_emulator: EmulatorServer, certificate: tuple[str, str]) -> None:
    assert tls_emulator.url.startswith("https://")
    with tls_client(tls_emulator, certificate[0]) as client:
        assert client.suppliers().root == "employees"
    assert tls_emulator.state.log.logouts == 1


def test_tls_self_signed_is_refused_by_default_without_retries(tls_emulator: EmulatorServer) -> None:
    with pytest.raises(IikoTransportError) as info:
        tls_client(tls_emulator, True).__enter__()
    err = info.value
    assert "TLS failed" in str(err) and "verify" in str(err) and not err.transient and err.attempts is None
    assert isinstance(err, IikoTlsError)  # a transport error of its own kind: the connect page names TLS by it


def test_tls_verification_off_warns_once(tls_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="iiko_pipeline.iiko")
    with pytest.warns(Warning), tls_client(tls_emulator, False) as client:  # urllib3's InsecureRequestWarning
        client.suppliers()
        client.departments()
    ours = [r for r in caplog.records if "verification is disabled" in r.getMessage()]
    assert len(ours) == 1


# -------------------------------------------------------------------------------------- secrets

def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def test_no_secret_in_any_error_or_log_line(emulator: EmulatorServer, make_client: MakeClient,
                                            control: Control, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # everything, urllib3's request lines included
    password = emulator.config.password
    secrets = {password, password_hash(password)}
    errors: list[BaseException] = []

    def expect_error(action: Callable[[], Any]) -> None:
        try:
            action()
        except IikoError as exc:
            errors.append(exc)
        else:
            raise AssertionError("an error was expected")

    with make_client(auth_method="get") as client:  # GET login: the hash is in the URL this time
        secrets.add(client._token or "")
        for kind in ("http_500", "reset", "truncated", "malformed", "html200", "http_400", "http_409"):
            control.fault("suppliers", kind, count=10)
            expect_error(client.suppliers)
            control._call("DELETE", "faults")
        control.restart()
        client.suppliers()  # 401 -> re-login with a new token
        secrets.add(client._token or "")
        expect_error(make_client(auth_method="get").__enter__)  # licence error (one seat)
    control.fault("suppliers", "slow", count=5, delay=0.5)
    retry = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)
    with make_client(auth_method="get", read_timeout=0.1, retry=retry) as client:
        secrets.add(client._token or "")
        expect_error(client.suppliers)  # read timeouts, retries exhausted
    expect_error(make_client(password="not the password", auth_method="get").__enter__)
    secrets.add(password_hash("not the password"))
    secrets.discard("")
    assert len(secrets) == 6 and len(errors) == 10
    texts = [caplog.text]
    for error in errors:
        for exc in _chain(error):
            texts += [str(exc), repr(exc), str(exc.args), str(getattr(exc, "text", ""))]
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert "key=***" in caplog.text and "pass=***" in caplog.text  # redacted, not absent


def test_reversed_range_fails_before_any_request(make_client: MakeClient, control: Control) -> None:
    with make_client() as client:
        with pytest.raises(ValueError, match="after"):
            client.incoming_invoices(date(2024, 1, 2), date(2024, 1, 1))
        with pytest.raises(ValueError, match="after"):
            client.incoming_invoice_windows(date(2024, 1, 2), date(2024, 1, 1))
    assert "documents/export/incomingInvoice" not in control.aggregates()["by_endpoint"]
