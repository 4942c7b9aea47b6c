"""The incoming-invoice export: shapes, date semantics, numbering, versions and determinism."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import pytest
import requests
from emulator_helpers import TIMEOUT, Api, documents, parse

TODAY = date(2024, 6, 30)
ITEM_TAGS = {"num", "product", "productArticle", "code", "amount", "actualAmount", "amountUnit", "price",
             "priceWithoutVat", "sum", "vatPercent", "vatSum", "discountSum", "store", "isAdditionalExpense"}
MONEY_TAGS = ("amount", "actualAmount", "price", "priceWithoutVat", "sum", "vatPercent", "vatSum", "discountSum")
NINE = re.compile(r"^\d+\.\d{9}$")
CENT = Decimal("0.01")


@pytest.fixture
def pinned(make_emulator):
    """A tiny emulator whose `today` is fixed, so windows and contents are reproducible."""
    with make_emulator(today=TODAY) as emu:
        api = Api(emu)
        tok = api.login()
        yield api, tok
        api.logout(tok)


def test_export_shape_statuses_decimals_and_invariants(pinned) -> None:
    api, tok = pinned
    r = api.invoices(tok, "2024-05-01", "2024-06-30")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/xml"
    root = parse(r.content)
    assert root.tag == "incomingInvoiceDtoes"
    assert {c.tag for c in root} == {"document"}
    docs = documents(root)
    assert len(docs) > 100
    assert {d["status"] for d in docs} == {"NEW", "PROCESSED", "DELETED"}
    assert sum(d["status"] == "PROCESSED" for d in docs) > len(docs) * 0.7
    assert any("comment" in d for d in docs) and any("comment" not in d for d in docs)
    assert any("dueDate" in d for d in docs) and any("dueDate" not in d for d in docs)
    assert any(d.get("invoice", "x") is None for d in docs), "some <invoice/>"
    assert any("incomingDocumentNumber" not in d for d in docs)
    assert len({tuple(c.tag for c in el) for el in root}) > 3, "element order varies per document"

    multi_store = [d for d in docs if "defaultStore" not in d and len({i["store"] for i in d["items"]}) > 1]
    assert multi_store, "documents without defaultStore and items on several stores"
    assert any(i["isAdditionalExpense"] == "true" for d in docs for i in d["items"])
    for d in docs:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", d["dateIncoming"])
        if "incomingDate" in d:
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", d["incomingDate"])
        for item in d["items"]:
            assert set(item) == ITEM_TAGS
            for tag in MONEY_TAGS:
                assert NINE.match(item[tag]), (tag, item[tag])
            amount, price, vat = Decimal(item["amount"]), Decimal(item["price"]), Decimal(item["vatPercent"])
            line_sum = Decimal(item["sum"])
            # The documented invariants hold with either rounding mode (no generated value sits on a tie).
            for mode in (ROUND_HALF_UP, ROUND_HALF_EVEN):
                assert line_sum == (amount * price).quantize(CENT, mode)
                assert Decimal(item["vatSum"]) == (line_sum * vat / (100 + vat)).quantize(CENT, mode)
                assert Decimal(item["priceWithoutVat"]) == (price * 100 / (100 + vat)).quantize(CENT, mode)
            assert Decimal(item["discountSum"]) == 0


def test_xml_agrees_with_truth(pinned) -> None:
    api, tok = pinned
    truth = api.emu.state.dataset.invoices(date(2024, 6, 1), date(2024, 6, 10))
    docs = documents(parse(api.invoices(tok, "2024-06-01", "2024-06-10").content))
    assert [d["id"] for d in docs] == [t.id for t in truth]
    for d, t in zip(docs, truth, strict=True):
        assert d["documentNumber"] == t.document_number
        assert d["status"] == t.status
        assert d["supplier"] == t.supplier_id
        assert datetime.fromisoformat(d["dateIncoming"]) == t.date_incoming
        assert d.get("defaultStore") == t.default_store_id
        assert [Decimal(i["sum"]) for i in d["items"]] == [i.sum for i in t.items]
        assert [i["store"] for i in d["items"]] == [i.store_id for i in t.items]
    assert api.emu.state.dataset.invoice(truth[0].id) == truth[0]


def test_dates_are_inclusive_and_time_part_of_to_is_ignored(pinned) -> None:
    api, tok = pinned
    one = documents(parse(api.invoices(tok, "2024-06-10", "2024-06-10").content))
    assert one and {d["dateIncoming"][:10] for d in one} == {"2024-06-10"}
    same = documents(parse(api.invoices(tok, "2024-06-10", "2024-06-10T00:00:00").content))
    assert [d["id"] for d in same] == [d["id"] for d in one]
    three = documents(parse(api.invoices(tok, "2024-06-09", "2024-06-11").content))
    assert {d["dateIncoming"][:10] for d in three} == {"2024-06-09", "2024-06-10", "2024-06-11"}
    assert len(three) == len(api.emu.state.dataset.invoices(date(2024, 6, 9), date(2024, 6, 11)))


def test_empty_ranges_and_history_bounds(pinned) -> None:
    api, tok = pinned
    empty = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<incomingInvoiceDtoes/>\n'
    assert api.invoices(tok, "2024-07-01", "2024-07-31").content == empty  # after today
    assert api.invoices(tok, "2024-06-10", "2024-06-01").content == empty  # from > to
    too_old = (TODAY - timedelta(days=401)).isoformat()
    assert api.invoices(tok, too_old, too_old).content == empty
    oldest = (TODAY - timedelta(days=400)).isoformat()
    assert parse(api.invoices(tok, oldest, oldest).content).find("document") is not None


def test_bad_and_missing_dates(pinned) -> None:
    api, tok = pinned
    r = api.invoices(tok, "2019-0513 15:26", "2024-06-01")
    assert (r.status_code, r.text) == (400, "Wrong date format: 2019-0513 15:26")
    assert r.headers["Content-Type"].startswith("text/plain")
    assert api.invoices(tok, "2024-06-01", "01.06.2024").text == "Wrong date format: 01.06.2024"
    assert api.invoices(tok, "2024-02-30", "2024-03-01").status_code == 400
    assert api.get("documents/export/incomingInvoice", tok, **{"from": "2024-06-01"}).status_code == 400
    api.emu.state.configure(missing_dates="empty")
    r = api.get("documents/export/incomingInvoice", tok)
    assert (r.status_code, parse(r.content).tag, len(parse(r.content))) == (200, "incomingInvoiceDtoes", 0)


def test_supplier_filter_is_repeatable(pinned) -> None:
    api, tok = pinned
    truth = api.emu.state.dataset.invoices(date(2024, 6, 1), date(2024, 6, 20))
    wanted = sorted({t.supplier_id for t in truth})[:2]
    r = requests.get(api.url("documents/export/incomingInvoice"), timeout=TIMEOUT,
                     params=[("key", tok), ("from", "2024-06-01"), ("to", "2024-06-20"),
                             ("supplierId", wanted[0]), ("supplierId", wanted[1].upper())])
    docs = documents(parse(r.content))
    assert {d["supplier"] for d in docs} == set(wanted)
    assert len(docs) == sum(t.supplier_id in wanted for t in truth)


def test_document_numbers_restart_every_year(pinned) -> None:
    api, tok = pinned
    this_year = date(2024, 1, 1) + timedelta(days=159)  # day 160 of 2024
    last_year = date(2023, 1, 1) + timedelta(days=159)  # day 160 of 2023
    now = documents(parse(api.invoices(tok, this_year.isoformat(), this_year.isoformat()).content))
    then = documents(parse(api.invoices(tok, last_year.isoformat(), last_year.isoformat()).content))
    repeated = {d["documentNumber"] for d in now} & {d["documentNumber"] for d in then}
    assert repeated
    assert not {d["id"] for d in now} & {d["id"] for d in then}

    number = sorted(repeated)[0]
    path = "documents/export/incomingInvoice/byNumber"
    both = documents(parse(api.get(path, tok, number=number, currentYear="false", **{
        "from": "2023-01-01", "to": "2024-12-31"}).content))
    assert sorted(d["dateIncoming"][:4] for d in both) == ["2023", "2024"]
    current = documents(parse(api.get(path, tok, number=number, currentYear="true").content))
    assert [d["dateIncoming"][:4] for d in current] == ["2024"]
    assert api.get(path, tok, number=number, currentYear="true", **{"from": "2024-01-01"}).status_code == 400
    assert api.get(path, tok, number=number, currentYear="false").status_code == 400
    assert api.get(path, tok, number=number).status_code == 400


def test_version_and_offset_switches(pinned) -> None:
    api, tok = pinned
    api.control("POST", "config", json={"version": "7.5.0", "date_offset": "+03:00"})
    docs = documents(parse(api.invoices(tok, "2024-06-01", "2024-06-05").content))
    assert all(d["dateIncoming"].endswith("+03:00") for d in docs)
    with_date = [d["incomingDate"] for d in docs if "incomingDate" in d]
    assert with_date and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}T00:00:00", v) for v in with_date)
    assert all("distributionAlgorithm" not in d or d["distributionAlgorithm"] for d in docs)


def test_large_bodies_are_chunked_small_ones_have_length(pinned) -> None:
    api, tok = pinned
    big = api.invoices(tok, "2024-03-01", "2024-06-30")
    assert big.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in big.headers
    assert len(parse(big.content)) > 300
    small = api.invoices(tok, "2024-06-30", "2024-06-30")
    assert "Content-Length" in small.headers


def test_same_seed_same_bytes_other_seed_other_bytes(make_emulator) -> None:
    def grab(seed: int) -> list[bytes]:
        with make_emulator(seed=seed, today=TODAY) as emu:
            api = Api(emu)
            tok = api.login()
            try:
                return [api.invoices(tok, "2024-06-01", "2024-06-07").content,
                        api.get("suppliers", tok).content, api.get("corporation/departments", tok).content]
            finally:
                api.logout(tok)

    first, again, other = grab(7), grab(7), grab(8)
    assert first == again
    assert all(a != b for a, b in zip(first, other, strict=True))
