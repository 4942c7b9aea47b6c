"""Helpers shared by sub-commands: the warehouse, the key ring and the Dagster instance from the environment."""

from __future__ import annotations

import json
import sys
from typing import Any


def engine():
    from iiko_pipeline.warehouse.engine import make_engine
    from iiko_pipeline.warehouse.migrate import migrate

    eng = make_engine()
    migrate(eng)
    return eng


def keyring():
    from iiko_pipeline.warehouse.crypto import CredentialKeyError, KeyRing

    try:
        return KeyRing.from_env()
    except CredentialKeyError as exc:
        raise SystemExit(f"error: {exc}") from None


def instance():
    """The Dagster instance of $DAGSTER_HOME (created on first use, as `dagster dev` would)."""
    import os
    from pathlib import Path

    import dagster as dg

    from iiko_pipeline.warehouse.settings import dagster_home

    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DAGSTER_HOME", str(Path(home)))
    return dg.DagsterInstance.get()


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")
