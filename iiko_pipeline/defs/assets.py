"""The asset graph, derived from the entity specs: per account partition, raw answers -> typed frames -> tables.

Each spec in `core.specs.REGISTRY` becomes three assets:
- `raw_<entity>`: the iiko answers exactly as received (gzip under the instance's storage); the SHA-256 of the
  bytes is the data version, so an unchanged answer shows as such in the UI;
- `<entity>_frame`: the adapter's typed Arrow tables (Parquet via `frame_io_manager`) plus rejected records;
- `<entity>`: the rows written to the warehouse, with the brief's sync result as metadata and the spec's checks.
The sync itself happens in `iiko_pipeline.core`; this module maps its results to outputs, metadata and check
results, and its typed failures to retries or a `Failure` (with the failure's kind in the event log). Steps
that touch iiko or the warehouse require `guard` (`AccountGuardResource`): the run holds its account's lock.
"""

import contextlib
import dataclasses
import typing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pydantic

from iiko_pipeline.core import steps
from iiko_pipeline.core.checks import CheckInput, CheckResult, TableReport, report_and_checks
from iiko_pipeline.core.failures import STEP_RETRIES, STEP_RETRY_DELAY, SyncFailure, classify, retry_note, retry_wait
from iiko_pipeline.core.policy import WindowPolicy, WritePolicy
from iiko_pipeline.core.specs import REGISTRY, EntitySpec
from iiko_pipeline.defs.constants import FRAMES_GROUP, RAW_GROUP, TABLES_GROUP
from iiko_pipeline.defs.partitions import accounts_partitions_def
from iiko_pipeline.defs.resources import AccountGuardResource, IikoResource, WarehouseResource
from iiko_pipeline.frames import FrameSet

#: The metadata key that carries a failed step's kind (`core.failures.FailureKind`) into the event log.
FAILURE_KIND = "failure_kind"


# The launchpad's fields are the policy's own (names, types, defaults): one definition.
_WINDOW_FIELDS = pydantic.create_model(
    "WindowFields", __base__=dg.Config,
    **{f.name: (typing.get_type_hints(WindowPolicy)[f.name], f.default) for f in dataclasses.fields(WindowPolicy)})


class WindowConfig(_WINDOW_FIELDS):  # type: ignore[misc,valid-type]
    """Which document dates to export (the same config in the UI's launchpad and in schedules); see
    `core.policy.WindowPolicy`."""

    def policy(self) -> WindowPolicy:
        return WindowPolicy(**self.model_dump())


class TableConfig(dg.Config):
    """How much of what iiko returned may be rejected before the table step (and the run) fails, and how much of
    what we hold may vanish at once before deletions are withheld."""

    max_rejected_share: float = WritePolicy.max_rejected_share
    max_vanished_share: float = WritePolicy.max_vanished_share  # entities iiko returns whole; dated: WindowConfig

    def policy(self) -> WritePolicy:
        return WritePolicy(self.max_rejected_share, self.max_vanished_share)


def _account(context: dg.AssetExecutionContext) -> str:
    return str(uuid.UUID(context.partition_key))


@contextlib.contextmanager
def dagster_failures(context: dg.AssetExecutionContext, *, retry_step: bool = True) -> Iterator[None]:
    """A retryable failure is retried (exponential back-off with jitter) while retries remain; any other, or
    the last, fails the step once, with its kind in the event log (the API chooses its status code from it)."""
    try:
        yield
    except Exception as exc:
        failure = classify(exc)
        if retry_step and failure.retryable and context.retry_number < STEP_RETRIES:
            wait = retry_wait(STEP_RETRY_DELAY, context.retry_number)
            context.log.warning(retry_note(failure, wait))
            raise dg.RetryRequested(max_retries=STEP_RETRIES, seconds_to_wait=wait) from exc
        raise dg.Failure(description=failure.reason, allow_retries=False,
                         metadata={FAILURE_KIND: failure.kind.value, "retryable": failure.retryable}) from (
            None if isinstance(exc, SyncFailure) else exc)


def _raw_output(result: steps.RawResult) -> dg.Output[steps.RawResult]:
    capture = result.capture
    paths = [p.path for p in capture.parts]
    metadata: dict[str, Any] = {
        "path": dg.MetadataValue.path(paths[0] if len(paths) == 1 else str(Path(paths[0]).parent) if paths else ""),
        "size_bytes": capture.size,
        "sha256": capture.sha256,
        "records": capture.records,
        "answers": len(capture.parts),
        "iiko_server_version": result.server_version or "unknown",
    }
    if capture.window_from:
        metadata |= {"window_from": capture.window_from, "window_to": capture.window_to,
                     "windows": dg.MetadataValue.md("\n".join(
                         f"- {p.label}: {p.records} documents, {p.size} bytes" for p in capture.parts)),
                     "mode": result.policy.mode if result.policy else "incremental",
                     "retried_ranges": result.retried_text}
    if capture.failure:
        metadata["failure"] = dg.MetadataValue.text(capture.failure)
    if result.skipped:
        metadata["skipped"] = dg.MetadataValue.text(result.skipped)
    return dg.Output(result, metadata=metadata, data_version=dg.DataVersion(capture.sha256))


