"""Invoice lines typed column by column give what the per-value path gives: the same values, the same order, the
same rejected invoices with the same words; and the lines' digest depends on their values only."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from iiko_pipeline.adapters import IIKO_ADAPTER
from iiko_pipeline.adapters import invoice_lines as lines
from iiko_pipeline.adapters.records import record_id
from iiko_pipeline.emulator import render
from iiko_pipeline.emulator.config import EmulatorConfig
from iiko_pipeline.emulator.state import EmulatorState
from iiko_pipeline.iiko.parsing import iter_invoice_documents

G1, G2, G3 = (f"6f1c2b1e-0000-4000-8000-00000000010{n}" for n in (1, 2, 3))
ZERO = "00000000-0000-0000-0000-000000000000"


def per_value(records):
    """The reference: every invoice through the per-value path (`_invoice`), as before the columns."""
    rows, children, errors = [], [], []
    for record in records:
        try:
            row, items = IIKO_ADAPTER._invoice(record)
        except ValueError as exc:
            errors.append((record_id(record), str(exc)))
            continue
        rows.append(row)
        children.extend(items)
    return rows, children, errors


def assert_same_as_per_value(records):
    batch = IIKO_ADAPTER.invoices(records)
    rows, children, errors = per_value(records)
    assert [(e.external_id, e.reason) for e in batch.errors] == errors
    assert [{k: v for k, v in row.items() if k != "items_hash"} for row in batch.rows] == rows
    assert batch.child_table.schema == lines.LINE_SCHEMA
    assert batch.children == children  # Decimal('1.5') == Decimal('1.500000000'): equal values, in order
    return batch


def invoice(ident, items, **fields):
    return {"id": ident, "documentNumber": "N-" + ident[-3:], "dateIncoming": "2024-03-01T10:00:00",
            "status": "PROCESSED", "items": items, **fields}


def line(num, **values):
    return {"num": str(num), "product": G2, "amount": "2.000000000", "sum": "10.500000000", "store": G3, **values}


def test_the_emulators_invoices_come_out_as_the_per_value_path_makes_them():
    state = EmulatorState(EmulatorConfig(seed=7, scale="tiny"))
    end = state.config.effective_today() - timedelta(days=3)
    body = "".join(render.invoice_export(state.dataset.iter_invoice_days(end - timedelta(days=6), end, None, -1),
                                         state.render_options())).encode()
    records = list(iter_invoice_documents(body))
    assert len(records) > 20 and sum(len(r["items"]) for r in records) > 50
    batch = assert_same_as_per_value(records)
    assert not batch.errors


def test_values_of_other_shapes_take_the_per_value_path_and_keep_its_answers_and_words():
    records = [
        invoice(G1, [line(1, product="{" + G2.upper() + "}", amount="+1.5", price="1E+2",
                          amountUnit=ZERO, isAdditionalExpense="TRUE")]),
        invoice("6f1c2b1e-0000-4000-8000-000000000201", [line(1), line(2, amount="1,5")]),
        invoice("6f1c2b1e-0000-4000-8000-000000000202", [line(1), line(1)]),
        invoice("6f1c2b1e-0000-4000-8000-000000000203", [line(1, sum=None)]),
        invoice("6f1c2b1e-0000-4000-8000-000000000204", [line(1, store="not-a-guid")], conception="bad"),
        invoice("6f1c2b1e-0000-4000-8000-000000000205", [line(1)], conception="bad"),
        invoice("6f1c2b1e-0000-4000-8000-000000000206", [{**line(1), "num": "x"}]),
        invoice("6f1c2b1e-0000-4000-8000-000000000207", [line(1, isAdditionalExpense="yes")]),
        invoice("6f1c2b1e-0000-4000-8000-000000000208", [line(3), line(2, discountSum="-0.000000000")]),
        {"documentNumber": "no id", "dateIncoming": "2024-03-01", "status": "NEW", "items": [line(1)]},
    ]
    batch = assert_same_as_per_value(records)
    reasons = {e.external_id: e.reason for e in batch.errors}
    assert reasons["6f1c2b1e-0000-4000-8000-000000000201"] == "line 2 amount '1,5' is not a number"
    assert reasons["6f1c2b1e-0000-4000-8000-000000000202"] == "line numbers (num) repeat within the invoice"
    assert reasons["6f1c2b1e-0000-4000-8000-000000000204"].startswith("line 1 store")  # lines before conception
    assert reasons["6f1c2b1e-0000-4000-8000-000000000205"].startswith("conception")
    first = batch.children[0]
    assert first["product_external_id"] == G2 and first["amount_unit_external_id"] is None
    assert first["price"] == Decimal(100) and first["is_additional_expense"] is True
    assert [row["external_id"] for row in batch.rows] == [G1, "6f1c2b1e-0000-4000-8000-000000000208"]


def test_a_value_that_does_not_fit_the_warehouse_rejects_its_invoice_instead_of_failing_the_window():
    batch = IIKO_ADAPTER.invoices([invoice(G1, [line(1, sum="12345678901234567890.1")]), invoice(G2, [line(1)])])
    assert [row["external_id"] for row in batch.rows] == [G2]
    (error,) = batch.errors
    assert error.external_id == G1 and "does not fit the warehouse's columns" in error.reason


def test_the_lines_digest_depends_on_their_values_only():
    def digest(items):
        return IIKO_ADAPTER.invoices([invoice(G1, items)]).rows[0]["items_hash"]

    base = digest([line(1), line(2, amount="3")])
    assert digest([line(2, amount="3.000000000"), line(1, sum="10.5")]) == base  # order and printing
    assert digest([line(1), line(2, amount="3.000000001")]) != base
    assert digest([line(1), line(2, amount="3", product=None)]) != base
    assert digest([line(1), line(2, amount="3", productArticle=" ")]) == base  # empty is absent, as per value
    assert digest([]) == lines.EMPTY_HASH


def test_a_batch_without_lines_spools_with_the_line_schema():
    batch = IIKO_ADAPTER.invoices([invoice(G1, [])])
    assert batch.child_table.num_rows == 0 and batch.child_table.schema == lines.LINE_SCHEMA
    assert IIKO_ADAPTER.invoices([]).child_table.schema == lines.LINE_SCHEMA


@pytest.mark.parametrize("kind", ["decimal", "guid", "integer", "boolean"])
def test_a_nested_value_is_left_to_the_per_value_path(kind):
    column = next(c for c, _, k, _ in lines.LINE_FIELDS if k == kind)
    tag = next(t for c, t, _, _ in lines.LINE_FIELDS if c == column)
    table, suspect = lines.fast_lines([(0, G1, [line(1)]), (1, G2, [{**line(1), tag: ["1", "2"]}])])
    assert suspect == {1} and table.column(lines.OWNER).to_pylist() == [G1]
    assert pa.types.is_decimal(table.schema.field("sum").type)



def test_nested_or_repeated_elements_reject_their_invoice_by_name_and_the_batch_goes_on():
    """The parser gives a dict for nested elements and a list for a repeated one; where iiko prints one text value
    that is a RecordError naming the field (it was an AttributeError that failed the whole window)."""
    good = invoice(G1, [line(1)])
    nested_line = invoice(G2, [line(1, sum={"x": "1"})])
    repeated_line = invoice(G3, [line(1, productArticle=["A", "B"])])
    nested_head = invoice("6f1c2b1e-0000-4000-8000-000000000104", [line(1)], comment={"p": "x"},
                          dateIncoming={"d": "1"})
    batch = assert_same_as_per_value([good, nested_line, repeated_line, nested_head])
    assert [row["external_id"] for row in batch.rows] == [G1]
    assert [e.reason for e in batch.errors] == [
        "line 1 sum holds nested elements where iiko prints one text value",
        "line 1 productArticle holds a repeated element where iiko prints one text value",
        "dateIncoming holds nested elements where iiko prints one text value",
    ]
    assert "dated {'d': '1'}" in batch.errors[2].record  # the message still names the invoice
