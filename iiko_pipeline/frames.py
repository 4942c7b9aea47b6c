"""Parsed frames: typed pandas DataFrames built from raw answers by an adapter.

The frame layer sits between the raw bytes and the warehouse so a user can see (and a check can count) what
the adapter made of an answer before anything is written. Values stay typed (str GUIDs, Decimal, date,
datetime, bool); `frame_records` turns pandas' missing markers back into None for the upsert.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from iiko_pipeline.adapters.base import AdaptedBatch, PosAdapter
from iiko_pipeline.iiko import parsing
from iiko_pipeline.rawstore import RawCapture

PARSERS: dict[str, Callable[[bytes], Iterator[dict[str, Any]]]] = {
    "restaurants": parsing.iter_corporate_items,
    "stores": parsing.iter_corporate_items,
    "suppliers": parsing.iter_suppliers,
    "invoices": parsing.iter_invoice_documents,
}


@dataclass
class ParsedFrame:
    """An adapter's output for one raw capture: rows, child rows (invoice lines) and rejected records."""

    entity: str
    rows: pd.DataFrame
    children: pd.DataFrame = field(default_factory=pd.DataFrame)
    errors: list[dict[str, Any]] = field(default_factory=list)
    source_records: int = 0
    window_from: str | None = None
    window_to: str | None = None

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.errors)


def iter_source_records(entity: str, capture: RawCapture) -> Iterator[dict[str, Any]]:
    parse = PARSERS[entity]
    for _part, body in capture.read_parts():
        yield from parse(body)


def build_frame(entity: str, capture: RawCapture, adapter: PosAdapter) -> ParsedFrame:
    records = list(iter_source_records(entity, capture))
    batch: AdaptedBatch = getattr(adapter, entity)(records)
    return ParsedFrame(
        entity=entity,
        rows=pd.DataFrame(batch.rows),
        children=pd.DataFrame(batch.children),
        errors=[e.as_dict() for e in batch.errors],
        source_records=len(records),
        window_from=capture.window_from,
        window_to=capture.window_to,
    )


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def frame_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as plain dicts with None for missing values (pandas uses NaN/NaT/NA)."""
    if df.empty:
        return []
    columns = list(df.columns)
    out = []
    for values in df.astype(object).itertuples(index=False, name=None):
        out.append({c: (None if v is pd.NA else _clean(v)) for c, v in zip(columns, values, strict=True)})
    return out


