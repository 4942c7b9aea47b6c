"""How a dated entity is synced in one run: which document dates, and how carefully deletions are treated.

An explicit object every step receives (the raw step to choose the dates, the table step to know whether the
watermark moves and how much may vanish), instead of settings riding inside the raw data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

from iiko_pipeline.core.failures import FailureKind, SyncFailure
from iiko_pipeline.warehouse.quality import DEFAULT_MAX_REJECTED_SHARE
from iiko_pipeline.warehouse.vanished import DEFAULT_MAX_VANISHED_SHARE

INCREMENTAL, BACKFILL = "incremental", "backfill"
DEFAULT_LOOKBACK_DAYS = 14
DEFAULT_HISTORY_DAYS = 90


@dataclass(frozen=True)
class WindowPolicy:
    """`incremental` (default): from `watermark - lookback_days` to `date_to` (default today); an account with
    no watermark yet (onboarding) starts `history_days` back; the watermark advances as windows commit, and
    due pending documents are re-read wherever they lie. `backfill`: exactly `date_from`..`date_to`, without
    moving the watermark."""

    mode: str = INCREMENTAL
    date_from: str = ""
    date_to: str = ""
    lookback_days: int | None = None  # None: the entity's own (`EntitySpec.lookback_days`; invoices 14)
    history_days: int | None = None  # None: the entity's own, else 90
    max_vanished_share: float = DEFAULT_MAX_VANISHED_SHARE
    reprocess_unchanged: bool = False  # parse and upsert windows even when iiko's answer did not change

    @property
    def advances_watermark(self) -> bool:
        return self.mode == INCREMENTAL

    def for_entity(self, lookback_days: int, history_days: int | None = None, lag_days: int = 0,
                   today: date | None = None) -> WindowPolicy:
        """This policy with the entity's own settings: its lookback where the run set none, its onboarding history
        when it has one, and its last day (`lag_days` before today: a day's snapshot is taken once it is over)."""
        changes: dict[str, object] = {}
        if self.lookback_days is None:
            changes["lookback_days"] = lookback_days
        if history_days is not None:  # the entity's own onboarding span (a day's snapshot is big): older by backfill
            changes["history_days"] = history_days
        if lag_days and not self.date_to:
            changes["date_to"] = ((today or date.today()) - timedelta(days=lag_days)).isoformat()
        return replace(self, **changes) if changes else self

    def window(self, watermark: date | None, today: date | None = None) -> tuple[date, date]:
        """The run's own date range (inclusive), or a CONFIG failure naming what is wrong."""
        if self.mode not in (INCREMENTAL, BACKFILL):
            raise _config(f"mode must be '{INCREMENTAL}' or '{BACKFILL}', not {self.mode!r}")
        try:
            date_to = date.fromisoformat(self.date_to) if self.date_to else (today or date.today())
            if self.mode == BACKFILL:
                if not self.date_from:
                    raise _config("a backfill needs date_from (YYYY-MM-DD)")
                date_from = date.fromisoformat(self.date_from)
            elif self.date_from:
                date_from = date.fromisoformat(self.date_from)
            elif watermark is not None:
                lookback = DEFAULT_LOOKBACK_DAYS if self.lookback_days is None else self.lookback_days
                date_from = min(watermark, date_to) - timedelta(days=lookback)
            else:
                history = DEFAULT_HISTORY_DAYS if self.history_days is None else self.history_days
                date_from = date_to - timedelta(days=history - 1)
        except ValueError as exc:
            raise _config(f"invoice dates must be YYYY-MM-DD: {exc}") from None
        if date_from > date_to:
            raise _config(f"invoice window is empty: date_from {date_from} is after date_to {date_to}")
        return date_from, date_to


@dataclass(frozen=True)
class WritePolicy:
    """How much of what iiko returned may be rejected before the table step fails (see `records_stored`), and,
    for entities iiko always returns whole, how much of what we hold may vanish at once before deletions are
    withheld (`warehouse.vanished`; dated entities take theirs from `WindowPolicy`)."""

    max_rejected_share: float = DEFAULT_MAX_REJECTED_SHARE
    max_vanished_share: float = DEFAULT_MAX_VANISHED_SHARE


def _config(reason: str) -> SyncFailure:
    return SyncFailure(FailureKind.CONFIG, reason)
