"""Jobs: the whole chain for one account partition, and its two halves for the schedules."""

import dagster as dg

from iiko_pipeline.defs.constants import ENTITIES


def _entity_assets(*entities: str) -> dg.AssetSelection:
    return dg.AssetSelection.assets(*[k for e in entities for k in (f"raw_{e}", f"{e}_frame", e)])


sync_account_job = dg.define_asset_job(
    name="sync_account_job",
    selection=_entity_assets(*ENTITIES),
    description="Sync one account: restaurants -> stores -> suppliers -> invoices (raw, frames, tables, checks). "
                "Onboarding of a new account uses it too: invoices start history_days back.",
)

invoices_job = dg.define_asset_job(
    name="invoices_job",
    selection=_entity_assets("invoices"),
    description="Incremental invoices for one account: watermark - lookback .. today, window by window.",
)

reference_data_job = dg.define_asset_job(
    name="reference_data_job",
    selection=_entity_assets("restaurants", "stores", "suppliers"),
    description="Full reload of restaurants, stores and suppliers for one account.",
)
