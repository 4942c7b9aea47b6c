"""iiko Server records (as parsed by `iiko_pipeline.iiko.parsing`) -> our warehouse rows.

Input records are plain dicts of an element's direct children's text, keyed by iiko's tag names; invoices
carry `items` as a list of such dicts. Output rows use our column names and typed values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from iiko_pipeline.adapters import invoice_lines as lines
from iiko_pipeline.adapters import values as v
from iiko_pipeline.adapters.base import AdaptedBatch, RecordError, Row
from iiko_pipeline.adapters.iiko_reference import IikoReferenceAdapter
from iiko_pipeline.adapters.iiko_reports import IikoReportsAdapter
from iiko_pipeline.adapters.records import adapt as _adapt
from iiko_pipeline.adapters.records import describe as _describe
from iiko_pipeline.adapters.records import name as _name
from iiko_pipeline.adapters.records import of_type as _of_type
from iiko_pipeline.adapters.records import record_id as _record_id
from iiko_pipeline.adapters.records import shown

EXTERNAL_SYSTEM = "iiko"
#: Bump when a change here would map the same XML to different rows: it invalidates the skip of unchanged
#: invoice windows (their fingerprints include this version), so the next run rewrites them.
ADAPTER_VERSION = "1"
INVOICE_STATUSES = frozenset({"NEW", "PROCESSED", "DELETED"})

class IikoAdapter(IikoReferenceAdapter, IikoReportsAdapter):
    """Maps iiko Server records to rows; see `PosAdapter`. Products, groups, units and employees are in
    `iiko_reference`; sales, balances and cash shifts in `iiko_reports`."""

    external_system = EXTERNAL_SYSTEM

    def restaurants(self, records: Iterable[Mapping[str, Any]]) -> AdaptedBatch:
        """Restaurants are the corporate nodes of type DEPARTMENT; other node types are not restaurants."""
        def build(record: Mapping[str, Any]) -> tuple[Row, list[Row]] | None:
            if not _of_type(record, "DEPARTMENT"):
                return None
            return {
                "external_id": v.guid(record.get("id"), required=True),
                "code": v.text(record.get("code"), "code"),
                "name": _name(record),
                "parent_external_id": v.guid(record.get("parentId"), field_name="parentId"),
                "taxpayer_id": v.text(record.get("taxpayerIdNumber"), "taxpayerIdNumber"),
                "department_type": "DEPARTMENT",
            }, []

        return _adapt("restaurants", records, build, lambda r: f"department {_describe(r)}")

    def stores(self, records: Iterable[Mapping[str, Any]]) -> AdaptedBatch:
        """Stores link to their restaurant through parentId (checked against restaurants at upsert time)."""
        def build(record: Mapping[str, Any]) -> tuple[Row, list[Row]] | None:
            if not _of_type(record, "STORE", default="STORE"):
                return None
            return {
                "external_id": v.guid(record.get("id"), required=True),
                "restaurant_external_id": v.guid(record.get("parentId"), field_name="parentId"),
                "code": v.text(record.get("code"), "code"),
                "name": _name(record),
            }, []

        return _adapt("stores", records, build, lambda r: f"store {_describe(r)}")

    def suppliers(self, records: Iterable[Mapping[str, Any]]) -> AdaptedBatch:
        """Deleted and internal (representsStore) suppliers are kept as flags, not dropped."""
        def flag(record: Mapping[str, Any], tag: str) -> bool:
            return bool(v.boolean(record.get(tag), field_name=tag))

        def build(record: Mapping[str, Any]) -> tuple[Row, list[Row]]:
            return {
                "external_id": v.guid(record.get("id"), required=True),
                "code": v.text(record.get("code"), "code"),
                "name": _name(record),
                "taxpayer_id": v.text(record.get("taxpayerIdNumber"), "taxpayerIdNumber"),
                "note": v.text(record.get("note"), "note"),
                "is_deleted": flag(record, "deleted"),
                "represents_store": flag(record, "representsStore"),
                "represented_store_external_id": v.guid(record.get("representedStoreId"),
                                                        field_name="representedStoreId"),
                "is_employee": flag(record, "employee"),
                "is_client": flag(record, "client"),
            }, []

        return _adapt("suppliers", records, build, lambda r: f"supplier {_describe(r)}")

    def invoices(self, records: Iterable[Mapping[str, Any]]) -> AdaptedBatch:
        """Invoices keep every status; an invoice with one bad line is rejected whole, never stored partly.

        Each invoice's header is typed per record; the lines of the whole batch column by column
        (`invoice_lines`), into `child_table`. An invoice the columns cannot vouch for (its header failed, or a
        line holds a value of another shape) takes the per-value path, which words the error or types the value
        as it always did."""
        def describe(record: Mapping[str, Any]) -> str:
            dated = shown(record.get("dateIncoming")) or shown(record.get("incomingDate"))
            return f"invoice {_describe(record, number_key='documentNumber')} dated {dated}"

        records = list(records)
        heads: dict[int, Row] = {}
        slow: set[int] = set()
        for index, record in enumerate(records):
            try:
                heads[index] = self._invoice(record, with_items=False)[0]
            except ValueError:
                slow.add(index)  # worded below by the whole per-value path, which checks lines before some fields
        table, suspect = lines.fast_lines([(index, head["external_id"], records[index].get("items") or [])
                                           for index, head in heads.items()])
        pieces, errors = [table], {}
        for index in sorted(slow | suspect):
            try:
                head, items = self._invoice(records[index])
                pieces.append(lines.slow_lines(index, items))
                heads[index] = head
            except ValueError as exc:
                heads.pop(index, None)
                errors[index] = RecordError("invoices", _record_id(records[index]), describe(records[index]), str(exc))
        batch = AdaptedBatch(child_table=lines.assemble(pieces))
        hashes = lines.items_hashes(batch.child_table)
        for index in range(len(records)):
            if index in errors:
                batch.errors.append(errors[index])
            elif index in heads:
                heads[index]["items_hash"] = hashes.get(heads[index]["external_id"], lines.EMPTY_HASH)
                batch.rows.append(heads[index])
        return batch

    def _invoice(self, record: Mapping[str, Any], *, with_items: bool = True) -> tuple[Row, list[Row]]:
        """The per-value path: an invoice's header (and, `with_items`, its lines), typed value by value."""
        external_id = v.guid(record.get("id"), required=True)
        date_incoming, offset = v.local_datetime(record.get("dateIncoming"), field_name="dateIncoming")
        incoming_date = v.local_date(record.get("incomingDate"), field_name="incomingDate")
        document_date = date_incoming.date() if date_incoming else incoming_date
        if document_date is None:
            raise ValueError("neither dateIncoming nor incomingDate is present")
        due_date = v.local_date(record.get("dueDate"), field_name="dueDate")
        status = (v.text(record.get("status"), "status") or "").upper()
        if not status:
            raise ValueError("status is missing")
        items = [self._item(external_id, item) for item in record.get("items") or []] if with_items else []
        numbers = [item["line_number"] for item in items]
        if len(numbers) != len(set(numbers)):
            raise ValueError("line numbers (num) repeat within the invoice")
        invoice = {
            "external_id": external_id,
            "document_number": v.text(record.get("documentNumber"), "documentNumber"),
            "incoming_document_number": v.text(record.get("incomingDocumentNumber"), "incomingDocumentNumber"),
            "invoice_number": v.text(record.get("invoice"), "invoice"),
            "date_incoming": date_incoming,
            "date_incoming_offset": offset,
            "document_date": document_date,
            "incoming_date": incoming_date,
            "due_date": due_date,
            "status": status,
            "comment": v.text(record.get("comment"), "comment"),
            "conception_external_id": v.guid(record.get("conception"), field_name="conception"),
            "supplier_external_id": v.guid(record.get("supplier"), field_name="supplier"),
            "default_store_external_id": v.guid(record.get("defaultStore"), field_name="defaultStore"),
        }
        return invoice, items

    @staticmethod
    def _item(invoice_external_id: str | None, item: Mapping[str, Any]) -> Row:
        num = v.integer(item.get("num"), field_name="item num", required=True)
        try:  # field names are plain here and get their "line N" prefix only on the rare error (hot path)
            return {
                "invoice_external_id": invoice_external_id,
                "line_number": num,
                "product_external_id": v.guid(item.get("product"), field_name="product"),
                "product_article": v.text(item.get("productArticle"), "productArticle"),
                "product_code": v.text(item.get("code"), "code"),
                "amount": v.decimal(item.get("amount"), field_name="amount"),
                "actual_amount": v.decimal(item.get("actualAmount"), field_name="actualAmount"),
                "amount_unit_external_id": v.guid(item.get("amountUnit"), field_name="amountUnit"),
                "price": v.decimal(item.get("price"), field_name="price"),
                "price_without_vat": v.decimal(item.get("priceWithoutVat"), field_name="priceWithoutVat"),
                "sum": v.decimal(item.get("sum"), field_name="sum", required=True),
                "vat_percent": v.decimal(item.get("vatPercent"), field_name="vatPercent"),
                "vat_sum": v.decimal(item.get("vatSum"), field_name="vatSum"),
                "discount_sum": v.decimal(item.get("discountSum"), field_name="discountSum"),
                "store_external_id": v.guid(item.get("store"), field_name="store"),
                "is_additional_expense": bool(v.boolean(item.get("isAdditionalExpense"),
                                                        field_name="isAdditionalExpense")),
            }
        except ValueError as exc:
            raise ValueError(f"line {num} {exc}") from None


IIKO_ADAPTER = IikoAdapter()