def _raw_asset(spec: EntitySpec) -> dg.AssetsDefinition:
    # Raw steps depend on the tables their entity references: in a run that syncs those too they are written
    # first, so the prerequisite check and the due pending documents see this run's reference data. No pool:
    # licence seats are per iiko server (`core.seats`).
    options: dict[str, Any] = dict(
        name=f"raw_{spec.name}", partitions_def=accounts_partitions_def, group_name=RAW_GROUP,
        kinds={spec.answer_format}, io_manager_key="raw_io_manager", deps=list(spec.references),
        description=f"The iiko answers for {spec.name} exactly as received (gzip on disk). {spec.description}")

    def fetch(context: dg.AssetExecutionContext, iiko: IikoResource, warehouse: WarehouseResource,
              policy: WindowPolicy | None) -> dg.Output[steps.RawResult]:
        account = _account(context)
        raw_dir = Path(context.instance.storage_directory()) / "raw"
        with dagster_failures(context):
            result = steps.fetch_raw(spec, lambda: iiko.client_for(account), warehouse.get_engine(), account,
                                     raw_dir, policy, log=context.log.info)
        if result.capture.failure:
            context.log.warning(f"{spec.name} export stopped part-way: {result.capture.failure}")
        if result.skipped:
            context.log.warning(result.skipped)
        return _raw_output(result)

    if spec.windowed:
        @dg.asset(**options)
        def raw_windows(context: dg.AssetExecutionContext, config: WindowConfig, iiko: IikoResource,
                        warehouse: WarehouseResource, guard: AccountGuardResource) -> dg.Output[steps.RawResult]:
            return fetch(context, iiko, warehouse, config.policy())

        return raw_windows

    @dg.asset(**options)
    def raw_answer(context: dg.AssetExecutionContext, iiko: IikoResource, warehouse: WarehouseResource,
                   guard: AccountGuardResource) -> dg.Output[steps.RawResult]:
        return fetch(context, iiko, warehouse, None)

    return raw_answer


def _frame_asset(spec: EntitySpec) -> dg.AssetsDefinition:
    @dg.asset(name=f"{spec.name}_frame", partitions_def=accounts_partitions_def, group_name=FRAMES_GROUP,
              kinds={"pyarrow", "parquet"}, io_manager_key="frame_io_manager",
              ins={"raw": dg.AssetIn(f"raw_{spec.name}")},
              description=f"{spec.name} as typed rows produced by the iiko adapter, plus records it rejected "
                          "(Parquet chunks of at most 1,000 documents; counts in the metadata).")
    def frame_asset(context: dg.AssetExecutionContext, raw: steps.RawResult,
                    warehouse: WarehouseResource) -> dg.Output[FrameSet]:
        with dagster_failures(context):
            return dg.Output(steps.frames(spec, raw, warehouse.get_engine(), _account(context)))  # IO manager streams

    return frame_asset


def _check_result(result: CheckResult) -> dg.AssetCheckResult:
    severity = dg.AssetCheckSeverity.WARN if result.warn_only else dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckResult(check_name=result.name, passed=result.passed, severity=severity,
                               metadata=result.metadata)


def _table_metadata(rep: TableReport) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        **rep.counts,
        "error_details": dg.MetadataValue.json(rep.error_details),
        "dagster/row_count": rep.row_count,
        "dagster/table_name": rep.table_name,
        "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn(name, kind, description=comment) for name, kind, comment in rep.columns]),
        "warehouse": rep.backend,
        "preview": dg.MetadataValue.md(rep.preview_markdown),
        **rep.extra,
    }
    if rep.guards:
        metadata["deletion_guard"] = dg.MetadataValue.md("\n".join(f"- {g}" for g in rep.guards))
    return metadata


def _table_asset(spec: EntitySpec) -> dg.AssetsDefinition:
    checks = [dg.AssetCheckSpec(name, asset=spec.name, blocking=name not in spec.warn_only) for name in spec.checks]

    @dg.asset(name=spec.name, partitions_def=accounts_partitions_def, group_name=TABLES_GROUP, kinds={"sql"},
              ins={"frame": dg.AssetIn(f"{spec.name}_frame"), "raw": dg.AssetIn(f"raw_{spec.name}")},
              deps=list(dict.fromkeys([*spec.references, *spec.after])), check_specs=checks,
              description=f"`{spec.name}` in the warehouse, upserted from the frame (created/updated/unchanged).")
    def table_asset(context: dg.AssetExecutionContext, config: TableConfig, frame: FrameSet, raw: steps.RawResult,
                    warehouse: WarehouseResource, guard: AccountGuardResource) -> dg.MaterializeResult:
        account = uuid.UUID(_account(context))
        engine = warehouse.get_engine()
        with dagster_failures(context):
            written = steps.write(spec, engine, account, frame, raw, config.policy(), context.run.run_id,
                                  log=context.log.info)
        if not written.stored.passed:
            context.log.error(f"{spec.name} for account {account}: {written.stored.detail}")
        context.log.info(f"{spec.name} for account {account}: {written.result.as_dict()}")
        checked = CheckInput(spec, engine, account, frame, written, raw)
        with dagster_failures(context, retry_step=False):  # every window is committed: retry the reads alone
            rep, results = report_and_checks(checked, context.log.warning)
        skipped = {"skipped": dg.MetadataValue.text(raw.skipped)} if raw.skipped else {}
        return dg.MaterializeResult(metadata={**_table_metadata(rep), **skipped},
                                    check_results=[_check_result(r) for r in results])

    return table_asset


ENTITY_ASSETS = [build(spec) for spec in REGISTRY for build in (_raw_asset, _frame_asset, _table_asset)]
