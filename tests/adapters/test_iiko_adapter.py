"""The iiko adapter: strict typing, the brief's field mappings, and errors that name the record."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

import pytest

from iiko_pipeline.adapters import ADAPTERS, IIKO_ADAPTER
from iiko_pipeline.adapters import values as v

GUID = "6F1C2B1E-0000-4000-8000-000000000101"


def test_registry_has_iiko_and_the_protocol_shape():
    adapter = ADAPTERS["iiko"]
    assert adapter.external_system == "iiko"
    for method in ("restaurants", "stores", "suppliers", "invoices"):
        assert callable(getattr(adapter, method))


@pytest.mark.parametrize(("raw", "expected"), [
    (GUID, GUID.lower()), ("00000000-0000-0000-0000-000000000000", None), ("", None), (None, None)])
def test_guids_are_normalised_and_all_zero_means_none(raw, expected):
    assert v.guid(raw) == expected


def test_decimals_are_exact_and_refuse_what_would_lose_digits():
    assert v.decimal("420.440000000", field_name="sum") == Decimal("420.44")
    assert v.decimal("123456789012345678.123456789", field_name="sum") == Decimal("123456789012345678.123456789")
    with pytest.raises(ValueError, match="more than 9 decimal places"):
        v.decimal("1.0000000001", field_name="sum")
    with pytest.raises(ValueError, match="'1,5' is not a number"):
        v.decimal("1,5", field_name="amount")
    with pytest.raises(ValueError, match="not a finite"):
        v.decimal("NaN", field_name="price")


@pytest.mark.parametrize("raw", [
    "0", "-0.000000000", "420.440000000", "1.5", "12345678901234567890.1", "+1.5", "1E+2", " 7.25 ", "1.10000000000"])
def test_decimal_fast_path_gives_what_the_general_path_gives(raw):
    """The regex fast path for plain decimals must not change a value (items_hash depends on it)."""
    assert v.decimal(raw, field_name="sum") == Decimal(raw.strip())
    assert str(v.decimal(raw, field_name="sum")) == str(Decimal(raw.strip()))


@pytest.mark.parametrize("raw", [GUID, GUID.upper(), "{" + GUID + "}", GUID.replace("-", ""), "urn:uuid:" + GUID])
def test_guid_fast_path_gives_what_the_general_path_gives(raw):
    assert v.guid(raw) == str(uuid.UUID(raw))


def test_guid_refuses_what_is_not_a_guid():
    with pytest.raises(ValueError, match="store 'g0000000-0000-0000-0000-000000000000' is not a GUID"):
        v.guid("g0000000-0000-0000-0000-000000000000", field_name="store")
    with pytest.raises(ValueError, match="all-zero"):
        v.guid("00000000-0000-0000-0000-000000000000", field_name="id", required=True)


@pytest.mark.parametrize(("raw", "when", "offset"), [
    ("2024-03-01T10:15:00", datetime(2024, 3, 1, 10, 15), None),
    ("2024-03-01T10:15:00+03:00", datetime(2024, 3, 1, 10, 15), "+03:00"),
    ("2024-03-01T10:15:00.250+0500", datetime(2024, 3, 1, 10, 15, 0, 250000), "+05:00"),
    ("2024-03-01", datetime(2024, 3, 1), None),
    ("01.03.2024", datetime(2024, 3, 1), None),
])
def test_dates_keep_local_time_and_offset(raw, when, offset):
    assert v.local_datetime(raw, field_name="dateIncoming") == (when, offset)


def test_booleans_are_strict():
    assert v.boolean("true", field_name="deleted") is True and v.boolean(None, field_name="x") is False
    with pytest.raises(ValueError, match="'yes' is not true/false"):
        v.boolean("yes", field_name="deleted")


def test_restaurants_are_departments_only_and_name_falls_back_to_n():
    batch = IIKO_ADAPTER.restaurants([
        {"id": GUID, "type": "DEPARTMENT", "n": "Ресторан"},
        {"id": "6f1c2b1e-0000-4000-8000-000000000001", "type": "JURPERSON", "name": "ООО"},
        {"id": "6f1c2b1e-0000-4000-8000-000000000002", "type": "STORE", "name": "Склад"},
    ])
    assert [(r["external_id"], r["name"]) for r in batch.rows] == [(GUID.lower(), "Ресторан")]


def test_bad_records_name_themselves_and_do_not_stop_the_batch():
    batch = IIKO_ADAPTER.invoices([
        {"id": "575a43c7-0000-4000-8000-00000000d001", "documentNumber": "1568", "dateIncoming": "2024-03-01",
         "status": "PROCESSED", "items": [{"num": "1", "sum": "12,5"}]},
        {"documentNumber": "1569", "dateIncoming": "2024-03-01", "status": "NEW", "items": []},
        {"id": "575a43c7-0000-4000-8000-00000000d003", "documentNumber": "1570", "incomingDate": "2024-03-02",
         "status": "NEW", "dueDate": "2024-03-15T00:00:00", "items": [{"num": "1", "sum": "1.5"}]},
    ])
    assert len(batch.rows) == 1 and batch.rows[0]["document_date"] == date(2024, 3, 2)
    assert batch.rows[0]["due_date"] == date(2024, 3, 15)
    first, second = batch.errors
    assert "1568" in first.record and "line 1 sum '12,5' is not a number" in first.reason
    assert "1569" in second.record and "without id" in second.record and second.reason == "id is missing"


def test_suppliers_keep_deleted_and_internal_flags():
    batch = IIKO_ADAPTER.suppliers([
        {"id": GUID, "name": 'ООО "Овощебаза"', "deleted": "true", "employee": "false"},
        {"id": "47c6accc-0000-4000-8000-00000000c002", "name": "Ресторан: Склад", "representsStore": "true",
         "representedStoreId": "1239D270-0000-4000-8000-00000000A001"},
    ])
    deleted, internal = batch.rows
    assert deleted["is_deleted"] is True and deleted["represents_store"] is False
    assert internal["represents_store"] is True
    assert internal["represented_store_external_id"] == "1239d270-0000-4000-8000-00000000a001"
