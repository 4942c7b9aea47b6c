"""iiko licence seats per server, across every process: a run logs in only while it holds one of its server's seats.

An API licence seat belongs to the iiko server, not to an account: several accounts may share one server, and
runs of different accounts run side by side in different processes (and, deployed, on different machines).
Without this, the second run's login fails with "no connections available" while the first holds the seat.
Each seat is a lock row keyed by the server and the seat's number (`seat_key`, from the server's normalised
URL) in the same table as the account locks, with the same heartbeat and takeover of a dead holder (whose
escrowed token is logged out so the seat is really free). This is the only limit on iiko sessions: any number
of servers are used in parallel, each up to its own seats; the instance has no global limit.

A server has one seat unless `IIKO_SERVER_SEATS` says otherwise (`https://chain.iiko.it=3,http://10.0.0.5:8080=2`;
scheme, host and port count, the path does not), or `IIKO_DEFAULT_SERVER_SEATS` changes the default. A run
waits for a seat up to `wait_seconds`, then fails with a retryable licence failure naming a run that holds one.
"""

from __future__ import annotations

import os
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
SEATS_ENV = "IIKO_SERVER_SEATS"
DEFAULT_SEATS_ENV = "IIKO_DEFAULT_SERVER_SEATS"


def server_origin(base_url: str) -> str:
    """scheme://host:port, case-folded, with the default port filled in: what identifies a server's licence."""
    parts = urlsplit(base_url.strip())
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def seat_key(base_url: str, seat: int = 0) -> uuid.UUID:
    """The lock key of one seat of a server (seat 0 keeps the key the single-seat version used)."""
    suffix = f"#{seat}" if seat else ""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"iiko-seat:{server_origin(base_url)}{suffix}")


def account_servers(engine: Engine, accounts: list[str] | None = None) -> dict[str, str]:
    """{account: server origin} for the accounts given (default: all stored), in one query: the `iiko/server`
    run tag, on which the instance's queue limits runs per server. An account whose server cannot be told (no
    URL and no default) is left out."""
    from iiko_pipeline.iiko.hosts import default_base_url
    from iiko_pipeline.warehouse.credentials import base_urls

    default = default_base_url()
    return {account: server_origin(url or default) for account, url in base_urls(engine, accounts).items()
            if url or default}


def _seat_count(raw: str, where: str) -> int:
    try:
        count = int(raw.strip())
    except ValueError:
        count = 0
    if count < 1:
        raise SyncFailure(FailureKind.CONFIG, f"{where}: a number of licence seats must be a whole number >= 1, "
                                              f"not {raw.strip()!r}")
    return count


def seats_for(base_url: str, environ: dict[str, str] | None = None) -> int:
    """How many iiko sessions this server allows at once (`IIKO_SERVER_SEATS`, else the default)."""
    env = os.environ if environ is None else environ
    origin = server_origin(base_url)
    for entry in filter(None, (e.strip() for e in env.get(SEATS_ENV, "").split(","))):
        url, equals, count = entry.rpartition("=")
        if not equals or "://" not in url:
            raise SyncFailure(FailureKind.CONFIG, f"{SEATS_ENV}: {entry!r} is not URL=SEATS "
                                                  "(e.g. https://chain.iiko.it=3)")
        if server_origin(url) == origin:
            return _seat_count(count, f"{SEATS_ENV} for {origin}")
    default = env.get(DEFAULT_SEATS_ENV, "").strip()
    return _seat_count(default, DEFAULT_SEATS_ENV) if default else 1


def _take(engine: Engine, keyring: KeyRing, keys: list[uuid.UUID], run_id: str
          ) -> tuple[uuid.UUID | None, run_locks.LockHolder | None]:
    """A free seat (or one whose holder died, its session logged out), or None and one of the live holders."""
    holder = None
    for key in keys:
        holder = run_locks.acquire(engine, key, run_id)
        if holder is None:
            return key, None
    for key in keys:
        dead = run_locks.steal_if_stale(engine, key, run_id)
        if dead is not None:  # its process died holding the seat: free the seat on the server too
            release_sessions(engine, sessions.sessions_of_run(engine, keyring, dead.run_id))
            return key, None
    return None, holder


@contextmanager
def server_seat(engine: Engine, keyring: KeyRing, base_url: str, run_id: str, *,
                wait_seconds: float = DEFAULT_WAIT_SECONDS, poll_seconds: float = 1.0,
                seats: int | None = None) -> Iterator[None]:
    """Hold one of the server's seats for the block (log in inside it, log out before it ends)."""
    count = seats_for(base_url) if seats is None else seats
    keys = [seat_key(base_url, n) for n in range(count)]
    deadline = time.monotonic() + wait_seconds
    while True:
        key, holder = _take(engine, keyring, keys, run_id)
        if key is not None:
            break
        if time.monotonic() > deadline:
            assert holder is not None
            taken = "seat is" if count == 1 else f"{count} seats are all"
            raise SyncFailure(FailureKind.LICENCE, f"the iiko server's licence {taken} taken (run {holder.run_id}, "
                                                   f"{holder.holder}); waited {wait_seconds:.0f} s", retryable=True)
        time.sleep(poll_seconds)
    try:
        with run_locks.Heartbeat(engine, key, run_id):
            yield
    finally:
        run_locks.release(engine, key, run_id)
