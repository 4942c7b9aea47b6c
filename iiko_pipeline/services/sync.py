"""Running a sync for one account through the Dagster instance, so every sync is a run the UI shows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from iiko_pipeline.defs.constants import ENTITIES
from iiko_pipeline.defs.partitions import accounts_partitions_def
from iiko_pipeline.defs.resources import WarehouseResource
from iiko_pipeline.defs.sensors import run_tags
from iiko_pipeline.warehouse.entities import with_prerequisites
from iiko_pipeline.warehouse.state import never_synced

RESULT_KEYS = ("total", "created", "updated", "unchanged", "deleted", "errors")


@dataclass
class AccountSyncOutcome:
    run_id: str
    success: bool
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # entities whose table step stored too little of what iiko returned (the `records_stored` check), and why
    rejected: dict[str, str] = field(default_factory=dict)
    # entities synced first because the requested ones reference them and they had never synced
    prerequisites: list[str] = field(default_factory=list)


def selection_for(entities: Sequence[str]) -> list[dg.AssetKey]:
    keys = []
    for entity in entities:
        if entity not in ENTITIES:
            raise ValueError(f"unknown entity {entity!r}; choose from {', '.join(ENTITIES)}")
        keys += [dg.AssetKey(f"raw_{entity}"), dg.AssetKey(f"{entity}_frame"), dg.AssetKey(entity)]
    return keys


def invoice_run_config(date_from: str | None = None, date_to: str | None = None, *, mode: str | None = None,
                       history_days: int | None = None, lookback_days: int | None = None,
                       max_vanished_share: float | None = None, reprocess_unchanged: bool | None = None) -> dict:
    """Run config for `raw_invoices` (see `InvoiceSyncConfig`); dates alone mean a backfill of that range."""
    config: dict[str, Any] = {}
    if date_from:
        config["date_from"] = date_from
    if date_to:
        config["date_to"] = date_to
    if mode or date_from:
        config["mode"] = mode or "backfill"
    for key, value in (("history_days", history_days), ("lookback_days", lookback_days),
                       ("max_vanished_share", max_vanished_share), ("reprocess_unchanged", reprocess_unchanged)):
        if value is not None:
            config[key] = value
    return {"ops": {"raw_invoices": {"config": config}}} if config else {}


def run_account_sync(instance: dg.DagsterInstance, account_id: str, entities: Sequence[str] = ENTITIES, *,
                     run_config: dict | None = None, extra_tags: dict[str, str] | None = None,
                     log_level: str = "INFO") -> AccountSyncOutcome:
    from iiko_pipeline.definitions import defs

    account = str(uuid.UUID(account_id))
    # An entity whose references never synced would store nothing: sync those first, in the same run.
    missing = never_synced(WarehouseResource().get_engine(), account,
                           [e for e in with_prerequisites(entities) if e not in entities])
    entities = [e for e in ENTITIES if e in entities or e in missing]
    instance.add_dynamic_partitions(accounts_partitions_def.name, [account])
    job = defs.resolve_job_def("sync_account_job")
    if "invoices" not in entities and run_config:
        run_config = {}
    run_config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": log_level}}}}
    result = job.execute_in_process(
        instance=instance, partition_key=account, tags={**run_tags(account), **(extra_tags or {})},
        run_config=run_config, asset_selection=selection_for(entities), raise_on_error=False,
    )
    outcome = AccountSyncOutcome(run_id=result.run_id, success=result.success, prerequisites=missing)
    for event in result.get_asset_materialization_events():
        key = event.asset_key.to_user_string()
        if key not in entities:
            continue
        meta = event.materialization.metadata
        values = {k: meta[k].value for k in RESULT_KEYS if k in meta}
        values["error_details"] = meta["error_details"].value if "error_details" in meta else []
        outcome.results[key] = values
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            outcome.failures.append(f"{event.step_key}: {error.message.strip() if error else 'failed'}")
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        entity = evaluation.asset_key.to_user_string()
        detail = evaluation.metadata.get("detail")
        text = f"check {entity}.{evaluation.check_name} failed" + (f": {detail.value}" if detail else "")
        if evaluation.severity == dg.AssetCheckSeverity.ERROR:
            outcome.failures.append(text)
        if evaluation.check_name == "records_stored" and detail:
            outcome.rejected[entity] = str(detail.value)
    return outcome
