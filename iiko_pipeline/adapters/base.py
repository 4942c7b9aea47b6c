"""The adapter contract shared by every external system."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Record = Mapping[str, Any]
Row = dict[str, Any]


@dataclass(frozen=True)
class RecordError:
    """One record that could not be mapped; the rest of its batch still syncs.

    `record` names the record the way a person finds it again in the source system (number, code, name),
    because an id alone is useless when the id itself is what is missing.
    """

    entity: str
    external_id: str | None
    record: str
    reason: str

    def as_dict(self) -> dict[str, str | None]:
        return {"entity": self.entity, "external_id": self.external_id, "record": self.record,
                "reason": self.reason}


@dataclass
class AdaptedBatch:
    """Rows ready for the warehouse plus the records that failed, for the sync result's error_details."""

    rows: list[Row] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    child_rows: list[Row] = field(default_factory=list)  # e.g. invoice line items, keyed by parent external id
    #: The children as a pyarrow Table, when the adapter typed them column by column (invoice lines): the frame
    #: step spools it as it is; `children` turns it into rows only for a caller that asks for rows.
    child_table: Any = None

    @property
    def children(self) -> list[Row]:
        return self.child_table.to_pylist() if self.child_table is not None else self.child_rows

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.errors)


class PosAdapter(Protocol):
    """What the pipeline needs from an external system's adapter."""

    external_system: str

    def restaurants(self, records: Iterable[Record]) -> AdaptedBatch: ...

    def stores(self, records: Iterable[Record]) -> AdaptedBatch: ...

    def suppliers(self, records: Iterable[Record]) -> AdaptedBatch: ...

    def invoices(self, records: Iterable[Record]) -> AdaptedBatch: ...
