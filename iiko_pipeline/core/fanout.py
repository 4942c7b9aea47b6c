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
from datetime import datetime


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
