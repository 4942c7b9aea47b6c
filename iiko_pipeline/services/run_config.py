"""The dated entities' run config, built without Dagster: the CLI checks a sync's window with it before it
imports Dagster, so a mistyped date is refused in a fraction of a second."""

from __future__ import annotations

from typing import Any

from iiko_pipeline.core.specs import windowed_specs


def invoice_run_config(date_from: str | None = None, date_to: str | None = None, *, mode: str | None = None,
                       history_days: int | None = None, lookback_days: int | None = None,
                       max_vanished_share: float | None = None, reprocess_unchanged: bool | None = None) -> dict:
    """Run config for the dated entities' raw steps (see `core.policy.WindowPolicy`); dates alone mean a
    backfill of that range."""
    config: dict[str, Any] = {}
    if date_from:
        config["date_from"] = date_from
    if date_to:
        config["date_to"] = date_to
    if mode or date_from:
        config["mode"] = mode or "backfill"
    for key, value in (("history_days", history_days), ("lookback_days", lookback_days),
                       ("max_vanished_share", max_vanished_share), ("reprocess_unchanged", reprocess_unchanged)):
        if value is not None:
            config[key] = value
    return {"ops": {f"raw_{s.name}": {"config": config} for s in windowed_specs()}} if config else {}
