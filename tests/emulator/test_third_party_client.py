"""A third-party iiko Server client against the emulator, over real HTTP.

The client is PyPI `pyiiko` 0.5.0 (GitHub gadzhi/pyiiko, `Pyiiko/server.py`), pinned in the `dev` extra.
What its source says and these tests rely on:

* `IikoServer(ip=..., login=..., password=...)` logs in inside the constructor (GET `api/auth?login=&pass=`).
  `ip` is the scheme+host+port prefix; the client appends `/resto/` itself, so `emu.url` fits as is
  (nothing hard-codes https or a port).
* It does not hash: `password` must already be the lowercase hex SHA-1 of the UTF-8 password.
* Every call sends `key=<token>` as a query parameter; `quit_token()` is GET `api/logout?key=`.
* `departments()`, `suppliers()` and `invoice_in()` return bytes; `stores()` returns `str` decoded by
  `requests` (which has to guess the charset: iiko sends `application/xml` without one).
* `invoice_in(**kwargs)` forwards kwargs as query parameters, so `from` (a Python keyword) goes in
  through `**{"from": ..., "to": ...}`.
* The context manager only closes the HTTP session: it does NOT log out, so the licence seat stays taken.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from datetime import timedelta

from Pyiiko import IikoServer

from iiko_pipeline.emulator import EmulatorServer
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD

TIMEOUT = 5  # seconds, per request (the library's own default is 10)


def _pass_hash() -> str:
    return hashlib.sha1(EMULATOR_PASSWORD.encode("utf-8")).hexdigest()  # noqa: S324 - the iiko protocol


def _client(emu: EmulatorServer) -> IikoServer:
    return IikoServer(ip=emu.url, login=EMULATOR_LOGIN, password=_pass_hash(), timeout=TIMEOUT)


def _records(body: bytes | str) -> list[dict[str, str | None]]:
    """The root's direct children as {tag: text} of their direct children (suppliers nest an
    `<employee>` flag inside `<employee>`, so no `iter()`)."""
    root = ET.fromstring(body)  # noqa: S314 - our own emulator's output
    return [{c.tag: (c.text if c.text and c.text.strip() else None) for c in rec} for rec in root]


def test_pyiiko_logs_in_reads_four_endpoints_and_logs_out(emulator: EmulatorServer) -> None:
    emu = emulator
    ds = emu.state.dataset
    today = emu.config.effective_today()
    date_from, date_to = today - timedelta(days=6), today

    client = _client(emu)
    try:
        assert len(client.token()) == 36  # the plain-text token, stripped
        departments = _records(client.departments())
        stores_text = client.stores()
        suppliers = _records(client.suppliers())
        invoices = _records(client.invoice_in(**{"from": date_from.isoformat(), "to": date_to.isoformat()}))
    finally:
        client.quit_token()
        client.close()

    # corporation/departments returns every corporate node; restaurants are the DEPARTMENT ones.
    restaurants = [d for d in departments if d["type"] == "DEPARTMENT"]
    assert len(restaurants) == len(ds.restaurants()) > 0
    assert {d["id"] for d in restaurants} == {r.id for r in ds.restaurants()}
    assert {d["id"] for d in departments} == {d.id for d in ds.departments()}

    # corporation/stores: `stores()` hands back requests' guessed-charset text; the Cyrillic must survive.
    assert isinstance(stores_text, str)
    stores = _records(stores_text)
    assert len(stores) == len(ds.stores()) > 0
    assert {(s["id"], s["name"]) for s in stores} == {(s.id, s.name) for s in ds.stores()}

    assert len(suppliers) == len(ds.suppliers()) > 0
    assert {s["id"] for s in suppliers} == {s.id for s in ds.suppliers()}

    truth = ds.invoices(date_from, date_to)
    assert len(invoices) == len(truth) > 0
    assert [d["id"] for d in invoices] == [d.id for d in truth]

    log = emu.state.log
    summary = log.summary()
    assert summary["logins"] == 1
    assert summary["logouts"] == 1
    assert summary["failed_logins"] == 0
    assert summary["unauthorized"] == 0
    assert summary["active_tokens"] == 0  # the licence seat was given back
    assert summary["max_concurrency_per_token"] == 1
    assert summary["by_endpoint"] == {
        "auth": 1, "corporation/departments": 1, "corporation/stores": 1, "suppliers": 1,
        "documents/export/incomingInvoice": 1, "logout": 1,
    }
    assert log.windows == [(date_from.isoformat(), date_to.isoformat())]
    assert all(r.status == 200 for r in log.records())


def test_pyiiko_context_manager_keeps_the_seat_until_quit_token(emulator: EmulatorServer) -> None:
    """pyiiko 0.5.0's `with IikoServer(...)` closes its HTTP session but never calls `api/logout`, so a
    caller must call `quit_token()` itself. A token passed to the constructor skips the login."""
    emu = emulator
    with _client(emu) as client:
        token = client.token()
        client.suppliers()
    summary = emu.state.log.summary()
    assert (summary["logins"], summary["logouts"], summary["active_tokens"]) == (1, 0, 1)

    with IikoServer(ip=emu.url, token=token, timeout=TIMEOUT) as reused:
        reused.quit_token()
    summary = emu.state.log.summary()
    assert (summary["logins"], summary["logouts"], summary["active_tokens"]) == (1, 1, 0)
