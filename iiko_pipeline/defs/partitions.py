"""One dynamic partition per connected account, keyed by the account's UUID (never a display name)."""

import dagster as dg

accounts_partitions_def = dg.DynamicPartitionsDefinition(name="accounts")
