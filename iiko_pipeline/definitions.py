"""The one Definitions object Dagster loads (`dagster dev -m iiko_pipeline.definitions`)."""

import os
import warnings

import dagster as dg

from iiko_pipeline.defs.assets import ENTITY_ASSETS
from iiko_pipeline.defs.freshness import FRESHNESS_CHECKS, freshness_job
from iiko_pipeline.defs.io_managers import ParquetFrameIOManager, RawResultIOManager
from iiko_pipeline.defs.jobs import GROUP_JOBS, sync_account_job
from iiko_pipeline.defs.resources import AccountGuardResource, IikoResource, WarehouseResource
from iiko_pipeline.defs.schedules import GROUP_SCHEDULES, freshness_schedule
from iiko_pipeline.defs.sensors import account_discovery_sensor

# Data versions on raw outputs are "beta" in 1.13; we rely on them knowingly, so keep the console quiet.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

warehouse = WarehouseResource()

defs = dg.Definitions(
    assets=ENTITY_ASSETS,
    asset_checks=FRESHNESS_CHECKS,
    jobs=[sync_account_job, *GROUP_JOBS.values(), freshness_job],
    sensors=[account_discovery_sensor],
    schedules=[*GROUP_SCHEDULES, freshness_schedule],
    resources={
        "warehouse": warehouse,
        "iiko": IikoResource(encryption_key=dg.EnvVar("CREDENTIAL_ENCRYPTION_KEY"), warehouse=warehouse,
                             retry_base_delay=float(os.environ.get("IIKO_RETRY_BASE_DELAY_SECONDS", "0.5"))),
        "guard": AccountGuardResource(encryption_key=dg.EnvVar("CREDENTIAL_ENCRYPTION_KEY"), warehouse=warehouse),
        "frame_io_manager": ParquetFrameIOManager(),
        "raw_io_manager": RawResultIOManager(),
    },
    # One process, one iiko login per run: every step shares the resource (and its licence seat).
    executor=dg.in_process_executor,
)
