"""Syncs started by the CLI and the API: each is an ordinary run of the instance, in a process of its own.

The launcher picks the run id, takes the account's lock under it (so a second request for a busy account is
refused at once, in any process, naming the run that holds it), and starts the run's own process
(`iiko_pipeline.runner`, forked from a warm forkserver), which executes the run under that id; the run's
`AccountGuardResource` then holds the lock with a heartbeat until it ends. Runs of different accounts run side
by side, each in its own process (no logging-lock deadlock between runs, no sync waiting for another
account's backfill). If the child dies, the launcher sees it and takes the account back at once (its iiko
seat freed, its run marked failed); if the launcher dies too, the lock's heartbeat stops and whoever looks at
the account next does the same.

Where a dagster-daemon queues the instance's runs (production), the run is submitted to its queue instead
(`services.queue`, `IIKO_RUN_SUBMISSION`): the daemon's launcher executes it under the instance's run limits,
and the caller waits for it the same way. The account's lock is held only while the run is created and queued;
from then on the queued run itself marks the account busy, and it takes the lock when it starts.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dagster as dg
from sqlalchemy.engine import Engine

from iiko_pipeline.core.recovery import HEARTBEAT_TIMEOUT
from iiko_pipeline.core.seats import account_servers
from iiko_pipeline.core.specs import ENTITY_NAMES
from iiko_pipeline.defs.constants import ACCOUNT_TAG, INTERACTIVE_PRIORITY, SYNC_JOB
from iiko_pipeline.defs.onboarding import IN_PROGRESS, running_run
from iiko_pipeline.defs.resources import end_dead_run, take_back_dead_run
from iiko_pipeline.defs.sensors import run_tags
from iiko_pipeline.runner import RunProcess
from iiko_pipeline.services.queue import QueuedRun, submit, use_queue
from iiko_pipeline.services.sync import AccountSyncOutcome, plan_entities, read_outcome, selected_config, selection_for
from iiko_pipeline.warehouse import run_locks
from iiko_pipeline.warehouse.credentials import IIKO, delete_credentials
from iiko_pipeline.warehouse.crypto import KeyRing


class AccountBusyError(Exception):
    """A sync of this account is running; `run_id` names the run that holds it."""

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


@dataclass
class Launch:
    run_id: str
    account: str
    entities: list[str]
    prerequisites: list[str]
    process: RunProcess | QueuedRun
    settled: bool = field(default=False)


#: Runs past the queue: each takes the account's lock as its resources start, within seconds.
ACTIVE = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
          dg.DagsterRunStatus.CANCELING]
#: States a run launcher and the daemon's run monitoring own: busy however long they last.
_MONITORED = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING}


def _busy(account: str, run_id: str, doing: str) -> AccountBusyError:
    return AccountBusyError(f"account {account} is busy: run {run_id} is {doing}; wait for it to finish", run_id)


def ensure_idle(instance: dg.DagsterInstance, engine: Engine, keyring: KeyRing, account: str, *,
                queued_blocks: bool = False) -> None:
    """Raise AccountBusyError if a live run holds the account (a dead one is taken back first), or if a run of
    the account is starting elsewhere and has not taken the lock yet. A run that is past the queue but never
    took the lock within the heartbeat timeout died starting: it is marked failed instead of blocking.

    `queued_blocks`: a run waiting in the daemon's queue counts as busy too (when syncs go through that queue;
    without a daemon, a queued run may never start and must not block the account)."""
    take_back_dead_run(instance, engine, keyring, account)
    holder = run_locks.current(engine, account)
    if holder is not None:
        raise _busy(account, holder.run_id, "syncing it")
    now = time.time()
    statuses = IN_PROGRESS if queued_blocks else ACTIVE
    for record in instance.get_run_records(dg.RunsFilter(tags={ACCOUNT_TAG: account}, statuses=statuses)):
        run = record.dagster_run
        if run.status in _MONITORED or now - record.update_timestamp.timestamp() < HEARTBEAT_TIMEOUT.total_seconds():
            raise _busy(account, run.run_id, run.status.value.lower())
        end_dead_run(instance, run, message=f"the run never took account {account}'s lock within "
                                            f"{HEARTBEAT_TIMEOUT.total_seconds():.0f} s: its process died starting")


def disconnect_account(instance: dg.DagsterInstance, engine: Engine, keyring: KeyRing, account_id: str) -> bool:
    """Delete the account's credentials (the data synced stays) once no run holds it; False when it had none.
    Raises AccountBusyError naming the run that holds it (a dead run is taken back first)."""
    ensure_idle(instance, engine, keyring, account_id)
    return delete_credentials(engine, account_id, IIKO)


def start_sync(instance: dg.DagsterInstance, engine: Engine, keyring: KeyRing, account_id: str,
               entities: Sequence[str] = ENTITY_NAMES, *, run_config: dict | None = None,
               extra_tags: dict[str, str] | None = None, log_level: str = "WARNING",
               show_output: bool = False) -> Launch:
    """Lock the account for a new run and start the process that executes it; returns at once."""
    account = str(uuid.UUID(account_id))
    planned, missing = plan_entities(engine, account, entities)
    queued = use_queue(instance)
    ensure_idle(instance, engine, keyring, account, queued_blocks=queued)
    run_id = str(uuid.uuid4())  # what Dagster makes run ids of; chosen here so the lock can name the run
    holder = run_locks.acquire(engine, account, run_id)  # this process holds it until the run takes it over
    if holder is not None:
        raise _busy(account, holder.run_id, "syncing it")
    if queued:
        return _submit(instance, engine, account, run_id, planned, missing, run_config, extra_tags)
    job = {"run_id": run_id, "account": account, "entities": planned, "run_config": run_config or {},
           "tags": extra_tags or {}, "log_level": log_level, "show_output": show_output,
           "instance_ref": dg.serialize_value(instance.get_ref()),  # the very instance, whatever its config
           "env": dict(os.environ)}
    try:
        process = RunProcess(job)
    except BaseException:
        run_locks.release(engine, account, run_id)
        raise
    return Launch(run_id, account, planned, missing, process)


def _submit(instance: dg.DagsterInstance, engine: Engine, account: str, run_id: str, planned: list[str],
            missing: list[str], run_config: dict | None, extra_tags: dict[str, str] | None) -> Launch:
    """Create the run and queue it while holding the account's lock; a request that got the lock just before
    us had already created its run, which shows now (the earlier one wins, the later one is refused)."""
    try:
        other = running_run(instance, account)
        if other is not None:
            raise _busy(account, other.run_id, other.status.value.lower())
        submit(instance, run_id=run_id, job_name=SYNC_JOB, partition_key=account, asset_keys=selection_for(planned),
               run_config=selected_config(run_config, planned),
               tags={**run_tags(account, account_servers(engine, [account]), INTERACTIVE_PRIORITY),
                     **(extra_tags or {})})
    finally:
        run_locks.release(engine, account, run_id)  # the queued run is what marks the account busy now
    return Launch(run_id, account, planned, missing, QueuedRun(instance, run_id))


def settle(instance: dg.DagsterInstance, engine: Engine, keyring: KeyRing, launch: Launch) -> None:
    """After the run's process ended: if it did not end its run (killed, crashed before or during it), take the
    account back now and mark the run failed, rather than wait for its heartbeat to go stale."""
    if launch.settled:
        return
    take_back_dead_run(instance, engine, keyring, launch.account, dead_run_id=launch.run_id)
    run = instance.get_run_by_id(launch.run_id)
    if run is not None:  # end_dead_run marks it failed only if it is still in progress
        end_dead_run(instance, run, message=f"the run's process exited with {launch.process.returncode} "
                                            "before the run ended")
    launch.settled = True


def wait(instance: dg.DagsterInstance, engine: Engine, keyring: KeyRing, launch: Launch,
         on_tick: Callable[[], None] | None = None, tick_seconds: float = 2.0) -> AccountSyncOutcome:
    """Wait for the run's process (calling `on_tick` now and then, e.g. to show progress) and read its outcome."""
    while True:
        try:
            launch.process.wait(timeout=tick_seconds if on_tick else None)
            break
        except subprocess.TimeoutExpired:
            if on_tick is not None:
                on_tick()
    settle(instance, engine, keyring, launch)
    return outcome_of(instance, launch)


def outcome_of(instance: dg.DagsterInstance, launch: Launch) -> AccountSyncOutcome:
    run = instance.get_run_by_id(launch.run_id)
    success = run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    outcome = read_outcome(instance, launch.run_id, success, launch.entities, prerequisites=launch.prerequisites)
    if run is None and not outcome.failures:
        outcome.failures.append(f"the run's process exited with {launch.process.returncode} before the run began")
    return outcome
