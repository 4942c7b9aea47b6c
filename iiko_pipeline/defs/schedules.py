"""Schedules, one per schedule group (`core.specs.SCHEDULES`), each one run per connected account partition.

Schedules cannot add partitions (dagster-io/dagster#14921): the discovery sensor does that; schedules only
fan out over partitions whose account is still connected. Every run carries its account tag, which the
per-account run limit in dagster.yaml keys on. A group leaves out accounts whose references of its entities
have never synced (their runs would be refused): the discovery sensor onboards them with the whole chain.
"""

import dagster as dg

from iiko_pipeline.core.fanout import plan_tick
from iiko_pipeline.core.specs import SCHEDULES, ScheduleGroup
from iiko_pipeline.defs.freshness import freshness_job
from iiko_pipeline.defs.jobs import GROUP_JOBS
from iiko_pipeline.defs.partitions import accounts_partitions_def
from iiko_pipeline.defs.resources import WarehouseResource
from iiko_pipeline.defs.sensors import DISABLED_REASON, run_tags
from iiko_pipeline.warehouse.settings import integrations_enabled


def account_run_requests(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource,
                         group: ScheduleGroup):
    """One request per connected account partition whose references of the group's entities have synced."""
    if not integrations_enabled():
        return dg.SkipReason(DISABLED_REASON)
    partitions = set(context.instance.get_dynamic_partitions(accounts_partitions_def.name))
    when = context.scheduled_execution_time
    plan = plan_tick(warehouse.get_engine(), partitions, when, group.spread, group.entities, group.period_minutes)
    if isinstance(plan, str):
        return dg.SkipReason(plan)
    tick = when.isoformat() if when else "manual"
    return [dg.RunRequest(partition_key=a, run_key=f"{group.run_key_prefix}:{a}:{tick}",
                          tags=run_tags(a, plan.servers, group.priority)) for a in plan.accounts]


def _group_schedule(group: ScheduleGroup) -> dg.ScheduleDefinition:
    @dg.schedule(name=group.schedule, job=GROUP_JOBS[group.name], cron_schedule=group.cron,
                 execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
                 description=group.description)
    def group_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
        return account_run_requests(context, warehouse, group)

    return group_schedule


GROUP_SCHEDULES = [_group_schedule(group) for group in SCHEDULES]


@dg.schedule(job=freshness_job, cron_schedule="*/30 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Every 30 minutes: warn about accounts whose dated entities are older than their limit.")
def freshness_schedule(context: dg.ScheduleEvaluationContext):
    if not integrations_enabled():
        return dg.SkipReason(DISABLED_REASON)
    return dg.RunRequest(run_key=None)
