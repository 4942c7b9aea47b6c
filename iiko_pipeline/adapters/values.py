"""Strict conversions of iiko's text values to typed Python values.

Each raises `ValueError` with a message that names the offending text, so the adapter can turn it into a
`RecordError` without guessing. Nothing here is lenient on purpose: a silently wrong decimal or id in the
warehouse is worse than a visible error.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from iiko_pipeline.jsontext import canonical_json  # noqa: F401 - the adapters' JSON text, re-exported

_OFFSET_RE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
NINE_PLACES = Decimal("1e-9")
# Fast paths for what iiko actually sends (a year of invoices is ~6 M GUIDs and ~40 M decimals): the canonical
# hyphenated GUID and a plain decimal with at most 9 places need no further checks; anything else takes the
# general (and slower) path below, with the same answers and the same errors.
_CANONICAL_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ZERO_GUID = "00000000-0000-0000-0000-000000000000"
_PLAIN_DECIMAL = re.compile(r"-?\d{1,19}(?:\.\d{1,9})?")


def text(value: str | None, field_name: str = "a value") -> str | None:
    """Absent and empty are the same in iiko XML ("no value"). Nested or repeated elements where iiko prints one
    text value (the parser gives a dict or a list) are an error naming the field, not a crash."""
    if value is None:
        return None
    if not isinstance(value, str):
        shape = "nested elements" if isinstance(value, dict) else \
            "a repeated element" if isinstance(value, list) else type(value).__name__
        raise ValueError(f"{field_name} holds {shape} where iiko prints one text value")
    value = value.strip()
    return value or None


def _given(value: str | None, field_name: str, required: bool) -> str | None:
    """The stripped text, None when absent or empty; a required value that is absent is an error."""
    value = text(value, field_name)
    if value is None and required:
        raise ValueError(f"{field_name} is missing")
    return value


def guid(value: str | None, *, required: bool = False, field_name: str = "id") -> str | None:
    """A canonical lowercase GUID; the all-zero GUID means "none" in iiko."""
    value = _given(value, field_name, required)
    if value is None:
        return None
    if _CANONICAL_GUID.fullmatch(value) and value != _ZERO_GUID:
        return value.lower()
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise ValueError(f"{field_name} {value!r} is not a GUID") from None
    if parsed.int == 0:
        if required:
            raise ValueError(f"{field_name} is the all-zero GUID")
        return None
    return str(parsed)


def decimal(value: str | None, *, field_name: str, required: bool = False) -> Decimal | None:
    """An exact decimal (iiko prints 9 fractional digits); floats would lose digits."""
    value = _given(value, field_name, required)
    if value is None:
        return None
    if _PLAIN_DECIMAL.fullmatch(value):
        return Decimal(value)
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{field_name} {value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{field_name} {value!r} is not a finite number")
    exponent = number.as_tuple().exponent  # cheaper than a quantize round trip on the hot path
    if isinstance(exponent, int) and exponent < -9 and number != number.quantize(NINE_PLACES):
        raise ValueError(f"{field_name} {value!r} has more than 9 decimal places")
    return number


def boolean(value: str | None, *, field_name: str, default: bool | None = False) -> bool | None:
    value = text(value, field_name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ValueError(f"{field_name} {value!r} is not true/false")


def integer(value: str | None, *, field_name: str, required: bool = False) -> int | None:
    value = _given(value, field_name, required)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{field_name} {value!r} is not an integer") from None


def local_datetime(value: str | None, *, field_name: str) -> tuple[datetime | None, str | None]:
    """iiko's date-times: `yyyy-MM-ddTHH:mm:ss[.fff][offset]` or a bare date, sometimes `dd.MM.yyyy`.

    Returns the wall-clock time as iiko shows it plus the offset text if one was sent. We keep the local time
    rather than converting to UTC because iiko documents are dated in the restaurant's local day, and an offset
    is absent from most answers: inventing one would be worse than keeping what was sent.
    """
    value = text(value, field_name)
    if value is None:
        return None, None
    offset = None
    match = _OFFSET_RE.search(value) if "T" in value else None
    body = value
    if match:
        offset = match.group(1)
        body = value[: match.start()]
        if offset != "Z" and ":" not in offset:
            offset = f"{offset[:3]}:{offset[3:]}"
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M", "%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(body, fmt), offset
        except ValueError:
            continue
    raise ValueError(f"{field_name} {value!r} is not a date or date-time iiko sends")


def local_date(value: str | None, *, field_name: str) -> date | None:
    parsed, _ = local_datetime(value, field_name=field_name)
    return parsed.date() if parsed else None


# ------------------------------------------------------------------ JSON values (the v2 lists)


def _json_scalar(value: object, field_name: str) -> str | None:
    """A JSON value as the text the XML helpers take: numbers as written, objects and arrays refused."""
    if value is None:
        return value
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{field_name} contains a NUL character (U+0000), which the warehouse cannot store")
        return value
    if isinstance(value, float):  # the decoder gives floats only for NaN and Infinity (numbers are Decimal)
        raise ValueError(f"{field_name} is {value!r}, not a finite number")
    if isinstance(value, bool):
        raise ValueError(f"{field_name} is a JSON boolean ({str(value).lower()}), not a value of this kind")
    if isinstance(value, int | Decimal):
        return str(value)
    kind = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else type(value).__name__
    raise ValueError(f"{field_name} is a JSON {kind}, not a single value")


def json_text(value: object, *, field_name: str) -> str | None:
    return text(_json_scalar(value, field_name))


def json_guid(value: object, *, field_name: str, required: bool = False) -> str | None:
    return guid(_json_scalar(value, field_name), required=required, field_name=field_name)


def json_decimal(value: object, *, field_name: str) -> Decimal | None:
    """A JSON number, exact (the client parses JSON numbers as Decimal); a number written as a string too."""
    return decimal(_json_scalar(value, field_name), field_name=field_name)


def json_boolean(value: object, *, field_name: str, default: bool | None = False) -> bool | None:
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    if isinstance(value, str):
        return boolean(value, field_name=field_name, default=default)
    raise ValueError(f"{field_name} {value!r} is not true/false")
