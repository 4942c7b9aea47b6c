"""One sync run per account at a time, across every process, enforced by the database.

Why a table and not a ``threading.Lock`` or a Dagster query: runs start from API workers, the CLI and the Dagster
daemon's run workers, in different processes and possibly on different hosts. Two runs of one account would log
in twice (two iiko licence seats) and race on the same watermarks. A row in ``account_run_locks`` keyed by the
account is the one thing all of them see, and the primary key makes taking it atomic on both backends.

A lock can outlive its run (SIGKILL, OOM, a machine restart): nothing would ever delete the row. So the holder
refreshes ``heartbeat_at`` (:class:`Heartbeat`), records ``hostname:pid`` in ``holder``, and another process may
take the lock over once it is stale (:func:`is_stale`, :func:`steal_if_stale`): the heartbeat stopped for longer
than the timeout, or the holder ran on this host and its process is gone. Taking over is a compare-and-swap on the
exact row that was judged stale, so of two recoverers exactly one wins, and a holder that heartbeats in the
meantime keeps its lock. The winner gets the displaced holder back, to clean up after it (e.g. log its escrowed
iiko session out, see :mod:`iiko_pipeline.warehouse.sessions`).

Time: ``heartbeat_at`` is written with the holder's clock and judged with the reader's; the timeout (90 s against
a 15 s heartbeat) absorbs ordinary clock skew between hosts, not minutes of it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .crypto import account_uuid
from .engine import insert_for, write_transaction
from .schema import account_run_locks as locks_table
from .sqltypes import utcnow

logger = logging.getLogger(__name__)

#: A lock whose heartbeat is older than this is stale: six missed beats at the default interval.
DEFAULT_HEARTBEAT_TIMEOUT = timedelta(seconds=90)
#: How often :class:`Heartbeat` refreshes the lock (seconds).
DEFAULT_HEARTBEAT_INTERVAL = 15.0
#: ``acquire`` retries when the row it collided with was released before it could read it.
_ACQUIRE_ATTEMPTS = 5


@dataclass(frozen=True)
class LockHolder:
    """The row of ``account_run_locks``: who holds an account's lock, since when, last seen when."""

    account_id: uuid.UUID
    run_id: str
    holder: str
    acquired_at: datetime
    heartbeat_at: datetime


def this_holder() -> str:
    """``hostname:pid`` of this process: what :func:`holder_alive` can check on the same host."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _row(conn: sa.Connection, account: uuid.UUID) -> LockHolder | None:
    row = conn.execute(sa.select(locks_table).where(locks_table.c.account_id == account)).one_or_none()
    return None if row is None else LockHolder(**row._mapping)


def acquire(
    engine: Engine,
    account_id: uuid.UUID | str,
    run_id: str,
    *,
    holder: str | None = None,
    now: datetime | None = None,
) -> LockHolder | None:
    """Take the account's lock for ``run_id``. Returns None when taken, else the current holder.

    The INSERT either creates the row or conflicts on the primary key (ON CONFLICT DO NOTHING, so the PostgreSQL
    transaction is not aborted); there is no read-then-write window. Acquiring again with the run id that holds
    the lock succeeds and refreshes ``heartbeat_at`` and ``holder``: this is how the process that executes a run
    takes over a lock its launcher took under the same run id (the row must name the executing process, or
    :func:`is_stale` would judge the lock by the launcher's pid). A stale lock is not taken over here: that is
    :func:`steal_if_stale`, whose caller must clean up after the displaced run.
    """
    account = account_uuid(account_id)
    when = now or utcnow()
    who = holder or this_holder()
    for _ in range(_ACQUIRE_ATTEMPTS):
        with write_transaction(engine) as conn:
            insert = insert_for(conn)
            inserted = conn.execute(
                insert(locks_table)
                .values(account_id=account, run_id=run_id, holder=who, acquired_at=when, heartbeat_at=when)
                .on_conflict_do_nothing(index_elements=[locks_table.c.account_id])
            ).rowcount
            if inserted == 1:
                return None
            refreshed = conn.execute(
                sa.update(locks_table)
                .where(locks_table.c.account_id == account, locks_table.c.run_id == run_id)
                .values(holder=who, heartbeat_at=when)
            ).rowcount
            if refreshed == 1:
                return None
            current_holder = _row(conn, account)
            if current_holder is not None:
                return current_holder
        # The row we collided with was released before we could read it: try again.
    raise RuntimeError(f"could not acquire or read the run lock of account {account}: it changed hands too often")


def heartbeat(engine: Engine, account_id: uuid.UUID | str, run_id: str, now: datetime | None = None) -> bool:
    """Refresh ``heartbeat_at`` so the lock is not judged stale. False: the lock is no longer ours (released or
    taken over after it went stale); the run should stop writing."""
    with write_transaction(engine) as conn:
        return conn.execute(
            sa.update(locks_table)
            .where(locks_table.c.account_id == account_uuid(account_id), locks_table.c.run_id == run_id)
            .values(heartbeat_at=now or utcnow())
        ).rowcount == 1


def release(engine: Engine, account_id: uuid.UUID | str, run_id: str) -> bool:
    """Drop the lock if ``run_id`` holds it; returns whether it did. A run whose lock was taken over after it went
    stale must not free the new holder's lock, hence the run id in the WHERE clause."""
    with write_transaction(engine) as conn:
        return conn.execute(
            sa.delete(locks_table).where(
                locks_table.c.account_id == account_uuid(account_id), locks_table.c.run_id == run_id
            )
        ).rowcount > 0


def all_locks(engine: Engine) -> list[LockHolder]:
    """Every lock held now (a handful: one per account or server that is syncing)."""
    with engine.connect() as conn:
        return [LockHolder(**row) for row in conn.execute(sa.select(locks_table)).mappings()]


def current(engine: Engine, account_id: uuid.UUID | str) -> LockHolder | None:
    """The account's lock holder, or None when no run holds it."""
    with engine.connect() as conn:
        return _row(conn, account_uuid(account_id))


def holder_alive(holder: str) -> bool | None:
    """Is the ``hostname:pid`` holder's process alive? None when this process cannot tell.

    Only a holder on this host can be checked (None for another host, a malformed holder, or Windows, where
    ``os.kill(pid, 0)`` would send CTRL_C_EVENT instead of probing). ``os.kill(pid, 0)`` sends no signal:
    ProcessLookupError means no such process; PermissionError means it exists under another user, so alive.
    A reused pid reads as alive: the heartbeat timeout still catches that lock, only later.
    """
    host, sep, pid_text = (holder or "").rpartition(":")
    if not sep or host != socket.gethostname() or not pid_text.isdigit() or os.name == "nt":
        return None
    pid = int(pid_text)
    if pid <= 0:  # 0 and negative pids address process groups, not one process
        return None
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed process whose parent died too stays a zombie until something reaps it (not every container's
    init does), and `kill(pid, 0)` still succeeds on it: Linux's /proc says it is dead ("Z")."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def is_stale(
    lock: LockHolder, *, now: datetime | None = None, heartbeat_timeout: timedelta = DEFAULT_HEARTBEAT_TIMEOUT
) -> bool:
    """A lock nobody will release: its heartbeat is older than ``heartbeat_timeout``, or its holder ran on this
    host and that process is gone (recovered at once instead of after the timeout)."""
    if (now or utcnow()) - lock.heartbeat_at > heartbeat_timeout:
        return True
    return holder_alive(lock.holder) is False


