"""Canonical JSON text: one text per JSON value, so equal values compare equal as text (SQLite stores JSON as
text, and the upsert guard compares stored and new values). Shared by the adapters, which make it, and the
warehouse, which stores it; import-light on purpose (the warehouse must not pull the iiko client in)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def canonical_json(value: Any) -> str:
    """One text per JSON value (sorted keys, no spaces, non-ASCII kept), so equal values compare equal as text
    on SQLite and the upsert guard sees no change where there is none. Decimals (iiko's JSON numbers are parsed
    exactly) are written as JSON numbers through `float`: iiko sends at most 15 significant digits, which a
    float's shortest repr gives back unchanged. Raises ValueError for what no JSON column stores alike on both
    backends: NaN or Infinity (not JSON) and the NUL character (PostgreSQL refuses it)."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default,
                          allow_nan=False)
    except ValueError:  # json's own words ("Out of range float values...") say less than ours
        raise ValueError("holds NaN or Infinity, which JSON does not allow") from None
    if "\\u0000" in text and _holds_nul(value):
        raise ValueError("contains a NUL character (U+0000), which the warehouse cannot store")
    return text


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.adjusted() < 15 else float(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")
