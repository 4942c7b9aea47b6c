"""Splitting a date range into export windows.

Why: iiko recommends short periods per request (a day or a week, at most a month), and both ends of the
export are inclusive, so windows must not overlap: ``[d1, d7], [d8, d14], ...``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta


def as_date(value: date) -> date:
    """Accept a ``date`` (or a ``datetime``, whose time part the export ignores anyway)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise TypeError(f"expected a date, got {type(value).__name__}")


def split_windows(date_from: date, date_to: date, days: int, anchor: date | None = None) -> list[tuple[date, date]]:
    """Non-overlapping inclusive windows of at most ``days`` days that exactly cover ``[date_from, date_to]``.

    With an ``anchor`` the windows lie on its grid (``anchor + k * days``), the first and last clipped to the
    range: a sliding incremental range then asks the same windows as the run before it (whose answers are
    fingerprinted by their exact dates), instead of windows shifted by however far its start moved.

    >>> split_windows(date(2024, 1, 1), date(2024, 1, 20), 7)  # doctest: +NORMALIZE_WHITESPACE
    [(datetime.date(2024, 1, 1), datetime.date(2024, 1, 7)),
     (datetime.date(2024, 1, 8), datetime.date(2024, 1, 14)),
     (datetime.date(2024, 1, 15), datetime.date(2024, 1, 20))]
    >>> split_windows(date(2024, 1, 5), date(2024, 1, 16), 7, anchor=date(2024, 1, 1))  # doctest: +NORMALIZE_WHITESPACE
    [(datetime.date(2024, 1, 5), datetime.date(2024, 1, 7)),
     (datetime.date(2024, 1, 8), datetime.date(2024, 1, 14)),
     (datetime.date(2024, 1, 15), datetime.date(2024, 1, 16))]
    """
    start, end = as_date(date_from), as_date(date_to)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"window size must be a positive number of days, got {days!r}")
    if start > end:
        raise ValueError(f"date_from {start.isoformat()} is after date_to {end.isoformat()}")
    windows: list[tuple[date, date]] = []
    # days left in the grid window that holds `start` (all of them without an anchor)
    first = days - (start - as_date(anchor)).days % days if anchor is not None else days
    step = timedelta(days=first)
    while start <= end:
        window_end = min(start + step - timedelta(days=1), end)
        windows.append((start, window_end))
        start = window_end + timedelta(days=1)
        step = timedelta(days=days)
    return windows
