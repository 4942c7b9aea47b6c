"""Streaming parsers for the XML list exports we sync: pure functions over bytes.

Why streaming: a month of invoices can be hundreds of MB, and a full lxml tree is ~7x the XML size.
``iterparse`` with a tag filter keeps the per-element Python work to one event per record, and clearing
each finished record (and its earlier siblings) keeps memory flat.

Why direct children only: a supplier record ``<employee>`` contains a boolean child that is also named
``<employee>``, so ``.//employee`` matches too much. Records are exactly the direct children of the root.

What a record looks like: a plain dict of its direct children's stripped text, ``None`` for empty elements
(absent elements are simply missing keys; use ``.get``). Texts are kept exactly as sent (no typing: UUIDs,
decimals, dates and booleans are the adapters' job). Unknown elements are kept. A child that itself has
children (e.g. ``jurPersonAdditionalPropertiesDto``) becomes a nested dict via :func:`xml_to_dict`, and a
tag that repeats inside one record (``roleCodes``, ``departmentCodes``) becomes a list of its values.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from typing import Any, BinaryIO

from lxml import etree

from .answers import department_items, json_items, olap_rows
from .errors import IikoResponseError
from .xml import HARDENED_OPTIONS, hit_a_limit, limit_error, xml_to_dict

CORPORATE_ROOT, CORPORATE_RECORD = "corporateItemDtoes", "corporateItemDto"
SUPPLIERS_ROOT, SUPPLIERS_RECORD = "employees", "employee"
EMPLOYEES_ROOT, EMPLOYEES_RECORD = SUPPLIERS_ROOT, SUPPLIERS_RECORD  # the same schema (issue 14)
INVOICES_ROOT, INVOICES_RECORD = "incomingInvoiceDtoes", "document"

Record = dict[str, Any]
# The XML as bytes, or a binary stream (e.g. a gzip file on disk): parsing a stream never holds the document.
Source = bytes | BinaryIO


def record_fields(element: etree._Element, *, skip: str | None = None) -> Record:
    """The direct children of ``element`` as ``{tag: stripped text or None}`` (see the module docstring)."""
    record: Record = {}
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag == skip:
            continue
        if len(child) and any(isinstance(grandchild.tag, str) for grandchild in child):
            value: Any = xml_to_dict(child)
        else:
            text = child.text
            value = (text.strip() or None) if text is not None else None
        if tag in record:
            previous = record[tag]
            if isinstance(previous, list):
                previous.append(value)
            else:
                record[tag] = [previous, value]
        else:
            record[tag] = value
    return record


def _invoice_fields(element: etree._Element) -> Record:
    record = record_fields(element, skip="items")
    items: list[Record] = []
    for container in element:
        if container.tag == "items":
            items.extend(record_fields(item) for item in container if item.tag == "item")
    record["items"] = items
    return record


def _iter_records(body: Source, root_tag: str, record_tag: str, build, endpoint: str | None
                  ) -> Iterator[Record]:
    """Yield ``build(element)`` for every ``record_tag`` element that is a direct child of ``root_tag``."""
    where = endpoint or f"<{root_tag} parser>"
    error: IikoResponseError | None = None
    stream = BytesIO(body) if isinstance(body, bytes | bytearray | memoryview) else body
    events = etree.iterparse(stream, events=("end",), tag=record_tag, **HARDENED_OPTIONS)
    try:
        for _event, element in events:
            parent = element.getparent()
            if parent is None or parent.getparent() is not None:
                # The root itself, or a nested namesake (the <employee> flag inside a supplier record).
                continue
            if parent.tag != root_tag:
                error = IikoResponseError(
                    f"unknown root element <{parent.tag}> where <{root_tag}> was expected",
                    endpoint=where, kind="root",
                )
                break
            yield build(element)
            element.clear(keep_tail=False)
            while element.getprevious() is not None:
                del parent[0]
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno, exc.offset)
        error = limit_error(exc, where, None) if hit_a_limit(exc) else IikoResponseError(
            f"the XML is malformed or truncated at line {line}, column {column}: {exc.msg}",
            endpoint=where, kind="syntax",
        )
    if error is None and events.root is not None and events.root.tag != root_tag:
        error = IikoResponseError(
            f"unknown root element <{events.root.tag}> where <{root_tag}> was expected",
            endpoint=where, kind="root",
        )
    if error is not None:
        raise error


def iter_corporate_items(body: Source, *, endpoint: str | None = None) -> Iterator[Record]:
    """Records of ``corporateItemDtoes/corporateItemDto`` (departments and stores)."""
    return _iter_records(body, CORPORATE_ROOT, CORPORATE_RECORD, record_fields, endpoint)


def iter_suppliers(body: Source, *, endpoint: str | None = None) -> Iterator[Record]:
    """Records of ``employees/employee`` (suppliers; the nested ``<employee>`` flag stays a field)."""
    return _iter_records(body, SUPPLIERS_ROOT, SUPPLIERS_RECORD, record_fields, endpoint)


def iter_employees(body: Source, *, endpoint: str | None = None) -> Iterator[Record]:
    """Records of ``employees/employee`` from ``/employees`` (the suppliers' schema)."""
    return _iter_records(body, EMPLOYEES_ROOT, EMPLOYEES_RECORD, record_fields, endpoint)


def iter_invoice_documents(body: Source, *, endpoint: str | None = None) -> Iterator[Record]:
    """Records of ``incomingInvoiceDtoes/document``, each with ``"items"``: the dicts of ``items/item``."""
    return _iter_records(body, INVOICES_ROOT, INVOICES_RECORD, _invoice_fields, endpoint)


def iter_json_items(body: Source, *, endpoint: str | None = None) -> Iterator[Record]:
    """The objects of a v2 JSON list answer (products, groups, reference entities), numbers exact. These lists
    are a few MB even for a large catalogue, so the document is decoded whole (the stdlib's C decoder is faster
    than any streaming one for that size)."""
    data = body.read() if hasattr(body, "read") else bytes(body)
    where = endpoint or "a v2 JSON list"
    return iter(json_items(data, endpoint=where, display=where))


def iter_department_items(body: Source, *, endpoint: str | None = None) -> Iterator[Record]:
    """The records of a list asked department by department (:func:`~iiko_pipeline.iiko.answers.by_department`:
    the cash-shift list), each with the ``departmentId`` it was asked for; decoded whole like the v2 lists."""
    data = body.read() if hasattr(body, "read") else bytes(body)
    where = endpoint or "a v2 JSON list by department"
    return iter(department_items(data, endpoint=where, display=where))


def iter_olap_rows(body: Source, *, endpoint: str | None = None) -> Iterator[Record]:
    """The ``data`` rows of an OLAP v2 answer (``{"data": [...], "summary": [...]}``), every number a ``Decimal``;
    an :class:`IikoResponseError` if the document is not an OLAP answer (malformed, truncated, an array, no
    ``data`` array, a row that is not an object). Decoded whole, like the v2 lists: a week of a chain's sales is
    a few MB."""
    data = body.read() if hasattr(body, "read") else bytes(body)
    where = endpoint or "an OLAP report"
    return iter(olap_rows(data, endpoint=where, display=where))
