"""Which accounts a schedule tick starts: every connected account once per period, spread over the period.

A thousand accounts on one hourly cron would all be queued at minute 7 and wait in the daemon's queue for most
of the hour. Instead the cron ticks `spread` times per period (every 60/spread minutes) and each tick takes the
accounts whose stable slot is the tick's: an account's slot comes from its id, so it syncs at the same minute
every hour, and accounts are spread evenly whatever their number. Dagster-free, so the arithmetic is tested
fast.

A load test cannot wait real hours: `IIKO_HOURLY_PERIOD_MINUTES` (a divisor of 60 below 60, e.g. 20) compresses
the hourly schedule's period, which then ticks every minute and starts each account once per period
(`compressed`). Production leaves it unset.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from iiko_pipeline.core.specs import ScheduleGroup

PERIOD_ENV = "IIKO_HOURLY_PERIOD_MINUTES"


def check_spread(spread: int, cron: str, period: int = 60) -> None:
    """A period must divide the hour and a spread the period, and the cron must tick exactly at the slots'
    minutes."""
    if period < 1 or 60 % period:
        raise ValueError(f"a period must divide 60 minutes (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60), not {period}")
    if spread < 1 or period % spread:
        raise ValueError(f"spread must divide the period of {period} minutes, not {spread}")
    step = period // spread
    expected = None if spread == 1 and period == 60 else ("*" if step == 1 else f"*/{step}")
    minute = cron.split()[0]
    if expected is not None and minute != expected:
        raise ValueError(f"a schedule spread over {spread} ticks per {period} minutes must tick at minutes "
                         f"{expected!r}, not {cron!r}")


def account_slot(account_id: str, spread: int) -> int:
    """The account's tick within the period: stable, and even across random UUIDs."""
    return uuid.UUID(str(account_id)).int % spread


def tick_slot(when: datetime, spread: int, period: int = 60) -> int:
    return (when.minute % period) * spread // period


def due_accounts(accounts: Iterable[str], when: datetime | None, spread: int, period: int = 60) -> list[str]:
    """The accounts this tick starts; all of them for a tick with no scheduled time (started by hand)."""
    if when is None or spread <= 1:
        return list(accounts)
    slot = tick_slot(when, spread, period)
    return [a for a in accounts if account_slot(a, spread) == slot]


def compressed(group: ScheduleGroup, environ: Mapping[str, str] | None = None) -> ScheduleGroup:
    """The hourly group as `IIKO_HOURLY_PERIOD_MINUTES` asks: unchanged when unset, else ticking every minute
    and starting each account once per that many minutes (one slot per minute)."""
    raw = (os.environ if environ is None else environ).get(PERIOD_ENV, "").strip()
    if not raw:
        return group
    if not raw.isdigit() or not 0 < int(raw) < 60 or 60 % int(raw):
        raise ValueError(f"{PERIOD_ENV} must be a divisor of 60 below 60 (e.g. 12, 15, 20, 30), not {raw!r}")
    minutes = int(raw)
    return replace(group, cron="* * * * *", spread=minutes, period_minutes=minutes,
                   description=f"Load-test cadence ({PERIOD_ENV}={minutes}): every {minutes} minutes, each "
                               f"connected account at its own minute: the dated entities, incrementally.")


@dataclass(frozen=True)
class TickPlan:
    """The accounts a tick starts, and their iiko servers (for the `iiko/server` run tag)."""

    accounts: list[str]
    servers: dict[str, str]


def plan_tick(engine: Engine, partitions: set[str], when: datetime | None, spread: int,
              entities: Iterable[str], period: int = 60) -> TickPlan | str:
    """The connected account partitions due at this tick whose references of `entities` have synced, or why
    none (a reason for the schedule to skip with)."""
    from iiko_pipeline.core.readiness import lacking_prerequisites
    from iiko_pipeline.core.seats import account_servers
    from iiko_pipeline.warehouse.credentials import connected_account_ids

    connected = {str(a) for a in connected_account_ids(engine)}
    candidates = sorted(partitions & connected)
    accounts = due_accounts(candidates, when, spread, period)
    if candidates and not accounts:
        return f"none of the {len(candidates)} connected accounts is due at this tick (each is due at one of " \
               f"{spread} ticks per period)"
    waiting = lacking_prerequisites(engine, accounts, list(entities))
    accounts = [a for a in accounts if a not in waiting]
    if not accounts:
        return (f"no connected accounts ({len(partitions)} partitions, {len(connected)} connected"
                + (f", {len(waiting)} waiting for their reference data to sync" if waiting else "") + ")")
    return TickPlan(accounts, account_servers(engine, accounts))
