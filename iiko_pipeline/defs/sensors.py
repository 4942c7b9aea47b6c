"""Sensors: notice connected accounts that are not partitions yet, add them and onboard each once."""


import dagster as dg

from iiko_pipeline.defs.constants import ACCOUNT_TAG
from iiko_pipeline.defs.jobs import sync_account_job
from iiko_pipeline.defs.partitions import accounts_partitions_def
from iiko_pipeline.defs.resources import WarehouseResource
from iiko_pipeline.warehouse.credentials import connected_account_ids
from iiko_pipeline.warehouse.settings import INTEGRATIONS_ENABLED_ENV, integrations_enabled

DISABLED_REASON = f"{INTEGRATIONS_ENABLED_ENV} is false: integrations are switched off for this deployment"


def run_tags(account_id: str) -> dict[str, str]:
    """Every run carries its account, for the UI filter and the per-account run limit in dagster.yaml."""
    return {ACCOUNT_TAG: account_id}


@dg.sensor(job=sync_account_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Adds a partition for every newly connected account and requests its onboarding once.")
def account_discovery_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    if not integrations_enabled():
        return dg.SkipReason(DISABLED_REASON)
    connected = [str(a) for a in connected_account_ids(warehouse.get_engine())]
    known = set(context.instance.get_dynamic_partitions(accounts_partitions_def.name))
    new = sorted(a for a in connected if a not in known)
    if not new:
        return dg.SkipReason(f"no new accounts ({len(connected)} connected, all partitions exist)")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=a, run_key=f"onboard:{a}", tags=run_tags(a)) for a in new],
        dynamic_partitions_requests=[accounts_partitions_def.build_add_request(new)],
    )
