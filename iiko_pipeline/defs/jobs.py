"""Jobs: the whole chain for one account partition, and one job per schedule group (`core.specs.SCHEDULES`)."""

import dagster as dg

from iiko_pipeline.core.specs import ENTITY_NAMES, SCHEDULES
from iiko_pipeline.defs.constants import SYNC_JOB


def entity_assets(*entities: str) -> dg.AssetSelection:
    return dg.AssetSelection.assets(*[k for e in entities for k in (f"raw_{e}", f"{e}_frame", e)])


sync_account_job = dg.define_asset_job(
    name=SYNC_JOB,
    selection=entity_assets(*ENTITY_NAMES),
    description=f"Sync one account: {' -> '.join(ENTITY_NAMES)} (raw, frames, tables, checks). Onboarding of a "
                "new account uses it too: dated entities start history_days back.",
)

GROUP_JOBS = {group.name: dg.define_asset_job(name=group.job, selection=entity_assets(*group.entities),
                                              description=f"{group.description} ({', '.join(group.entities)})")
              for group in SCHEDULES}
