"""split_windows and RetryPolicy (pure)."""

from __future__ import annotations

import itertools
import random
from datetime import date, datetime, timedelta

import pytest

from iiko_pipeline.iiko import RetryPolicy, split_windows


def test_twenty_days_in_weeks() -> None:
    assert split_windows(date(2024, 1, 1), date(2024, 1, 20), 7) == [
        (date(2024, 1, 1), date(2024, 1, 7)),
        (date(2024, 1, 8), date(2024, 1, 14)),
        (date(2024, 1, 15), date(2024, 1, 20)),
    ]


def test_single_day_and_exact_multiple() -> None:
    assert split_windows(date(2024, 2, 29), date(2024, 2, 29), 7) == [(date(2024, 2, 29), date(2024, 2, 29))]
    assert len(split_windows(date(2024, 1, 1), date(2024, 1, 14), 7)) == 2


@pytest.mark.parametrize("days", [1, 3, 7, 31])
def test_windows_cover_exactly_without_overlap(days: int) -> None:
    start, end = date(2023, 12, 20), date(2024, 3, 3)
    windows = split_windows(start, end, days)
    assert windows[0][0] == start and windows[-1][1] == end
    for (_a, b), (c, _d) in itertools.pairwise(windows):
        assert c == b + timedelta(days=1)
    assert all(0 <= (b - a).days < days for a, b in windows)


def test_datetimes_are_reduced_to_dates() -> None:
    assert split_windows(datetime(2024, 1, 1, 23, 0), datetime(2024, 1, 2, 1, 0), 7) == [
        (date(2024, 1, 1), date(2024, 1, 2))
    ]


def test_invalid_input() -> None:
    with pytest.raises(ValueError, match="after"):
        split_windows(date(2024, 1, 2), date(2024, 1, 1), 7)
    with pytest.raises(ValueError, match="positive"):
        split_windows(date(2024, 1, 1), date(2024, 1, 2), 0)


def test_backoff_full_jitter_is_bounded() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=8.0, max_total=1000)
    rng = random.Random(1)
    for failed in range(1, 10):
        ceiling = min(8.0, 0.5 * 2 ** (failed - 1))
        assert all(0 <= policy.backoff(failed, rng) <= ceiling for _ in range(200))


def test_next_delay_stops_on_attempts_and_on_total_time() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=1.0, max_total=5.0)
    assert policy.next_delay(3, 0.0) is None
    assert policy.next_delay(1, 0.0) is not None
    assert policy.next_delay(1, 5.0) is None


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
