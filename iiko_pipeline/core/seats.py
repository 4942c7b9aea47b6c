"""One iiko licence seat per server at a time, across every process: a run logs in only while it holds it.

An API licence seat belongs to the iiko server, not to an account: several accounts may share one server, and
runs of different accounts now run side by side in different processes. Without this, the second run's login
fails with "no connections available" while the first holds the seat. The seat is a lock row keyed by the
server (`server_key`, from its normalised URL) in the same table as the account locks, with the same heartbeat
and takeover of a dead holder (whose escrowed token is logged out so the seat is really free). A run waits for
the seat up to `wait_seconds`, then fails with a retryable licence failure naming the run that holds it.
Servers with more than one seat are the scale-out issue's to allow.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from iiko_pipeline.core.failures import FailureKind, SyncFailure
from iiko_pipeline.core.recovery import release_sessions
from iiko_pipeline.warehouse import run_locks, sessions
from iiko_pipeline.warehouse.crypto import KeyRing

DEFAULT_WAIT_SECONDS = 600.0


def server_key(base_url: str) -> uuid.UUID:
    """The lock key of a server: scheme, host and port, case-folded (paths like /resto do not matter)."""
    parts = urlsplit(base_url.strip())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return uuid.uuid5(uuid.NAMESPACE_URL, f"iiko-seat:{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}")


@contextmanager
def server_seat(engine: Engine, keyring: KeyRing, base_url: str, run_id: str, *,
                wait_seconds: float = DEFAULT_WAIT_SECONDS, poll_seconds: float = 1.0) -> Iterator[None]:
    """Hold the server's seat for the block (log in inside it, log out before it ends)."""
    key = server_key(base_url)
    deadline = time.monotonic() + wait_seconds
    while True:
        holder = run_locks.acquire(engine, key, run_id)
        if holder is None:
            break
        dead = run_locks.steal_if_stale(engine, key, run_id)
        if dead is not None:  # its process died holding the seat: free the seat on the server too
            release_sessions(engine, sessions.sessions_of_run(engine, keyring, dead.run_id))
            break
        if time.monotonic() > deadline:
            raise SyncFailure(FailureKind.LICENCE, f"the iiko server's licence seat is taken by run {holder.run_id} "
                                                   f"({holder.holder}); waited {wait_seconds:.0f} s", retryable=True)
        time.sleep(poll_seconds)
    try:
        with run_locks.Heartbeat(engine, key, run_id):
            yield
    finally:
        run_locks.release(engine, key, run_id)
