"""Schedules: hourly invoices and daily reference data, one run per connected account partition.

Schedules cannot add partitions (dagster-io/dagster#14921): the discovery sensor does that; schedules only
fan out over partitions whose account is still connected. Every run carries its account tag, which the
per-account run limit in dagster.yaml keys on. The hourly invoice schedule leaves out accounts whose
reference data has never synced (their invoice run would be refused): the discovery sensor onboards them
with the whole chain, and the nightly reference run brings them in too.
"""

import dagster as dg

from iiko_pipeline.defs.freshness import invoice_freshness_job
from iiko_pipeline.defs.jobs import invoices_job, reference_data_job
from iiko_pipeline.defs.onboarding import lacking_prerequisites
from iiko_pipeline.defs.partitions import accounts_partitions_def
from iiko_pipeline.defs.resources import WarehouseResource
from iiko_pipeline.defs.sensors import DISABLED_REASON, run_tags
from iiko_pipeline.warehouse.credentials import connected_account_ids
from iiko_pipeline.warehouse.settings import integrations_enabled


def account_run_requests(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource, prefix: str,
                         entity: str | None = None):
    """One request per connected account partition; with `entity`, only accounts whose references of that
    entity have synced (the others are the discovery sensor's to onboard)."""
    if not integrations_enabled():
        return dg.SkipReason(DISABLED_REASON)
    partitions = set(context.instance.get_dynamic_partitions(accounts_partitions_def.name))
    connected = {str(a) for a in connected_account_ids(warehouse.get_engine())}
    accounts = sorted(partitions & connected)
    waiting = lacking_prerequisites(warehouse.get_engine(), accounts, entity) if entity else set()
    accounts = [a for a in accounts if a not in waiting]
    if not accounts:
        return dg.SkipReason(f"no connected accounts ({len(partitions)} partitions, {len(connected)} connected"
                             + (f", {len(waiting)} waiting for their reference data to sync" if waiting else "")
                             + ")")
    tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "manual"
    return [dg.RunRequest(partition_key=a, run_key=f"{prefix}:{a}:{tick}", tags=run_tags(a)) for a in accounts]


@dg.schedule(job=invoices_job, cron_schedule="7 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Every hour: incremental invoices (watermark - 14 days .. today) for each connected account.")
def invoices_hourly_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    return account_run_requests(context, warehouse, "invoices", entity="invoices")


@dg.schedule(job=reference_data_job, cron_schedule="20 2 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Every night: restaurants, stores and suppliers for each connected account.")
def reference_data_daily_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    return account_run_requests(context, warehouse, "reference")


@dg.schedule(job=invoice_freshness_job, cron_schedule="*/30 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Every 30 minutes: warn about accounts whose invoices are older than the freshness limit.")
def invoice_freshness_schedule(context: dg.ScheduleEvaluationContext):
    if not integrations_enabled():
        return dg.SkipReason(DISABLED_REASON)
    return dg.RunRequest(run_key=None)
