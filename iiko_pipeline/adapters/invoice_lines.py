"""Invoice lines typed column by column: leaf texts into Arrow arrays, checked and cast with Arrow's kernels.

Why: a year of invoices is millions of lines and tens of millions of values; typing them one Python object at a
time (`values.decimal`, `values.guid`) and then inferring Arrow types from those objects was a third of the
frame step (bench, issue 16). Here each field of a batch's lines is one array: a regular expression kernel
checks every value of the shape iiko sends (canonical GUIDs, plain decimals with at most 9 places), one cast
types the column, and only the invoices with a value outside those shapes (rare: never in iiko's own answers)
go back to the per-value path, which accepts the same values and words the same errors (`IikoAdapter._invoice`).

The line schema is fixed (decimals are `decimal128(28, 9)`, the warehouse's NUMERIC(28, 9)), so every chunk
spools with the same types, whatever values it happened to hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

DECIMAL = pa.decimal128(28, 9)
OWNER = "invoice_external_id"
_RECORD = "_record"  # the line's record index while a batch is assembled, so lines keep the records' order

#: (column, iiko tag, kind, required), in the order the per-value path checks them (its first error is reported).
LINE_FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("line_number", "num", "integer", True),
    ("product_external_id", "product", "guid", False),
    ("product_article", "productArticle", "text", False),
    ("product_code", "code", "text", False),
    ("amount", "amount", "decimal", False),
    ("actual_amount", "actualAmount", "decimal", False),
    ("amount_unit_external_id", "amountUnit", "guid", False),
    ("price", "price", "decimal", False),
    ("price_without_vat", "priceWithoutVat", "decimal", False),
    ("sum", "sum", "decimal", True),
    ("vat_percent", "vatPercent", "decimal", False),
    ("vat_sum", "vatSum", "decimal", False),
    ("discount_sum", "discountSum", "decimal", False),
    ("store_external_id", "store", "guid", False),
    ("is_additional_expense", "isAdditionalExpense", "boolean", False),
)
ITEM_COLUMNS = tuple(column for column, *_ in LINE_FIELDS)
_TYPES = {"integer": pa.int64(), "guid": pa.string(), "text": pa.string(), "decimal": DECIMAL, "boolean": pa.bool_()}
LINE_SCHEMA = pa.schema([(OWNER, pa.string()), *((column, _TYPES[kind]) for column, _, kind, _ in LINE_FIELDS)])

# The shapes `values.guid` / `values.decimal` / `values.integer` take on their fast paths; anything else is
# decided by them (per value), so both paths give the same answers.
_GUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_ZERO_GUID = "00000000-0000-0000-0000-000000000000"
_DECIMAL = r"^-?\d{1,19}(?:\.\d{1,9})?$"
_INTEGER = r"^-?\d{1,18}$"
# What Python's str.strip() removes (str.isspace), as RE2 writes it: a text starting or ending with one of these
# (or empty) is left to `values.text`.
_SPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f\x85\p{Z}]"
_UNSTRIPPED = f"^$|^{_SPACE}|{_SPACE}$"
EMPTY_HASH = hashlib.sha256().hexdigest()


def _column(texts: list[Any], kind: str, required: bool) -> tuple[pa.Array, pa.Array | None]:
    """One field's texts typed, and a mask of the values this path cannot vouch for (True = take the slow path;
    None = none: free text is taken as the parser gave it)."""
    raw = pa.array(texts, pa.string())
    present = pc.is_valid(raw)
    if kind == "text":  # as the parser gives it: stripped, None for empty; anything else is `values.text`'s
        return raw, pc.fill_null(pc.match_substring_regex(raw, _UNSTRIPPED), False)
    if kind == "boolean":
        lowered = pc.utf8_lower(raw)
        good = pc.or_(pc.is_in(lowered, pa.array(["true", "false"])), pc.invert(present))
        return pc.fill_null(pc.equal(lowered, "true"), False), pc.invert(good)
    pattern = {"guid": _GUID, "decimal": _DECIMAL, "integer": _INTEGER}[kind]
    shaped = pc.fill_null(pc.match_substring_regex(raw, pattern), not required)
    if kind == "guid":
        lowered = pc.utf8_lower(raw)
        typed = pc.if_else(pc.equal(lowered, _ZERO_GUID), pa.scalar(None, pa.string()), lowered)
    else:
        typed = pc.cast(pc.if_else(shaped, raw, pa.scalar(None, pa.string())), _TYPES[kind])
    return typed, pc.invert(shaped)


def fast_lines(owned: Sequence[tuple[int, str, Sequence[Mapping[str, Any]]]]) -> tuple[pa.Table, set[int]]:
    """The lines of `(record index, invoice id, items)` as one table (with each line's record index), and the
    record indexes whose lines this path could not type: a value of another shape, or a line number that repeats
    within its invoice. Those records' lines are not in the table."""
    items = [item for _, _, lines in owned for item in lines]
    records = [index for index, _, lines in owned for _ in lines]
    columns: dict[str, pa.Array] = {_RECORD: pa.array(records, pa.int64()),
                                    OWNER: pa.array([ident for _, ident, lines in owned for _ in lines], pa.string())}
    tags = [tag for _, tag, _, _ in LINE_FIELDS]
    texts = list(zip(*(tuple(map(item.get, tags)) for item in items), strict=True)) or [()] * len(tags)
    bad = pa.array([False] * len(items), pa.bool_())
    for (column, _, kind, required), values in zip(LINE_FIELDS, texts, strict=True):
        try:
            typed, suspect = _column(list(values), kind, required)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a nested or repeated tag (a dict or list, not a text)
            odd = [value is not None and not isinstance(value, str) for value in values]
            typed, suspect = _column([None if o else value for value, o in zip(values, odd, strict=True)],
                                     kind, required)
            suspect = pc.or_(pa.array(odd, pa.bool_()), suspect) if suspect is not None else pa.array(odd)
        columns[column] = typed
        if suspect is not None:
            bad = pc.or_(bad, suspect)
    table = pa.table(columns)
    rejected = set(pc.unique(pc.filter(table[_RECORD], bad)).to_pylist())
    repeats = table.group_by([_RECORD, "line_number"]).aggregate([([], "count_all")])
    rejected.update(pc.filter(repeats[_RECORD], pc.greater(repeats["count_all"], 1)).to_pylist())
    if rejected:
        table = table.filter(pc.invert(pc.is_in(table[_RECORD], pa.array(sorted(rejected), pa.int64()))))
    return table, rejected


def slow_lines(index: int, items: list[dict[str, Any]]) -> pa.Table:
    """Lines the per-value path typed, in the line schema (raises `ValueError` when a value does not fit it)."""
    try:
        table = pa.Table.from_pylist(items, schema=LINE_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"a line's value does not fit the warehouse's columns ({exc})") from None
    return table.append_column(_RECORD, pa.array([index] * table.num_rows, pa.int64()))


def assemble(pieces: Sequence[pa.Table]) -> pa.Table:
    """The fast lines (first) and the slow ones in their records' order (a stable sort on the record index),
    without the index."""
    table = pa.concat_tables([piece.select([*LINE_SCHEMA.names, _RECORD]) for piece in pieces])
    ordered = table.take(pc.sort_indices(table[_RECORD])) if len(pieces) > 1 else table
    return ordered.select(LINE_SCHEMA.names).cast(LINE_SCHEMA)


def items_hashes(lines: pa.Table) -> dict[str, str]:
    """A digest of each invoice's typed lines (in line-number order), so an invoice's lines are rewritten only
    when they really changed; an invoice without lines has `EMPTY_HASH`. Equal values hash equal however iiko
    printed them (`1.5` and `1.500000000`). Each line becomes one text (its values joined by Arrow), and each
    invoice's texts one blob: Python touches invoices, not lines."""
    if not lines.num_rows:
        return {}
    ordered = lines.sort_by([(OWNER, "ascending"), ("line_number", "ascending")])
    texts = pc.binary_join_element_wise(*(pc.cast(ordered[c], pa.string()) for c in ITEM_COLUMNS), "", "\x1f",
                                        null_handling="replace", null_replacement="\\N").combine_chunks()
    runs = pc.run_end_encode(ordered[OWNER].combine_chunks())  # sorted: one run per invoice
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), runs.run_ends.cast(pa.int32())])
    blobs = pc.binary_join(pa.ListArray.from_arrays(offsets, texts), "")
    return {owner: hashlib.sha256(blob.encode()).hexdigest()
            for owner, blob in zip(runs.values.to_pylist(), blobs.to_pylist(), strict=True)}
