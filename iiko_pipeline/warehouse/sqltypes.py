"""Column types that behave the same on PostgreSQL and SQLite.

Both exist because SQLite silently loses information that PostgreSQL keeps:

- SQLite has no exact decimal type; ``NUMERIC`` columns are stored as 8-byte floats, so
  ``123456789012345678.123456789`` would come back rounded. :class:`ExactDecimal` stores a canonical
  decimal *string* there instead, and ``NUMERIC(28, 9)`` on PostgreSQL.
- SQLite has no time zones; ``DateTime(timezone=True)`` stores a naive string and returns a naive
  datetime. :class:`UtcDateTime` stores UTC and always returns an aware UTC datetime on both backends.
"""

from __future__ import annotations

import decimal
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from iiko_pipeline.jsontext import canonical_json

#: iiko prints decimals with 9 fractional digits; 28 digits total leaves 19 for the integer part.
DECIMAL_PRECISION = 28
DECIMAL_SCALE = 9
#: The same type in Arrow (the frames' decimals).
EXACT_DECIMAL_ARROW = pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE)
_QUANTUM = Decimal(1).scaleb(-DECIMAL_SCALE)  # Decimal('1E-9')
_MAX_INTEGER_DIGITS = DECIMAL_PRECISION - DECIMAL_SCALE
# Wide enough that quantize() never raises for in-range values; range is checked explicitly.
_CONTEXT = decimal.Context(prec=DECIMAL_PRECISION + 20)


def to_exact_decimal(value: Any) -> Decimal:
    """Canonicalise ``value`` to a ``Decimal`` with exactly 9 fractional digits, or raise.

    Accepts ``Decimal``, ``int`` and decimal strings. Floats are refused (they already lost digits), and
    so are NaN/infinity, values with more than 9 fractional digits (rounding would lose a digit) and values
    that do not fit NUMERIC(28, 9). The same checks run on both backends, so SQLite never accepts a value
    PostgreSQL would reject or round.
    """
    if isinstance(value, bool | float):
        raise TypeError(f"ExactDecimal refuses {type(value).__name__} values; pass Decimal, int or str")
    try:
        number = Decimal(value) if not isinstance(value, Decimal) else value
    except (decimal.InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(f"not a decimal number: {value!r}") from exc
    if not number.is_finite():
        raise ValueError(f"ExactDecimal needs a finite number, got {value!r}")
    quantized = number.quantize(_QUANTUM, context=_CONTEXT)
    if quantized != number:
        raise ValueError(f"{value!r} has more than {DECIMAL_SCALE} fractional digits; refusing to round")
    if quantized.adjusted() >= _MAX_INTEGER_DIGITS:
        raise ValueError(f"{value!r} does not fit NUMERIC({DECIMAL_PRECISION}, {DECIMAL_SCALE})")
    if quantized.is_zero():  # fold -0 into 0 so the canonical strings compare equal
        quantized = Decimal(0).quantize(_QUANTUM)
    return quantized


class ExactDecimal(TypeDecorator[Decimal]):
    """Money and quantities: ``NUMERIC(28, 9)`` on PostgreSQL, canonical decimal TEXT on SQLite.

    Values are normalised to 9 fractional digits before they are stored, so ``420.440000000`` and
    ``420.44`` are the same stored value on both backends (which the IS DISTINCT FROM upsert guard needs),
    and reads always return ``Decimal``. On SQLite the column is text: do arithmetic, ``SUM`` and ordering
    in Python or on PostgreSQL, not in SQLite SQL (it would coerce to float or compare lexically).
    """

    impl = sa.Numeric(DECIMAL_PRECISION, DECIMAL_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        return dialect.type_descriptor(sa.Numeric(DECIMAL_PRECISION, DECIMAL_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        exact = to_exact_decimal(value)
        return format(exact, "f") if dialect.name == "sqlite" else exact

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        if value is None:
            return "NULL"
        text = format(to_exact_decimal(value), "f")
        return f"'{text}'" if dialect.name == "sqlite" else text

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):  # a raw REAL written into the SQLite column by hand
            value = repr(value)
        return to_exact_decimal(str(value) if not isinstance(value, Decimal) else value)

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


def exact_decimal_texts(column: pa.ChunkedArray | pa.Array) -> list[str | None]:
    """What `ExactDecimal` stores on SQLite for each value of an Arrow ``decimal128(p <= 28, 9)`` column, made
    in C: Arrow prints such a decimal with its 9 places, as ``format(value, "f")`` does, except that it writes
    values below 1e-6 (zero among them) in exponent form (``0E-9``); only those are rewritten in Python. Such a
    column needs no range check: its type already bounds it to NUMERIC(28, 9)."""
    texts = pc.cast(column, pa.string())
    if not pc.any(pc.match_substring(texts, "E")).as_py():
        return texts.to_pylist()
    return [None if text is None else format(Decimal(text), "f") if "E" in text else text
            for text in texts.to_pylist()]


def holds_exact_decimals(arrow_type: pa.DataType) -> bool:
    """True for the Arrow decimal types `exact_decimal_texts` renders exactly (scale 9, precision <= 28)."""
    return (pa.types.is_decimal(arrow_type) and arrow_type.scale == DECIMAL_SCALE
            and arrow_type.precision <= DECIMAL_PRECISION)


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time: ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL, UTC text on SQLite.

    Naive datetimes are refused on write (their zone would have to be guessed); reads always return an
    aware datetime in UTC, whatever the PostgreSQL session time zone is.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UtcDateTime needs a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("UtcDateTime refuses naive datetimes; pass an aware one (e.g. datetime.now(UTC))")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return as_utc(value)

    @property
    def python_type(self) -> type[datetime]:
        return datetime


def as_utc(value: datetime | None) -> datetime | None:
    """`value` in UTC, a naive one read as UTC: what SQLite hands back for the warehouse's timestamps and what
    some of Dagster's records carry. Every reader that formats or compares such a time goes through here."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """An aware UTC "now", the only kind of timestamp the warehouse writes."""
    return datetime.now(UTC)


class JsonDocument(TypeDecorator[Any]):
    """A JSON value: ``JSONB`` on PostgreSQL (queryable, compared by value), canonical JSON text on SQLite.

    Binds a Python value or JSON text already made by :func:`canonical_json` (the adapters' frames carry text:
    Arrow would turn free-form objects into structs with invented nulls); reads give the Python value on both
    backends. Used for what iiko sends that has no column of its own (``extra``) and for small lists (barcodes,
    role codes)."""

    impl = sa.Text()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":  # JSONB's own bind processor serialises
            return json.loads(value) if isinstance(value, str) else value
        return value if isinstance(value, str) else canonical_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json.loads(value)

    @property
    def python_type(self) -> type[dict]:
        return dict
