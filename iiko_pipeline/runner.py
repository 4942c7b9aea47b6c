"""The process that executes one sync run started by the CLI or the API (`services.launcher`).

`python -m iiko_pipeline.runner` reads the job (run id, account, entities, run config, tags, the launcher's
instance ref) as JSON on standard input and executes the run under that id against that instance. The launcher already
holds the account's lock under the run id; the run's `AccountGuardResource` takes it over with its heartbeat.
Exit status 0 when the run succeeded.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    job = json.load(sys.stdin)
    import dagster as dg

    from iiko_pipeline.services.sync import run_account_sync

    with dg.DagsterInstance.from_ref(dg.deserialize_value(job["instance_ref"])) as instance:
        outcome = run_account_sync(instance, job["account"], job["entities"], run_config=job["run_config"],
                                   extra_tags=job["tags"], log_level=job["log_level"], run_id=job["run_id"],
                                   add_prerequisites=False)
    return 0 if outcome.success else 1


if __name__ == "__main__":
    sys.exit(main())
