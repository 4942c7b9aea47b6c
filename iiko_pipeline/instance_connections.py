"""One held database connection per instance storage for the life of a run's process.

dagster-postgres opens its storages with SQLAlchemy's `NullPool`, so that a long-lived process never accumulates
connections: every event write, partition lookup and input-version read opens and closes a PostgreSQL connection.
A run writes a few hundred events (each check's evaluation, each output) and made 777 connections for a tiny
account, about 3 s of its 7 s on this machine. A run's process is short-lived and runs its steps one at a time, so
it may hold a connection instead: Dagster's own `optimize_for_webserver` swaps each storage's engine for a pool of
one (plus a small overflow). The SQLite storages ignore it (their files are opened per operation either way).
"""

from __future__ import annotations

import weakref

import dagster as dg

#: No statement timeout in a run's process (the webserver's reason for one, a slow UI query, does not apply).
NO_TIMEOUT_MS = 0
RECYCLE_SECONDS = 3600
OVERFLOW = 4  # Dagster's own threads (log capture, the run monitor) may need one beside the steps'

_pooled: weakref.WeakSet[dg.DagsterInstance] = weakref.WeakSet()


def hold_connections(instance: dg.DagsterInstance) -> None:
    """Give the instance's storages a held connection each (once per instance; a no-op on SQLite storages)."""
    if instance in _pooled:
        return
    instance.optimize_for_webserver(statement_timeout=NO_TIMEOUT_MS, pool_recycle=RECYCLE_SECONDS,
                                    max_overflow=OVERFLOW)
    _pooled.add(instance)
