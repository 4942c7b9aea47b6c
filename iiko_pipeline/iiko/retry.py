"""Retry policy: exponential backoff with full jitter, bounded by attempts and by total time.

Why full jitter: several pipelines hitting one recovering server should not retry in lockstep. Why two
bounds: ``max_attempts`` alone can still add up to minutes with long read timeouts; ``max_total`` stops
starting new attempts once the time budget is spent (a running attempt is never cut short, because a
large export legitimately needs its full read timeout).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures (5xx, resets, timeouts, truncated bodies).

    ``max_attempts`` counts all attempts including the first; ``max_total`` is the budget in seconds from
    the first attempt's start after which no further attempt is started.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_total: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1 (1 = no retries)")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_total < 0:
            raise ValueError("RetryPolicy delays and max_total must not be negative")

    def backoff(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """The pause after the ``failed_attempts``-th failure: uniform in ``[0, min(max_delay,
        base_delay * 2 ** (failed_attempts - 1))]`` (full jitter)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(failed_attempts - 1, 0)))
        return (rng or random).uniform(0.0, ceiling)

    def next_delay(self, failed_attempts: int, elapsed: float, rng: random.Random | None = None
                   ) -> float | None:
        """The pause before the next attempt, or ``None`` when either bound says stop."""
        if failed_attempts >= self.max_attempts:
            return None
        delay = self.backoff(failed_attempts, rng)
        if elapsed + delay >= self.max_total:
            return None
        return delay
