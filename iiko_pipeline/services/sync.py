"""Running a sync for one account through the Dagster instance, so every sync is a run the UI shows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from sqlalchemy.engine import Engine

from iiko_pipeline.core.failures import FailureKind
from iiko_pipeline.core.seats import account_servers
from iiko_pipeline.core.specs import ENTITY_NAMES, spec, with_prerequisites
from iiko_pipeline.defs.assets import FAILURE_KIND
from iiko_pipeline.defs.constants import SYNC_JOB
from iiko_pipeline.defs.partitions import accounts_partitions_def
from iiko_pipeline.defs.resources import WarehouseResource
from iiko_pipeline.defs.sensors import run_tags
from iiko_pipeline.warehouse.entities import SyncResult
from iiko_pipeline.warehouse.state import never_synced


@dataclass
class StepFailure:
    """A failed step of the run: which, the kind of failure (`FailureKind` value, or None when the step did not
    say) and the reason, safe to show."""

    step: str
    kind: str | None
    reason: str

    @property
    def from_iiko(self) -> bool:
        return self.kind is not None and FailureKind(self.kind).from_iiko

    def __str__(self) -> str:
        return f"{self.step}: {self.reason}"


@dataclass
class AccountSyncOutcome:
    run_id: str
    success: bool
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    step_failures: list[StepFailure] = field(default_factory=list)
    # entities whose table step stored too little of what iiko returned (the `records_stored` check), and why
    rejected: dict[str, str] = field(default_factory=dict)
    # entities synced first because the requested ones reference them and they had never synced
    prerequisites: list[str] = field(default_factory=list)

    def iiko_failure(self) -> StepFailure | None:
        """The failure caused at the iiko server, if that is what failed the run."""
        return next((f for f in self.step_failures if f.from_iiko), None)


def selection_for(entities: Sequence[str]) -> list[dg.AssetKey]:
    return [dg.AssetKey(key) for entity in entities
            for key in (f"raw_{spec(entity).name}", f"{entity}_frame", entity)]


def selected_config(run_config: dict | None, entities: Sequence[str]) -> dict:
    """Keep the ops config of the selected steps only (Dagster refuses config for steps not in the run)."""
    ops = {op: cfg for op, cfg in (run_config or {}).get("ops", {}).items()
           if op.removeprefix("raw_") in entities}
    return {**(run_config or {}), "ops": ops} if ops else {k: v for k, v in (run_config or {}).items() if k != "ops"}


def plan_entities(engine: Engine, account: str, entities: Sequence[str]) -> tuple[list[str], list[str]]:
    """The entities to sync (in dependency order) and the never-synced references added to them: an entity
    whose references never synced would store nothing."""
    for name in entities:
        spec(name)  # a clear error for an unknown name
    missing = never_synced(engine, account, [e for e in with_prerequisites(entities) if e not in entities])
    return [e for e in ENTITY_NAMES if e in entities or e in missing], missing


def run_account_sync(instance: dg.DagsterInstance, account_id: str, entities: Sequence[str] = ENTITY_NAMES, *,
                     run_config: dict | None = None, extra_tags: dict[str, str] | None = None,
                     log_level: str = "INFO", run_id: str | None = None,
                     add_prerequisites: bool = True) -> AccountSyncOutcome:
    """Execute one sync run in this process (the run worker of `iiko_pipeline.runner`, the demo, tests)."""
    from iiko_pipeline.definitions import defs

    account = str(uuid.UUID(account_id))
    missing: list[str] = []
    engine = WarehouseResource().get_engine()
    if add_prerequisites:
        entities, missing = plan_entities(engine, account, entities)
    instance.add_dynamic_partitions(accounts_partitions_def.name, [account])
    job = defs.resolve_job_def(SYNC_JOB)
    run_config = {**selected_config(run_config, entities),
                  "loggers": {"console": {"config": {"log_level": log_level}}}}
    result = job.execute_in_process(
        instance=instance, partition_key=account,
        tags={**run_tags(account, account_servers(engine, [account])), **(extra_tags or {})},
        run_config=run_config, asset_selection=selection_for(entities), raise_on_error=False, run_id=run_id,
    )
    return read_outcome(instance, result.run_id, result.success, entities, prerequisites=missing)


_OUTCOME_EVENTS = (dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.STEP_FAILURE,
                   dg.DagsterEventType.ASSET_CHECK_EVALUATION)


def read_outcome(instance: dg.DagsterInstance, run_id: str, success: bool, entities: Sequence[str], *,
                 prerequisites: Sequence[str] = ()) -> AccountSyncOutcome:
    """A finished run's results (from its materializations), failed steps (with their kind) and failed
    checks, read from the event log, so any process can answer for any run."""
    outcome = AccountSyncOutcome(run_id=run_id, success=success, prerequisites=list(prerequisites))
    records = instance.all_logs(run_id, of_type=set(_OUTCOME_EVENTS))  # one query for all three kinds
    for record in (r for r in records if r.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = record.asset_materialization
        key = materialization.asset_key.to_user_string() if materialization else None
        if key not in entities:
            continue
        meta = materialization.metadata
        values: dict[str, Any] = {k: meta[k].value for k in SyncResult.COUNT_KEYS if k in meta}
        values["error_details"] = meta["error_details"].value if "error_details" in meta else []
        if "skipped" in meta:  # an optional entity this server or user cannot give (`core.steps.skip_reason`)
            values["skipped"] = meta["skipped"].value
        outcome.results[key] = values
    for record in (r for r in records if r.dagster_event_type == dg.DagsterEventType.STEP_FAILURE):
        event = record.dagster_event
        data = event.step_failure_data if event else None
        if data is None:
            continue
        user = data.user_failure_data
        kind = user.metadata[FAILURE_KIND].value if user and FAILURE_KIND in user.metadata else None
        reason = (user.description if user and user.description else
                  data.error.message.strip().splitlines()[0] if data.error else "failed")
        failure = StepFailure(event.step_key or "run", kind, reason[:1000])
        outcome.step_failures.append(failure)
        outcome.failures.append(str(failure))
    for record in (r for r in records if r.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data if record.dagster_event else None
        if evaluation is None or evaluation.passed:
            continue
        entity = evaluation.asset_key.to_user_string()
        detail = evaluation.metadata.get("detail")
        text = f"check {entity}.{evaluation.check_name} failed" + (f": {detail.value}" if detail else "")
        if evaluation.severity == dg.AssetCheckSeverity.ERROR:
            outcome.failures.append(text)
            kind = evaluation.metadata.get(FAILURE_KIND)
            if kind is not None:  # e.g. an export that stopped part-way at an iiko error
                outcome.step_failures.append(StepFailure(f"check {entity}.{evaluation.check_name}", kind.value,
                                                         str(detail.value if detail else text)))
        if evaluation.check_name == "records_stored" and detail:
            outcome.rejected[entity] = str(detail.value)
    return outcome
