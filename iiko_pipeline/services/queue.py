"""Submitting CLI and API syncs to the daemon's run queue, when a daemon is deployed.

On the embedded default no daemon may be running, so a sync is executed by a process the launcher starts
(`iiko_pipeline.runner`). In production the daemon owns run launching: its queue applies the instance's run
limits (`max_concurrent_runs`, the per-account tag limit) to every run, and its run launcher decides where runs
execute (a process, a container, a pod). There a sync is created as an ordinary run of the code location the
daemon serves and submitted to the queue; the caller waits for it as it would for its own process.

`IIKO_RUN_SUBMISSION` chooses: `auto` (default: the queue when the instance's daemon is alive and queues runs,
else a local process), `queue` or `local`. The run is created against the code location by name
(`IIKO_CODE_LOCATION`, default `iiko_pipeline.definitions`, what `-m iiko_pipeline.definitions` and
workspace.yaml call it): the daemon's code server executes it from its own copy of the definitions.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

SUBMISSION_ENV = "IIKO_RUN_SUBMISSION"
LOCATION_ENV = "IIKO_CODE_LOCATION"
DEFAULT_LOCATION = "iiko_pipeline.definitions"
#: A daemon whose queue heartbeat is older than this is taken for absent (it beats every 20 s or so).
DAEMON_HEARTBEAT_TOLERANCE_S = 120.0
_QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
_LOCATIONS: dict[int, Any] = {}
_LOCATIONS_LOCK = threading.Lock()


class SubmissionError(RuntimeError):
    """The queue was asked for but cannot take runs (no queued run coordinator, or no daemon)."""


def daemon_queues_runs(instance: dg.DagsterInstance) -> bool:
    """Whether this instance queues submitted runs and a daemon is dequeuing them right now."""
    from dagster._core.run_coordinator import QueuedRunCoordinator

    if not isinstance(instance.run_coordinator, QueuedRunCoordinator):
        return False
    heartbeat = instance.get_daemon_heartbeats().get(_QUEUE_DAEMON)
    return heartbeat is not None and time.time() - heartbeat.timestamp < DAEMON_HEARTBEAT_TOLERANCE_S


def use_queue(instance: dg.DagsterInstance) -> bool:
    """Where this sync goes: the daemon's queue or a local process (`IIKO_RUN_SUBMISSION`)."""
    mode = os.environ.get(SUBMISSION_ENV, "auto").strip().lower() or "auto"
    if mode == "local":
        return False
    if mode == "queue":
        if not daemon_queues_runs(instance):
            raise SubmissionError(f"{SUBMISSION_ENV}=queue, but no dagster-daemon is dequeuing runs of this "
                                  "instance (run coordinator must be QueuedRunCoordinator, the daemon running)")
        return True
    if mode != "auto":
        raise SubmissionError(f"{SUBMISSION_ENV} must be auto, queue or local, not {mode!r}")
    return daemon_queues_runs(instance)


def _code_location(instance: dg.DagsterInstance) -> Any:
    """The definitions as a code location under the daemon's name for it, loaded once per process."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.remote_representation.code_location import InProcessCodeLocation
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    name = os.environ.get(LOCATION_ENV, DEFAULT_LOCATION)
    with _LOCATIONS_LOCK:
        location = _LOCATIONS.get(id(instance))
        if location is None or location.name != name:
            origin = InProcessCodeLocationOrigin(
                LoadableTargetOrigin(executable_path=sys.executable, module_name="iiko_pipeline.definitions",
                                     working_directory=os.getcwd()), location_name=name)
            location = _LOCATIONS[id(instance)] = InProcessCodeLocation(origin, instance=instance)
        return location


def submit(instance: dg.DagsterInstance, *, run_id: str, job_name: str, partition_key: str,
           asset_keys: Sequence[dg.AssetKey], run_config: dict, tags: dict[str, str]) -> dg.DagsterRun:
    """Create the run (as the UI's launchpad would: the job's subset for these assets and this partition) and
    put it in the daemon's queue. Returns the queued run."""
    from dagster._core.definitions.selector import JobSubsetSelector

    location = _code_location(instance)
    repository = next(iter(location.get_repositories().values()))
    remote_job = location.get_job(JobSubsetSelector(location_name=location.name, repository_name=repository.name,
                                                    job_name=job_name, op_selection=None,
                                                    asset_selection=asset_keys))
    plan = location.get_execution_plan(remote_job, run_config, step_keys_to_execute=None, known_state=None,
                                       instance=instance).execution_plan_snapshot
    run = instance.create_run(
        job_name=job_name, run_id=run_id, run_config=run_config, resolved_op_selection=None,
        step_keys_to_execute=plan.step_keys_to_execute, op_selection=None, status=None, root_run_id=None,
        parent_run_id=None, tags={**tags, "dagster/partition": partition_key}, job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan, parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(), job_code_origin=remote_job.get_python_origin(),
        asset_selection=frozenset(asset_keys), asset_check_selection=None, asset_graph=repository.asset_graph)
    return instance.submit_run(run.run_id, workspace=None)  # type: ignore[arg-type]  # the queue needs no workspace


class QueuedRun:
    """A run the daemon executes, with the subset of `subprocess.Popen` the launcher uses: it "exits" when the
    run ends in the instance (0 on success). The daemon's run monitoring, not this process, notices a run
    process that died; `terminate` asks the run coordinator to cancel it."""

    pid = None

    def __init__(self, instance: dg.DagsterInstance, run_id: str, poll_seconds: float = 0.5) -> None:
        self.instance, self.run_id, self.poll_seconds = instance, run_id, poll_seconds
        self.submitted_at = datetime.now(UTC)

    def poll(self) -> int | None:
        from iiko_pipeline.defs.onboarding import IN_PROGRESS

        run = self.instance.get_run_by_id(self.run_id)
        if run is None or run.status in IN_PROGRESS:
            return None
        return 0 if run.status == dg.DagsterRunStatus.SUCCESS else 1

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                import subprocess

                raise subprocess.TimeoutExpired(f"iiko run {self.run_id}", timeout or 0)
            time.sleep(self.poll_seconds)
        return code

    def terminate(self) -> None:
        self.instance.run_coordinator.cancel_run(self.run_id)
