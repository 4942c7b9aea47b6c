"""Freshness: warn when an account's invoices have not synced successfully for too long.

A check on the invoices asset, evaluated by its own small job on a schedule, so a stalled account shows up in
the UI even when its runs stop being launched at all (which an in-run check could never notice).
"""

import os
from datetime import UTC, datetime, timedelta

import dagster as dg

from iiko_pipeline.defs.resources import WarehouseResource
from iiko_pipeline.warehouse.credentials import connected_account_ids
from iiko_pipeline.warehouse.state import get_state

MAX_AGE_ENV = "INVOICE_FRESHNESS_HOURS"
DEFAULT_MAX_AGE_HOURS = 3.0


def max_age() -> timedelta:
    raw = os.environ.get(MAX_AGE_ENV, "").strip()
    try:
        return timedelta(hours=float(raw)) if raw else timedelta(hours=DEFAULT_MAX_AGE_HOURS)
    except ValueError:
        raise ValueError(f"{MAX_AGE_ENV} must be a number of hours, got {raw!r}") from None


def stale_accounts(engine, now: datetime, limit: timedelta) -> list[str]:
    stale = []
    for account in connected_account_ids(engine):
        last = get_state(engine, account).get("invoices", {}).get("last_success_at")
        if last is None or now - last > limit:
            when = last.isoformat() if last else "never"
            stale.append(f"{account}: last invoice sync {when}")
    return stale


@dg.asset_check(asset="invoices", name="invoices_fresh", blocking=False,
                description=f"Every connected account's invoices synced within ${MAX_AGE_ENV} hours (default 3).")
def invoices_fresh(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    limit = max_age()
    stale = stale_accounts(warehouse.get_engine(), datetime.now(UTC), limit)
    return dg.AssetCheckResult(
        passed=not stale, severity=dg.AssetCheckSeverity.WARN,
        metadata={"max_age_hours": limit.total_seconds() / 3600, "failing_count": len(stale),
                  "failing_sample": stale[:20]})


invoice_freshness_job = dg.define_asset_job(
    name="invoice_freshness_job", selection=dg.AssetSelection.checks(invoices_fresh),
    description="Evaluates the invoices_fresh check across all connected accounts.")
