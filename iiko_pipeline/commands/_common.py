"""Helpers shared by sub-commands: the warehouse, the key ring and the Dagster instance from the environment."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import date
from typing import Any


def account_arg(value: str) -> str:
    """argparse type: an account id, canonical (a clear usage error, not a traceback, for anything else)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an account id: a UUID such as 3a5c99a2-eaca-56c9-821d-5510aecafb5a") from None


def date_arg(value: str) -> str:
    """argparse type: a calendar date as YYYY-MM-DD."""
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date: use YYYY-MM-DD") from None


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
