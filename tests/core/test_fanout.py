"""Spreading a schedule's accounts over its period (`core.fanout`): each account is due at exactly one tick,
always the same one, and a thousand accounts fill the ticks evenly."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from iiko_pipeline.core.fanout import account_slot, check_spread, due_accounts, tick_slot
from iiko_pipeline.core.specs import SCHEDULES


def accounts(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def ticks_of_an_hour(step: int) -> list[datetime]:
    return [datetime(2026, 12, 2, 9, minute, tzinfo=UTC) for minute in range(0, 60, step)]


def test_every_account_is_due_once_an_hour_at_a_stable_tick_and_the_ticks_are_even() -> None:
    everyone = accounts(1000)
    due_per_tick = [due_accounts(everyone, when, 12) for when in ticks_of_an_hour(5)]
    assert sorted(a for due in due_per_tick for a in due) == sorted(everyone)  # each exactly once
    sizes = [len(due) for due in due_per_tick]
    assert max(sizes) <= 1000 / 12 * 1.35 and min(sizes) >= 1000 / 12 * 0.65, sizes
    again = [due_accounts(everyone, when.replace(hour=17), 12) for when in ticks_of_an_hour(5)]
    assert again == due_per_tick  # the same minute every hour


def test_a_tick_started_by_hand_takes_every_account_and_no_spread_takes_all() -> None:
    everyone = accounts(50)
    assert due_accounts(everyone, None, 12) == everyone
    assert due_accounts(everyone, datetime(2026, 12, 2, 9, 7, tzinfo=UTC), 1) == everyone


def test_slots_follow_the_minute() -> None:
    assert [tick_slot(when, 12) for when in ticks_of_an_hour(5)] == list(range(12))
    assert tick_slot(datetime(2026, 12, 2, 9, 7, tzinfo=UTC), 12) == 1  # a late tick still counts as its slot
    assert Counter(account_slot(a, 4) for a in accounts(400)).keys() == {0, 1, 2, 3}


@pytest.mark.parametrize(("spread", "cron"), [(7, "*/7 * * * *"), (12, "7 * * * *"), (12, "*/10 * * * *"),
                                              (0, "* * * * *")])
def test_a_spread_that_the_cron_does_not_tick_is_refused(spread: int, cron: str) -> None:
    with pytest.raises(ValueError):
        check_spread(spread, cron)


def test_the_shipped_schedules_are_consistent() -> None:
    for group in SCHEDULES:
        check_spread(group.spread, group.cron)


def test_a_compressed_period_starts_each_account_once_per_period_at_a_stable_minute() -> None:
    from iiko_pipeline.core.fanout import compressed

    hourly = next(g for g in SCHEDULES if g.name == "hourly")
    assert compressed(hourly, {}) == hourly  # production: unchanged
    fast = compressed(hourly, {"IIKO_HOURLY_PERIOD_MINUTES": "20"})
    assert (fast.cron, fast.spread, fast.period_minutes) == ("* * * * *", 20, 20)
    everyone = accounts(400)
    for start in (0, 20, 40):  # three periods in one hour, each account once in each
        due = [due_accounts(everyone, datetime(2026, 12, 2, 9, start + m, tzinfo=UTC), fast.spread, 20)
               for m in range(20)]
        assert sorted(a for d in due for a in d) == sorted(everyone)
        assert due == [due_accounts(everyone, datetime(2026, 12, 2, 10, m, tzinfo=UTC), 20, 20) for m in range(20)]


@pytest.mark.parametrize("value", ["60", "7", "0", "x", "-5", "90"])
def test_a_period_that_does_not_divide_the_hour_is_refused_naming_the_setting(value: str) -> None:
    from iiko_pipeline.core.fanout import compressed

    hourly = next(g for g in SCHEDULES if g.name == "hourly")
    with pytest.raises(ValueError, match="IIKO_HOURLY_PERIOD_MINUTES"):
        compressed(hourly, {"IIKO_HOURLY_PERIOD_MINUTES": value})
