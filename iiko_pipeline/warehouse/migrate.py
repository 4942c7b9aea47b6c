"""Run the packaged Alembic migrations programmatically.

The migrations ship inside the package, so an installed pipeline (Dagster code location, CLI, tests) can
bring any database to the current schema without an ``alembic.ini`` or a source checkout.
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from .engine import make_engine, write_transaction

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Our own Alembic version table: the warehouse may share a PostgreSQL database with the Dagster instance,
#: whose storage keeps its own revisions in Alembic's default ``alembic_version``.
VERSION_TABLE = "iiko_pipeline_alembic_version"

#: Arbitrary constant for ``pg_advisory_xact_lock``: concurrent ``migrate()`` calls (several Dagster
#: processes starting at once) run one after the other instead of racing on CREATE TABLE.
_PG_MIGRATION_LOCK = 0x11C0_5EED

#: Alembic's ``context``/``op`` are process-global proxies, so two threads must never run a migration
#: command at the same time, even against different databases.
_ALEMBIC_LOCK = threading.Lock()


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` pointing at the packaged migrations (no ini file)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser interpolation
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this version of the package."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships at least one revision
        raise RuntimeError("no migrations found in " + str(MIGRATIONS_DIR))
    return head


def migrate(engine_or_url: Engine | str | sa.URL | None = None) -> str:
    """Upgrade the database to head in place and return the head revision.

    Idempotent: on an up-to-date database it does nothing. Runs in one transaction (both backends have
    transactional DDL), under an advisory lock on PostgreSQL and ``BEGIN IMMEDIATE`` on SQLite, so a
    failed migration never leaves a half-built schema and concurrent callers (several processes starting
    at once) run one after the other; within one process a lock serialises threads.
    """
    owned = not isinstance(engine_or_url, Engine)
    engine = make_engine(engine_or_url) if owned else engine_or_url  # type: ignore[arg-type]
    try:
        cfg = alembic_config()
        with _ALEMBIC_LOCK, write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return head_revision()
    finally:
        if owned:
            engine.dispose()


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def migrated_engine(url: str) -> Engine:
    """One engine per URL per process, migrated on first use: a fresh database works without a setup step,
    and the resources, re-created per run, share one pool."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = make_engine(url)
            migrate(engine)
            _ENGINES[url] = engine
        return engine


def current_revision(bind: Engine | sa.Connection) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    if isinstance(bind, sa.Connection):
        return MigrationContext.configure(bind, opts={"version_table": VERSION_TABLE}).get_current_revision()
    with bind.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