def steal_if_stale(
    engine: Engine,
    account_id: uuid.UUID | str,
    run_id: str,
    *,
    holder: str | None = None,
    now: datetime | None = None,
    heartbeat_timeout: timedelta = DEFAULT_HEARTBEAT_TIMEOUT,
) -> LockHolder | None:
    """Take over the account's lock for ``run_id`` if it is stale; return the displaced holder, else None.

    None means nothing was displaced: no lock (call :func:`acquire`), a live lock, a lock ``run_id`` already
    holds, or another recoverer won. The UPDATE matches the run id *and* the heartbeat that were judged stale, so
    two recoverers cannot both win, and a holder that was only slow and heartbeats in between keeps its lock.
    The caller owns the cleanup of the displaced run (its escrowed iiko session, its partial state).
    """
    account = account_uuid(account_id)
    when = now or utcnow()
    lock = current(engine, account)
    if lock is None or lock.run_id == run_id or not is_stale(lock, now=when, heartbeat_timeout=heartbeat_timeout):
        return None
    with write_transaction(engine) as conn:
        taken = conn.execute(
            sa.update(locks_table)
            .where(
                locks_table.c.account_id == account,
                locks_table.c.run_id == lock.run_id,
                locks_table.c.heartbeat_at == lock.heartbeat_at,
            )
            .values(run_id=run_id, holder=holder or this_holder(), acquired_at=when, heartbeat_at=when)
        ).rowcount
    if taken != 1:
        return None
    logger.warning(
        "took over the stale run lock of account %s from run %s (%s, last heartbeat %s) for run %s",
        account, lock.run_id, lock.holder, lock.heartbeat_at.isoformat(), run_id,
    )
    return lock


class Heartbeat:
    """Keep a held lock fresh from a daemon thread while a run works: ``with Heartbeat(engine, account, run):``.

    The thread never raises: a failed beat (database briefly away) is logged and retried at the next interval,
    since one missed beat is far from the timeout. If the lock turns out to be no longer ours, it logs once,
    sets :attr:`lost` and stops beating; the run can check ``lost`` between steps and stop writing. Leaving the
    block stops the thread; it does not release the lock (that is :func:`release`, after the run's cleanup).
    """

    def __init__(
        self,
        engine: Engine,
        account_id: uuid.UUID | str,
        run_id: str,
        interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"heartbeat interval must be positive, got {interval!r}")
        self._engine = engine
        self._account = account_uuid(account_id)
        self._run_id = run_id
        self._interval = float(interval)
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lost(self) -> bool:
        """True once a beat found the lock held by another run (or released)."""
        return self._lost.is_set()

    def __enter__(self) -> Heartbeat:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"run-lock-heartbeat-{self._account}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            # A beat in progress finishes first; do not hang a run's exit on a database that does not answer.
            self._thread.join(timeout=self._interval + 5.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                ours = heartbeat(self._engine, self._account, self._run_id)
            except Exception as error:  # never let the thread die: the next beat may well succeed
                logger.warning(
                    "heartbeat of the run lock of account %s (run %s) failed: %s: %s",
                    self._account, self._run_id, type(error).__name__, error,
                )
                continue
            if not ours:
                self._lost.set()
                logger.warning(
                    "run %s no longer holds the run lock of account %s (released or taken over as stale); "
                    "heartbeat stopped", self._run_id, self._account,
                )
                return
