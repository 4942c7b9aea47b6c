"""Taking an account back from a run whose process died (killed, machine restarted).

Every sync run holds the account's lock (`warehouse.run_locks`) and keeps its live iiko session token in
escrow (`warehouse.sessions`, encrypted and bound to the account) while it is logged in. When its process dies,
the lock goes stale (its pid is gone, or its heartbeat stops) and its licence seat stays taken on the customer's
server until the token expires (an hour by default), so the next sync would fail with "no connections
available". Whoever looks at the account next (a launcher, the API, the sensor) calls `take_back`: it takes
the stale lock over atomically (two recoverers cannot both win), logs the orphaned tokens out so the seat is
free at once, and releases the lock. The caller marks the dead run failed in whatever tracks runs.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy.engine import Engine

from iiko_pipeline.core.failures import FailureKind, SyncFailure
from iiko_pipeline.iiko import ClientSettings, IikoClient, RetryPolicy
from iiko_pipeline.warehouse import run_locks, sessions
from iiko_pipeline.warehouse.crypto import KeyRing

log = logging.getLogger(__name__)
HEARTBEAT_TIMEOUT = timedelta(seconds=90)
#: Logging out an orphaned token is best effort and must not hold a launcher up for long.
RELEASE_SETTINGS = ClientSettings(connect_timeout=5.0, read_timeout=10.0, retry=RetryPolicy(max_attempts=1))


def take_back(engine: Engine, keyring: KeyRing, account_id: str, *, dead_run_id: str | None = None,
              heartbeat_timeout: timedelta = HEARTBEAT_TIMEOUT) -> run_locks.LockHolder | None:
    """If the account's lock is held by a dead run, free it and that run's iiko seat; return the dead holder.

    `dead_run_id`: the caller saw that run's process end (a launcher waiting on its child), so its lock is
    taken back without waiting for staleness. Returns None when the lock is free or held by a live run.
    """
    lock = run_locks.current(engine, account_id)
    if lock is None:
        return None
    known_dead = dead_run_id is not None and lock.run_id == dead_run_id
    if not known_dead and not run_locks.is_stale(lock, heartbeat_timeout=heartbeat_timeout):
        return None
    recovery = f"recovery-{uuid.uuid4().hex[:16]}"
    displaced = run_locks.steal_if_stale(engine, account_id, recovery,
                                         heartbeat_timeout=timedelta(0) if known_dead else heartbeat_timeout)
    if displaced is None:
        return None  # another process recovered it first, or the holder came back to life
    try:
        release_orphaned_sessions(engine, keyring, account_id)
    finally:
        run_locks.release(engine, account_id, recovery)
    log.warning("account %s: run %s (%s) died; its lock and iiko seat were taken back", account_id,
                displaced.run_id, displaced.holder)
    return displaced


def release_orphaned_sessions(engine: Engine, keyring: KeyRing, account_id: str,
                              keep_run_id: str | None = None) -> int:
    """Log out every escrowed session of the account but `keep_run_id`'s (call it while holding the lock: then
    no other run of the account is alive). Returns how many were released."""
    return release_sessions(engine, sessions.sessions_of(engine, keyring, account_id, exclude_run_id=keep_run_id))


def release_sessions(engine: Engine, escrowed: list[sessions.EscrowedSession]) -> int:
    """Log these dead runs' sessions out at iiko and drop them from escrow; returns how many were logged out."""
    released = 0
    for session in escrowed:
        try:
            IikoClient.release_session(session.base_url, session.token, RELEASE_SETTINGS)
            released += 1
        except Exception as exc:  # a server that is down has freed nothing to free; the token expires anyway
            log.warning("account %s: could not log out the session of run %s: %s", session.account_id,
                        session.run_id, type(exc).__name__)
        sessions.delete_session(engine, session.account_id, session.run_id)
    return released


@contextmanager
def hold_account(engine: Engine, keyring: KeyRing, account_id: str, run_id: str, *, wait_seconds: float,
                 poll_seconds: float = 2.0,
                 on_taken_back: Callable[[run_locks.LockHolder], None] = lambda dead: None,
                 ) -> Iterator[run_locks.Heartbeat]:
    """Hold the account's lock for the block, kept fresh by a heartbeat, and release it after.

    A lock held by a dead run is taken back at once (`take_back`; `on_taken_back` is told, e.g. to mark that run
    failed); one held by a live run is waited for up to `wait_seconds` (a scheduled run arriving during an API
    sync), then a BUSY failure names the run that holds it."""
    deadline = time.monotonic() + wait_seconds
    while (holder := run_locks.acquire(engine, account_id, run_id)) is not None:
        dead = take_back(engine, keyring, account_id)
        if dead is not None:
            on_taken_back(dead)
            continue
        if time.monotonic() > deadline:
            raise SyncFailure(FailureKind.BUSY, f"account {account_id} is busy: run {holder.run_id} "
                                                f"({holder.holder}) holds it; waited {wait_seconds:.0f} s")
        time.sleep(poll_seconds)
    try:
        with run_locks.Heartbeat(engine, account_id, run_id) as heartbeat:
            yield heartbeat
    finally:
        run_locks.release(engine, account_id, run_id)
