"""Adapters: an external system's records -> our internal rows (the brief's adapter pattern).

One module per external system. Each exposes an object satisfying `PosAdapter`, so a second POS fits beside
iiko without the warehouse or Dagster layers changing.
"""

from iiko_pipeline.adapters.base import AdaptedBatch, PosAdapter, RecordError
from iiko_pipeline.adapters.iiko import IIKO_ADAPTER, IikoAdapter

ADAPTERS: dict[str, PosAdapter] = {IIKO_ADAPTER.external_system: IIKO_ADAPTER}

__all__ = ["ADAPTERS", "IIKO_ADAPTER", "AdaptedBatch", "IikoAdapter", "PosAdapter", "RecordError"]
