"""Streaming record parsers over composed XML from the API reference (pure, no HTTP)."""

from __future__ import annotations

import pytest
from iiko_samples import DEPARTMENTS, INVOICES, SUPPLIERS

from iiko_pipeline.iiko.errors import IikoResponseError
from iiko_pipeline.iiko.parsing import iter_corporate_items, iter_invoice_documents, iter_suppliers


def test_corporate_items_direct_children_unordered_and_empty() -> None:
    items = list(iter_corporate_items(DEPARTMENTS))
    assert [i["type"] for i in items] == ["JURPERSON", "DEPARTMENT"]
    jur, dep = items
    assert jur["code"] is None and dep["taxpayerIdNumber"] is None  # <code/> and <taxpayerIdNumber/>
    assert dep == {
        "parentId": "6f1c2b1e-0000-4000-8000-000000000001",
        "id": "6f1c2b1e-0000-4000-8000-000000000101",
        "name": "Ресторан на Тверской",
        "code": "001",
        "type": "DEPARTMENT",
        "taxpayerIdNumber": None,
    }
    assert "parentId" in jur and jur["name"] == "ООО «Ромашка»"
    # A complex child is kept as a nested dict rather than dropped.
    assert jur["jurPersonAdditionalPropertiesDto"] == {"taxpayerId": "7701234567",
                                                       "accountingReasonCode": "770101001"}


def test_suppliers_nested_employee_flag_is_a_field_not_a_record() -> None:
    suppliers = list(iter_suppliers(SUPPLIERS))
    assert len(suppliers) == 3
    assert [s["employee"] for s in suppliers] == ["false", "true", "false"]
    assert suppliers[0]["name"] == 'ООО "Овощебаза №1"'
    assert suppliers[1]["representsStore"] == "true"
    assert suppliers[1]["roleCodes"] == ["SUP", "COOK"]  # repeated without wrapper
    assert suppliers[2]["code"] is None and suppliers[2]["deleted"] == "true"
    assert "representsStore" not in suppliers[0]  # absent stays absent


def test_invoices_with_items_and_unknown_elements() -> None:
    docs = list(iter_invoice_documents(INVOICES))
    assert [d["id"] for d in docs] == ["575a43c7-0000-4000-8000-00000000d001",
                                       "575a43c7-0000-4000-8000-00000000d202"]
    first, second = docs
    assert first["invoice"] is None and first["status"] == "PROCESSED"
    assert first["futureElement"] == "kept"
    assert first["documentNumber"] == "1568" and first["incomingDocumentNumber"] == "УПД-16594"
    assert len(first["items"]) == 2
    assert first["items"][0]["price"] == "50.700000000"  # texts exactly as sent, no typing
    assert first["items"][1]["isAdditionalExpense"] == "true"
    assert "store" not in first["items"][1]
    assert second["items"] == []


def test_invoice_without_items_element() -> None:
    body = b"<incomingInvoiceDtoes><document><id>x</id></document></incomingInvoiceDtoes>"
    assert list(iter_invoice_documents(body)) == [{"id": "x", "items": []}]


def test_empty_roots() -> None:
    assert list(iter_invoice_documents(b'<?xml version="1.0"?><incomingInvoiceDtoes/>')) == []
    assert list(iter_suppliers(b"<employees>\n</employees>")) == []


def test_text_is_stripped_but_otherwise_exact() -> None:
    body = "<employees><employee><name>\n  «Вкус» &amp; Ко  </name></employee></employees>".encode()
    assert list(iter_suppliers(body)) == [{"name": "«Вкус» & Ко"}]


def test_only_direct_children_of_the_root_are_records() -> None:
    body = (b"<employees><employee><id>1</id><employee>false</employee>"
            b"<extra><employee><id>nested</id></employee></extra></employee></employees>")
    records = list(iter_suppliers(body))
    assert len(records) == 1 and records[0]["id"] == "1"
    assert records[0]["extra"] == {"employee": {"id": "nested"}}


def test_truncated_body_raises_after_the_complete_records() -> None:
    cut = INVOICES[: INVOICES.index(b"<documentNumber>1711")]
    parsed = []
    with pytest.raises(IikoResponseError) as info:
        for doc in iter_invoice_documents(cut, endpoint="documents/export/incomingInvoice"):
            parsed.append(doc)
    assert len(parsed) == 1
    assert info.value.endpoint == "documents/export/incomingInvoice" and info.value.kind == "syntax"


def test_wrong_root() -> None:
    with pytest.raises(IikoResponseError, match="unknown root element <foo>"):
        list(iter_suppliers(b"<foo><employee><id>1</id></employee></foo>"))
    with pytest.raises(IikoResponseError, match="<employees> was expected"):
        list(iter_suppliers(b"<foo/>"))


def test_many_records_stream_in_order() -> None:
    body = b"<employees>" + b"".join(b"<employee><id>%d</id></employee>" % i for i in range(5000)) + \
        b"</employees>"
    ids = [r["id"] for r in iter_suppliers(body)]
    assert ids == [str(i) for i in range(5000)]


def test_a_gzip_stream_parses_like_bytes_and_names_a_truncation(tmp_path) -> None:
    """The frame step parses raw answers straight from their gzip files: same records, same errors."""
    import gzip

    whole, cut = tmp_path / "whole.xml.gz", tmp_path / "cut.xml.gz"
    whole.write_bytes(gzip.compress(INVOICES))
    cut.write_bytes(gzip.compress(INVOICES[: INVOICES.index(b"<documentNumber>1711")]))
    with gzip.open(whole, "rb") as stream:
        assert list(iter_invoice_documents(stream)) == list(iter_invoice_documents(INVOICES))
    parsed = []
    with gzip.open(cut, "rb") as stream, pytest.raises(IikoResponseError, match="malformed or truncated"):
        parsed.extend(iter_invoice_documents(stream))
    assert len(parsed) == 1
