"""Freshness: warn when an account's dated entities have not synced successfully for too long.

One check per spec with a `freshness_env` (`<entity>_fresh`), evaluated by its own small job on a schedule, so
a stalled account shows up in the UI even when its runs stop being launched at all (which an in-run check
could never notice).
"""

import os
from datetime import UTC, datetime, timedelta

import dagster as dg

from iiko_pipeline.core.specs import REGISTRY, EntitySpec
from iiko_pipeline.defs.resources import WarehouseResource
from iiko_pipeline.warehouse.credentials import connected_account_ids
from iiko_pipeline.warehouse.state import last_successes

DEFAULT_MAX_AGE_HOURS = 3.0


def max_age(env: str) -> timedelta:
    raw = os.environ.get(env, "").strip()
    try:
        return timedelta(hours=float(raw)) if raw else timedelta(hours=DEFAULT_MAX_AGE_HOURS)
    except ValueError:
        raise ValueError(f"{env} must be a number of hours, got {raw!r}") from None


def stale_accounts(engine, entity: str, now: datetime, limit: timedelta) -> list[str]:
    accounts = [str(a) for a in connected_account_ids(engine)]
    synced = last_successes(engine, accounts)
    stale = []
    for account in accounts:
        last = synced.get(account, {}).get(entity)
        if last is None or now - last > limit:
            stale.append(f"{account}: last {entity} sync {last.isoformat() if last else 'never'}")
    return stale


def _freshness_check(spec: EntitySpec) -> dg.AssetChecksDefinition:
    env = spec.freshness_env or ""

    @dg.asset_check(asset=spec.name, name=f"{spec.name}_fresh", blocking=False,
                    description=f"Every connected account's {spec.name} synced within ${env} hours (default 3).")
    def fresh(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        limit = max_age(env)
        stale = stale_accounts(warehouse.get_engine(), spec.name, datetime.now(UTC), limit)
        return dg.AssetCheckResult(
            passed=not stale, severity=dg.AssetCheckSeverity.WARN,
            metadata={"max_age_hours": limit.total_seconds() / 3600, "failing_count": len(stale),
                      "failing_sample": stale[:20]})

    return fresh


FRESHNESS_CHECKS = [_freshness_check(spec) for spec in REGISTRY if spec.freshness_env]

freshness_job = dg.define_asset_job(
    name="freshness_job", selection=dg.AssetSelection.checks(*FRESHNESS_CHECKS),
    description="Evaluates the freshness checks across all connected accounts.")
