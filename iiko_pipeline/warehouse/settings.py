"""Environment-driven settings for the warehouse layer.

Everything here reads the environment at call time (not import time), so tests and the CLI can change
variables without re-importing modules, and Dagster's `EnvVar` resolution at run time keeps working.
Every function takes an optional `environ` mapping so callers can pass a dict instead of patching
`os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DATABASE_URL_ENV = "DATABASE_URL"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
INTEGRATIONS_ENABLED_ENV = "INTEGRATIONS_ENABLED"

#: Where the warehouse lives when DATABASE_URL is unset: beside the Dagster instance state.
DEFAULT_SQLITE_FILENAME = "warehouse.db"

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def normalise_database_url(url: str) -> str:
    """Spell the PostgreSQL driver explicitly.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not installed here; Heroku-style
    ``postgres://`` is not recognised at all. Both become ``postgresql+psycopg2://``. URLs that already
    name a driver (``postgresql+psycopg://``) are left alone: that is an explicit choice.
    """
    url = url.strip()
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def dagster_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$DAGSTER_HOME``, or ``./dagster_home`` (relative to the working directory) when unset."""
    raw = _env(environ).get(DAGSTER_HOME_ENV, "").strip()
    return Path(raw or "dagster_home").expanduser().absolute()


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """The warehouse URL: ``$DATABASE_URL`` (normalised), else a SQLite file under ``$DAGSTER_HOME``.

    The default keeps a fresh checkout runnable with no configuration; production sets DATABASE_URL to
    PostgreSQL.
    """
    raw = _env(environ).get(DATABASE_URL_ENV, "").strip()
    if raw:
        return normalise_database_url(raw)
    return f"sqlite:///{dagster_home(environ) / DEFAULT_SQLITE_FILENAME}"


def parse_bool(value: str, variable: str) -> bool:
    """Parse true/false/1/0/yes/no case-insensitively; anything else is a configuration error.

    Silently treating a typo ("flase") as true or false would hide a misconfiguration, so it raises.
    """
    token = value.strip().lower()
    if token in _TRUE:
        return True
    if token in _FALSE:
        return False
    raise ValueError(f"{variable} must be one of true/false/1/0/yes/no (case-insensitive), got {value!r}")


def integrations_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """The global kill switch ``INTEGRATIONS_ENABLED`` (default true, as in the product brief)."""
    raw = _env(environ).get(INTEGRATIONS_ENABLED_ENV)
    if raw is None or not raw.strip():
        return True
    return parse_bool(raw, INTEGRATIONS_ENABLED_ENV)


# The iiko server URL policy (IIKO_DEFAULT_BASE_URL, IIKO_ALLOW_HTTP, IIKO_ALLOWED_HOSTS) lives in
# `iiko_pipeline.iiko.hosts`: there is no built-in iiko server.


def count_setting(name: str, default: int, what: str, environ: Mapping[str, str] | None = None) -> int:
    """A count setting (`default` when unset; 0 counts as 1: one at a time); anything but a whole number is a
    ValueError naming the variable and what it counts, so a typo in a deployment's environment fails the run
    that reads it rather than quietly running with the default."""
    raw = _env(environ).get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{name} must be a whole number of {what}, not {raw!r}")
    return max(1, value)
