"""Sensors: onboard every connected account that has never synced completely, and keep partitions in step.

However an account was connected (CLI, API, another process), its first run is the whole chain in dependency
order (restaurants -> stores -> suppliers -> invoices), started within one sensor interval.
"""

import os
from collections.abc import Mapping

import dagster as dg

from iiko_pipeline.core.readiness import not_fully_synced
from iiko_pipeline.core.seats import account_servers
from iiko_pipeline.defs.constants import ACCOUNT_TAG, PRIORITY_TAG, SERVER_TAG
from iiko_pipeline.defs.jobs import sync_account_job
from iiko_pipeline.defs.onboarding import onboarding_request
from iiko_pipeline.defs.partitions import accounts_partitions_def
from iiko_pipeline.defs.resources import AccountGuardResource, WarehouseResource, take_back_dead_run
from iiko_pipeline.warehouse import run_locks
from iiko_pipeline.warehouse.credentials import connected_account_ids
from iiko_pipeline.warehouse.settings import INTEGRATIONS_ENABLED_ENV, integrations_enabled

DISABLED_REASON = f"{INTEGRATIONS_ENABLED_ENV} is false: integrations are switched off for this deployment"
#: How often the sensor looks for accounts to onboard (read when the definitions load).
DISCOVERY_INTERVAL_SECONDS = int(os.environ.get("IIKO_DISCOVERY_INTERVAL_SECONDS", "60"))


def run_tags(account_id: str, servers: Mapping[str, str] | None = None, priority: int = 0) -> dict[str, str]:
    """Its account (per-account run limit), iiko server (per-server limit: `core.seats`), queue priority."""
    server = (servers or {}).get(account_id)
    return {ACCOUNT_TAG: account_id, **({SERVER_TAG: server} if server else {}),
            **({PRIORITY_TAG: str(priority)} if priority else {})}


def sweep_dead_runs(context: dg.SensorEvaluationContext, engine, guard: AccountGuardResource) -> list[str]:
    """Take back every account (and server seat) whose run died, so a dead run shows as failed within a tick
    even when nobody looks at its account (best effort: without the key, escrowed tokens cannot be read)."""
    stale = [lock for lock in run_locks.all_locks(engine) if run_locks.is_stale(lock)]
    if not stale:
        return []
    try:
        keyring = guard.keyring()
    except Exception as exc:  # the onboarding below must not stop because of this
        context.log.warning(f"{len(stale)} dead run(s) not taken back: {type(exc).__name__}")
        return []
    recovered = [take_back_dead_run(context.instance, engine, keyring, str(lock.account_id)) for lock in stale]
    return [run for run in recovered if run]


@dg.sensor(job=sync_account_job, minimum_interval_seconds=DISCOVERY_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Onboards every connected account that has never synced all its entities (one run of the "
                       "whole chain; retried after a failure), adds missing account partitions, and marks runs "
                       "whose process died as failed (their account and iiko seat taken back).")
def account_discovery_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                             guard: AccountGuardResource):
    if not integrations_enabled():
        return dg.SkipReason(DISABLED_REASON)
    engine = warehouse.get_engine()
    for run_id in sweep_dead_runs(context, engine, guard):
        context.log.warning(f"run {run_id} had died: marked failed, its account and iiko seat taken back")
    connected = [str(a) for a in connected_account_ids(engine)]
    known = set(context.instance.get_dynamic_partitions(accounts_partitions_def.name))
    new = sorted(a for a in connected if a not in known)
    waiting = not_fully_synced(engine, connected)
    requests, later = [], []
    servers = account_servers(engine, sorted(waiting)) if waiting else {}
    for account in sorted(waiting):
        request = onboarding_request(context.instance, account, tags=run_tags(account, servers))
        if isinstance(request, dg.RunRequest):
            requests.append(request)
            context.log.info(f"onboarding {account}: never synced {', '.join(waiting[account])}")
        else:
            later.append(request)
    if not requests and not new:
        detail = f"; waiting: {'; '.join(later)}" if later else ""
        return dg.SkipReason(f"no account to onboard ({len(connected)} connected, {len(waiting)} not fully "
                             f"synced){detail}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[accounts_partitions_def.build_add_request(new)] if new else [],
    )
