"""Names shared by assets, jobs, sensors and the instance config (dagster_home/dagster.yaml)."""

ACCOUNT_TAG = "iiko/account"  # the per-account run limit in dagster.yaml keys on this tag
SYNC_JOB = "sync_account_job"  # the whole chain for one account: onboarding, the CLI and the API run it
TRIGGER_TAG = "iiko/trigger"  # who asked for the run: "onboarding" (the discovery sensor), "api", ...
SERVER_TAG = "iiko/server"  # the account's iiko server (scheme://host:port): the queue's per-server run limit
PRIORITY_TAG = "dagster/priority"  # the queue starts higher first: people's syncs, hourly, then onboarding/nightly
INTERACTIVE_PRIORITY = 2  # CLI, API and page syncs (a person waits); hourly is 1 (core.specs), the rest 0
REQUESTED_TAG = "iiko/requested"  # the entity an API or page sync was asked for ("all": every entity)
RAW_GROUP = "iiko_raw"
FRAMES_GROUP = "iiko_frames"
TABLES_GROUP = "warehouse"
