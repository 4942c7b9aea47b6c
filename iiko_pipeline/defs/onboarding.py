"""Onboarding runs: whether an account's run is queued or going, and when to (re)try its first complete sync.

Which accounts need one is `core.readiness.not_fully_synced`; a failed onboarding is retried after
`IIKO_ONBOARDING_RETRY_SECONDS` (default 600).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import dagster as dg

from iiko_pipeline.defs.constants import ACCOUNT_TAG, TRIGGER_TAG

ONBOARDING = "onboarding"
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def retry_after_seconds() -> float:
    return float(os.environ.get("IIKO_ONBOARDING_RETRY_SECONDS", "600"))


def running_run(instance: dg.DagsterInstance, account: str) -> dg.DagsterRun | None:
    """A run of the account that is queued or going, if any (every run we launch carries the account tag)."""
    records = instance.get_run_records(dg.RunsFilter(tags={ACCOUNT_TAG: account}, statuses=IN_PROGRESS), limit=1)
    return records[0].dagster_run if records else None


def onboarding_attempts(instance: dg.DagsterInstance, account: str) -> list[dg.RunRecord]:
    """The account's onboarding runs, newest first."""
    return list(instance.get_run_records(dg.RunsFilter(tags={ACCOUNT_TAG: account, TRIGGER_TAG: ONBOARDING})))


def onboarding_request(instance: dg.DagsterInstance, account: str, now: datetime | None = None,
                       tags: dict[str, str] | None = None) -> dg.RunRequest | str:
    """The run request that onboards the account now, or why not now (a run is going, or the last attempt
    ended less than the retry interval ago). The run key counts attempts, so a repeated tick asks once."""
    running = running_run(instance, account)
    if running is not None:
        return f"{account}: run {running.run_id} is {running.status.value.lower()}"
    attempts = onboarding_attempts(instance, account)
    if attempts:
        last = attempts[0]
        ended = last.end_time or last.update_timestamp.timestamp()
        wait = retry_after_seconds() - ((now or datetime.now(UTC)).timestamp() - ended)
        if wait > 0:
            return f"{account}: last onboarding run {attempts[0].dagster_run.run_id} " \
                   f"{attempts[0].dagster_run.status.value.lower()}; next attempt in {wait:.0f} s"
    return dg.RunRequest(partition_key=account, run_key=f"onboard:{account}:{len(attempts)}",
                         tags={ACCOUNT_TAG: account, **(tags or {}), TRIGGER_TAG: ONBOARDING})
