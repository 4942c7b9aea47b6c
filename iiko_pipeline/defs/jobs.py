"""Jobs: the whole chain for one account partition."""

import dagster as dg

sync_account_job = dg.define_asset_job(
    name="sync_account_job",
    selection=dg.AssetSelection.groups("iiko_raw", "iiko_frames", "warehouse"),
    description="Sync one account: restaurants -> stores -> suppliers -> invoices (raw, frames, tables, checks).",
)
