"""Which accounts a schedule tick starts: every connected account once per period, spread over the period.

A thousand accounts on one hourly cron would all be queued at minute 7 and wait in the daemon's queue for most
of the hour. Instead the cron ticks `spread` times per period (every 60/spread minutes) and each tick takes the
accounts whose stable slot is the tick's: an account's slot comes from its id, so it syncs at the same minute
every hour, and accounts are spread evenly whatever their number. Dagster-free, so the arithmetic is tested
fast.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine


def check_spread(spread: int, cron: str) -> None:
    """A spread must divide the hour, and the cron must tick exactly at the slots' minutes."""
    if spread < 1 or 60 % spread:
        raise ValueError(f"spread must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, ...), not {spread}")
    minute = cron.split()[0]
    expected = f"*/{60 // spread}" if spread > 1 else None
    if expected is not None and minute != expected:
        raise ValueError(f"a schedule spread over {spread} ticks must tick at minutes {expected!r}, not {cron!r}")


def account_slot(account_id: str, spread: int) -> int:
    """The account's tick within the period: stable, and even across random UUIDs."""
    return uuid.UUID(str(account_id)).int % spread


def tick_slot(when: datetime, spread: int) -> int:
    return when.minute * spread // 60


def due_accounts(accounts: Iterable[str], when: datetime | None, spread: int) -> list[str]:
    """The accounts this tick starts; all of them for a tick with no scheduled time (started by hand)."""
    if when is None or spread <= 1:
        return list(accounts)
    slot = tick_slot(when, spread)
    return [a for a in accounts if account_slot(a, spread) == slot]


@dataclass(frozen=True)
class TickPlan:
    """The accounts a tick starts, and their iiko servers (for the `iiko/server` run tag)."""

    accounts: list[str]
    servers: dict[str, str]


def plan_tick(engine: Engine, partitions: set[str], when: datetime | None, spread: int,
              entities: Iterable[str]) -> TickPlan | str:
    """The connected account partitions due at this tick whose references of `entities` have synced, or why
    none (a reason for the schedule to skip with)."""
    from iiko_pipeline.core.readiness import lacking_prerequisites
    from iiko_pipeline.core.seats import account_servers
    from iiko_pipeline.warehouse.credentials import connected_account_ids

    connected = {str(a) for a in connected_account_ids(engine)}
    candidates = sorted(partitions & connected)
    accounts = due_accounts(candidates, when, spread)
    if candidates and not accounts:
        return f"none of the {len(candidates)} connected accounts is due at this tick (each is due at one of " \
               f"{spread} ticks per period)"
    waiting = lacking_prerequisites(engine, accounts, list(entities))
    accounts = [a for a in accounts if a not in waiting]
    if not accounts:
        return (f"no connected accounts ({len(partitions)} partitions, {len(connected)} connected"
                + (f", {len(waiting)} waiting for their reference data to sync" if waiting else "") + ")")
    return TickPlan(accounts, account_servers(engine, accounts))
