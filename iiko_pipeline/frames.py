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
    windows: list[dict[str, str]] = field(default_factory=list)  # [{"label", "from", "to"}] in fetch order
    failure: str | None = None

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.errors)


WINDOW_COLUMN = "_window"


def build_frame(entity: str, capture: RawCapture, adapter: PosAdapter) -> ParsedFrame:
    """Adapt every part; for windowed exports tag rows with their window and keep a document only once.

    A document re-dated between two window requests can appear in both: the first occurrence wins, as in
    the client's own `incoming_invoices`.
    """
    parse = PARSERS[entity]
    rows, children, errors, windows = [], [], [], []
    source = 0
    seen: set[str] = set()
    for part, body in capture.read_parts():
        records = list(parse(body))
        source += len(records)
        if capture.window_from:
            fresh = []
            for record in records:
                ident = (record.get("id") or "").strip().lower()
                if ident and ident in seen:
                    continue
                seen.add(ident)
                fresh.append(record)
            records = fresh
            start, _, end = part.label.partition("..")
            windows.append({"label": part.label, "from": start, "to": end})
        batch: AdaptedBatch = getattr(adapter, entity)(records)
        if capture.window_from:
            for row in batch.rows:
                row[WINDOW_COLUMN] = part.label
        rows += batch.rows
        children += batch.children
        errors += [{**e.as_dict(), **({"window": part.label} if capture.window_from else {})} for e in batch.errors]
    return ParsedFrame(
        entity=entity,
        rows=pd.DataFrame(rows),
        children=pd.DataFrame(children),
        errors=errors,
        source_records=source,
        window_from=capture.window_from,
        window_to=capture.window_to,
        windows=windows,
        failure=capture.failure,
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


