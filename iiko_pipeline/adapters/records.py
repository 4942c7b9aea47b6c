"""What every iiko adapter method shares: naming a record for a person, and mapping a batch record by record."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from iiko_pipeline.adapters import values as v
from iiko_pipeline.adapters.base import AdaptedBatch, RecordError, Row


def shown(value: Any) -> str | None:
    """A value as text for a message or a name: XML gives text, JSON may give a number (never raises)."""
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    return text or None


def name(record: Mapping[str, Any]) -> str | None:
    """The brief's field mapping: the name is in `name` (JSON, current XML) or `n` (older XML)."""
    return shown(record.get("name")) or shown(record.get("n"))


def describe(record: Mapping[str, Any], *, number_key: str = "code") -> str:
    """How a person finds the record again in iiko: its number or code, name and id."""
    parts = []
    number = shown(record.get(number_key))
    if number:
        parts.append(f"{number_key} {number}")
    called = name(record)
    if called:
        parts.append(repr(called))
    ident = shown(record.get("id"))
    parts.append(f"id {ident}" if ident else "without id")
    return " ".join(parts)


def record_id(record: Mapping[str, Any]) -> str | None:
    """A rejected record's id as the warehouse holds ids (canonical GUID) where it is one, else as printed: the
    record still counts as returned, so a stored row with that id must not be taken for vanished."""
    try:
        return v.guid(shown(record.get("id")))
    except ValueError:
        return shown(record.get("id"))


def adapt(entity: str, records: Iterable[Mapping[str, Any]],
          build: Callable[[Mapping[str, Any]], tuple[Row, list[Row]] | None],
          describe: Callable[[Mapping[str, Any]], str]) -> AdaptedBatch:
    """Map each record with `build` (None skips a record that is not of this entity); a record that fails
    becomes a RecordError and the rest of the batch goes on."""
    batch = AdaptedBatch()
    for record in records:
        try:
            built = build(record)
        except ValueError as exc:
            batch.errors.append(RecordError(entity, record_id(record), describe(record), str(exc)))
            continue
        if built is not None:
            batch.rows.append(built[0])
            batch.child_rows.extend(built[1])
    return batch


def of_type(record: Mapping[str, Any], wanted: str, default: str | None = None) -> bool:
    return (shown(record.get("type")) or default or "").upper() == wanted
