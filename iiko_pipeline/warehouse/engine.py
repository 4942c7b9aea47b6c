"""Engine construction with the per-backend settings the warehouse relies on.

SQLite needs connection-level pragmas on *every* pooled connection (they are not persistent), so they
are set in a ``connect`` event. The pysqlite driver also opens transactions lazily and only before DML,
which breaks "read, then write in one transaction" (rotation, migrations) and SAVEPOINTs; the documented
SQLAlchemy recipe below hands transaction control back to SQLAlchemy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from iiko_pipeline.private_files import private_dirs, private_file

from .settings import database_url, normalise_database_url

#: How long a SQLite writer waits for the single write lock before failing (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Execution option: ``conn.execution_options(sqlite_begin_immediate=True)`` makes the next SQLite
#: transaction take the write lock up front (``BEGIN IMMEDIATE``), so a read-then-write transaction
#: cannot fail half-way on a lock upgrade. Ignored on other backends.
SQLITE_BEGIN_IMMEDIATE = "sqlite_begin_immediate"


def make_engine(url: str | sa.URL | None = None, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (default: :func:`database_url`).

    - SQLite: WAL journal (readers do not block the writer), ``synchronous=NORMAL`` (safe with WAL),
      ``foreign_keys=ON`` (off by default in SQLite, and our ON DELETE CASCADE depends on it),
      ``busy_timeout``; the parent directory of a file database is created.
    - PostgreSQL: psycopg2 (bare ``postgresql://`` is normalised), ``pool_pre_ping`` so a restarted
      server does not fail the first query of a long-lived process.
    """
    raw = database_url() if url is None else url
    sa_url = make_url(normalise_database_url(raw) if isinstance(raw, str) else raw)
    if sa_url.get_backend_name() == "sqlite":
        return _sqlite_engine(sa_url, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(sa_url, **kwargs)


def _sqlite_engine(url: sa.URL, **kwargs: Any) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory:
        path = Path(database).expanduser()
        private_dirs(path.parent)
        if not path.exists():  # SQLite gives its -wal and -shm files the database file's mode
            os.close(private_file(path))
    engine = sa.create_engine(url, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (the "begin" hook below) decide when transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(SQLITE_BEGIN_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def insert_for(conn: sa.Connection) -> Any:
    """The dialect's INSERT with ON CONFLICT support (credentials, run locks, escrowed sessions)."""
    from sqlalchemy.dialects import postgresql, sqlite

    if conn.dialect.name == "postgresql":
        return postgresql.insert
    if conn.dialect.name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"unsupported database backend {conn.dialect.name!r}")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[sa.Connection]:
    """A transaction that reads, then writes. On SQLite it takes the write lock up front (BEGIN IMMEDIATE): a
    deferred one that reads first cannot upgrade while another connection holds the write lock (a run's lock
    heartbeat, in another thread or process) and fails at once with "database is locked"; taking it up front
    waits `busy_timeout` instead. A plain transaction elsewhere."""
    with engine.connect().execution_options(**{SQLITE_BEGIN_IMMEDIATE: True}) as conn, conn.begin():
        yield conn
