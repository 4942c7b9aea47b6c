"""The sync core: what an entity is (`specs`) and the steps that sync it (`steps`, `checks`), without Dagster.

Everything that runs a sync (the Dagster assets, the bench) calls these steps with explicit inputs (an
account, a client, a policy) and gets typed results back, or one typed failure (`failures.SyncFailure`).
The Dagster layer (`iiko_pipeline.defs`) only maps them to outputs, metadata, check results and retries.
This package never imports dagster (a test checks it).
"""
