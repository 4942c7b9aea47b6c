"""Crash-safe runs: the per-account run lock in the database, and escrowed iiko session tokens.

Fast (no Dagster), on SQLite and PostgreSQL: who wins the lock, who may release it, when it is stale (time, dead
local pid), that two recoverers cannot both take it over, that the heartbeat thread keeps it fresh; and that a
session token is stored encrypted, bound to its account and purpose, and never shown.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from iiko_pipeline.warehouse import load_credentials, run_locks, schema, sessions
from iiko_pipeline.warehouse.crypto import CredentialDecryptError, KeyRing
from iiko_pipeline.warehouse.run_locks import LockHolder
from iiko_pipeline.warehouse.sessions import SESSION_PURPOSE

ACCOUNT = uuid.UUID("0b7f6d52-5f1e-4c35-9a51-9f3f3c1d2e01")
OTHER = uuid.UUID("7c1d3e55-0a2b-4c3d-8e4f-5a6b7c8d9e0f")
T = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
REMOTE = "worker-7.elsewhere.invalid:4242"  # another host: its pid cannot be checked from here
TOKEN = "c0ffee00-1234-4abc-9def-00000000beef"
BASE_URL = "https://chain.iiko.example"


def _dead_local_holder() -> str:
    """``hostname:pid`` of a process of this host that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}"


# -- the lock ---------------------------------------------------------------------------------------------


def test_of_two_acquirers_one_wins_and_the_other_sees_the_holders_run(engine: sa.Engine) -> None:
    assert run_locks.acquire(engine, ACCOUNT, "run-1", holder=REMOTE, now=T) is None
    blocked = run_locks.acquire(engine, str(ACCOUNT), "run-2", now=T + timedelta(seconds=1))
    assert blocked == LockHolder(ACCOUNT, "run-1", REMOTE, T, T)
    assert run_locks.current(engine, ACCOUNT) == blocked
    # Another account is not affected.
    assert run_locks.acquire(engine, OTHER, "run-2", now=T) is None
    assert run_locks.current(engine, OTHER).run_id == "run-2"


def test_acquiring_again_under_the_holding_run_id_refreshes_the_heartbeat_and_the_holder(engine: sa.Engine) -> None:
    assert run_locks.acquire(engine, ACCOUNT, "run-1", holder="launcher:1", now=T) is None
    assert run_locks.acquire(engine, ACCOUNT, "run-1", now=T + timedelta(seconds=30)) is None
    lock = run_locks.current(engine, ACCOUNT)
    assert (lock.run_id, lock.acquired_at, lock.heartbeat_at) == ("run-1", T, T + timedelta(seconds=30))
    assert lock.holder == run_locks.this_holder() == f"{socket.gethostname()}:{os.getpid()}"


def test_release_by_a_run_that_does_not_hold_the_lock_does_nothing(engine: sa.Engine) -> None:
    run_locks.acquire(engine, ACCOUNT, "run-1", holder=REMOTE, now=T)
    assert run_locks.release(engine, ACCOUNT, "run-2") is False
    assert run_locks.release(engine, OTHER, "run-1") is False
    assert run_locks.current(engine, ACCOUNT).run_id == "run-1"
    assert run_locks.release(engine, ACCOUNT, "run-1") is True
    assert run_locks.current(engine, ACCOUNT) is None
    assert run_locks.release(engine, ACCOUNT, "run-1") is False
    assert run_locks.acquire(engine, ACCOUNT, "run-2", now=T) is None


def test_heartbeat_keeps_a_lock_fresh_and_a_lock_without_heartbeat_goes_stale(engine: sa.Engine) -> None:
    run_locks.acquire(engine, ACCOUNT, "run-1", holder=REMOTE, now=T)
    lock = run_locks.current(engine, ACCOUNT)
    assert not run_locks.is_stale(lock, now=T + timedelta(seconds=90))
    assert run_locks.is_stale(lock, now=T + timedelta(seconds=91))
    assert not run_locks.is_stale(lock, now=T + timedelta(seconds=91), heartbeat_timeout=timedelta(minutes=5))

    assert run_locks.heartbeat(engine, ACCOUNT, "run-1", now=T + timedelta(seconds=80)) is True
    assert not run_locks.is_stale(run_locks.current(engine, ACCOUNT), now=T + timedelta(seconds=120))
    # A run that does not hold the lock cannot keep it alive.
    assert run_locks.heartbeat(engine, ACCOUNT, "run-2", now=T + timedelta(seconds=500)) is False
    assert run_locks.current(engine, ACCOUNT).heartbeat_at == T + timedelta(seconds=80)


def test_a_lock_whose_local_holder_process_is_gone_is_stale_at_once(engine: sa.Engine) -> None:
    dead = _dead_local_holder()
    assert run_locks.holder_alive(dead) is False
    assert run_locks.holder_alive(run_locks.this_holder()) is True
    assert run_locks.holder_alive(REMOTE) is None
    assert run_locks.holder_alive(f"{socket.gethostname()}:0") is None  # a process group, not a process
    assert run_locks.holder_alive("no-pid-here") is None

    now = datetime.now(UTC)
    run_locks.acquire(engine, ACCOUNT, "dead-run", holder=dead, now=now)
    assert run_locks.is_stale(run_locks.current(engine, ACCOUNT), now=now)  # fresh heartbeat, dead process
    run_locks.acquire(engine, OTHER, "live-run", now=now)
    assert not run_locks.is_stale(run_locks.current(engine, OTHER), now=now)

    displaced = run_locks.steal_if_stale(engine, ACCOUNT, "recovery", now=now)
    assert displaced is not None and (displaced.run_id, displaced.holder) == ("dead-run", dead)
    assert run_locks.steal_if_stale(engine, OTHER, "recovery", now=now) is None
    assert run_locks.current(engine, OTHER).run_id == "live-run"


def test_steal_if_stale_takes_only_a_stale_lock_and_returns_who_was_displaced(engine: sa.Engine) -> None:
    assert run_locks.steal_if_stale(engine, ACCOUNT, "run-2", now=T) is None  # no lock: nothing displaced
    assert run_locks.current(engine, ACCOUNT) is None

    run_locks.acquire(engine, ACCOUNT, "run-1", holder=REMOTE, now=T)
    assert run_locks.steal_if_stale(engine, ACCOUNT, "run-2", now=T + timedelta(seconds=30)) is None
    assert run_locks.current(engine, ACCOUNT).run_id == "run-1"

    later = T + timedelta(minutes=5)
    displaced = run_locks.steal_if_stale(engine, ACCOUNT, "run-2", holder="recoverer:9", now=later)
    assert displaced == LockHolder(ACCOUNT, "run-1", REMOTE, T, T)
    assert run_locks.current(engine, ACCOUNT) == LockHolder(ACCOUNT, "run-2", "recoverer:9", later, later)
    # The displaced run, should it wake up, can neither keep nor free the new holder's lock.
    assert run_locks.heartbeat(engine, ACCOUNT, "run-1", now=later) is False
    assert run_locks.release(engine, ACCOUNT, "run-1") is False
    assert run_locks.current(engine, ACCOUNT).run_id == "run-2"


def test_of_concurrent_recoverers_exactly_one_takes_over_a_stale_lock(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every recoverer reads (and judges) the stale row before any of them writes: the worst interleaving."""
    recoverers = 4
    barrier = threading.Barrier(recoverers, timeout=30)
    read_current = run_locks.current

    def current_then_wait(*args, **kwargs):
        lock = read_current(*args, **kwargs)
        barrier.wait()
        return lock

    monkeypatch.setattr(run_locks, "current", current_then_wait)
    for round_ in range(3):
        run_locks.acquire(engine, ACCOUNT, f"dead-{round_}", holder=REMOTE, now=T)
        results, errors = _recover_concurrently(engine, [f"r{round_}-{n}" for n in range(recoverers)])
        assert errors == []
        winners = [run_id for run_id, displaced in results.items() if displaced is not None]
        assert len(results) == recoverers and len(winners) == 1, results
        assert results[winners[0]].run_id == f"dead-{round_}"
        assert read_current(engine, ACCOUNT).run_id == winners[0]
        assert run_locks.release(engine, ACCOUNT, winners[0])


def _recover_concurrently(
    engine: sa.Engine, run_ids: list[str]
) -> tuple[dict[str, LockHolder | None], list[BaseException]]:
    results: dict[str, LockHolder | None] = {}
    errors: list[BaseException] = []

    def recover(run_id: str) -> None:
        try:
            results[run_id] = run_locks.steal_if_stale(engine, ACCOUNT, run_id, now=T + timedelta(hours=1))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=recover, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, errors


def test_the_heartbeat_thread_refreshes_the_lock_until_the_block_ends(engine: sa.Engine) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    run_locks.acquire(engine, ACCOUNT, "run-1", holder=REMOTE, now=old)
    with run_locks.Heartbeat(engine, ACCOUNT, "run-1", interval=0.05) as beat:
        deadline = time.monotonic() + 10
        while run_locks.current(engine, ACCOUNT).heartbeat_at == old and time.monotonic() < deadline:
            time.sleep(0.02)
        assert run_locks.current(engine, ACCOUNT).heartbeat_at > old
        assert not run_locks.is_stale(run_locks.current(engine, ACCOUNT))
        assert not beat.lost
    threads = [t for t in threading.enumerate() if t.name.startswith("run-lock-heartbeat-")]
    assert threads == []
    stopped_at = run_locks.current(engine, ACCOUNT).heartbeat_at
    time.sleep(0.2)
    assert run_locks.current(engine, ACCOUNT).heartbeat_at == stopped_at


def test_the_heartbeat_thread_survives_a_failing_beat_and_notices_a_lost_lock(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run_locks.acquire(engine, ACCOUNT, "run-1", holder=REMOTE, now=T)
    real_heartbeat = run_locks.heartbeat
    calls: list[int] = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise sa.exc.OperationalError("UPDATE account_run_locks", {}, Exception("server closed the connection"))
        return real_heartbeat(*args, **kwargs)

    monkeypatch.setattr(run_locks, "heartbeat", flaky)
    caplog.set_level(logging.WARNING, logger=run_locks.__name__)
    with run_locks.Heartbeat(engine, ACCOUNT, "run-1", interval=0.05) as beat:
        deadline = time.monotonic() + 30  # generous: a loaded machine delays the thread
        while run_locks.current(engine, ACCOUNT).heartbeat_at == T and time.monotonic() < deadline:
            time.sleep(0.02)
        assert run_locks.current(engine, ACCOUNT).heartbeat_at > T  # beats again after the failure
        assert any("failed" in r.getMessage() for r in caplog.records)

        # Taken over as stale: the thread notices, says so once, and stops beating.
        assert run_locks.steal_if_stale(engine, ACCOUNT, "run-2", holder=REMOTE,
                                         now=datetime.now(UTC) + timedelta(hours=1)) is not None
        while not beat.lost and time.monotonic() < deadline:
            time.sleep(0.02)
        assert beat.lost
    assert any("no longer holds" in r.getMessage() for r in caplog.records)
    assert run_locks.current(engine, ACCOUNT).run_id == "run-2"


# -- escrowed sessions ------------------------------------------------------------------------------------


def _ciphertext(engine: sa.Engine, account: uuid.UUID, run_id: str) -> bytes:
    s = schema.iiko_sessions
    with engine.connect() as conn:
        return bytes(conn.execute(sa.select(s.c.token_ciphertext).where(
            s.c.account_id == account, s.c.run_id == run_id)).scalar_one())


def test_a_session_round_trips_encrypted_and_the_callers_own_run_is_left_out(
    engine: sa.Engine, keyring_a: KeyRing
) -> None:
    sessions.save_session(engine, keyring_a, ACCOUNT, "dead-run", BASE_URL, TOKEN, now=T)
    sessions.save_session(engine, keyring_a, ACCOUNT, "my-run", BASE_URL, "my-token", now=T + timedelta(minutes=1))
    sessions.save_session(engine, keyring_a, OTHER, "other-run", BASE_URL, "other-token", now=T)

    [dead, mine] = sessions.sessions_of(engine, keyring_a, ACCOUNT)
    assert (dead.account_id, dead.run_id, dead.base_url, dead.token, dead.created_at) == (
        ACCOUNT, "dead-run", BASE_URL, TOKEN, T)
    assert mine.token == "my-token"
    assert [s.run_id for s in sessions.sessions_of(engine, keyring_a, ACCOUNT, exclude_run_id="my-run")] == [
        "dead-run"]

    # A second login of the same run replaces its token.
    sessions.save_session(engine, keyring_a, ACCOUNT, "dead-run", BASE_URL, "relogin-token", now=T)
    assert [s.token for s in sessions.sessions_of(engine, keyring_a, ACCOUNT, exclude_run_id="my-run")] == [
        "relogin-token"]

    assert sessions.delete_session(engine, ACCOUNT, "dead-run") is True
    assert sessions.delete_session(engine, ACCOUNT, "dead-run") is False
    assert [s.run_id for s in sessions.sessions_of(engine, keyring_a, ACCOUNT)] == ["my-run"]
    assert [s.token for s in sessions.sessions_of(engine, keyring_a, OTHER)] == ["other-token"]


def test_the_token_is_never_shown_nor_stored_in_the_clear(engine: sa.Engine, keyring_a: KeyRing) -> None:
    sessions.save_session(engine, keyring_a, ACCOUNT, "run-1", BASE_URL, TOKEN, now=T)
    [session] = sessions.sessions_of(engine, keyring_a, ACCOUNT)
    assert session.token == TOKEN
    assert TOKEN not in repr(session) and TOKEN not in str(session) and TOKEN not in repr([session])
    assert "run-1" in repr(session)

    envelope = _ciphertext(engine, ACCOUNT, "run-1")
    assert TOKEN.encode() not in envelope and TOKEN.encode("utf-16-le") not in envelope
    s = schema.iiko_sessions
    with engine.connect() as conn:
        row = conn.execute(sa.select(s)).one()
    assert row.key_id == keyring_a.current_key_id
    assert TOKEN not in " ".join(str(value) for value in row._mapping.values() if not isinstance(value, bytes))


def test_a_session_envelope_opens_neither_for_another_account_nor_as_credentials(
    engine: sa.Engine, keyring_a: KeyRing
) -> None:
    sessions.save_session(engine, keyring_a, ACCOUNT, "run-1", BASE_URL, TOKEN, now=T)
    envelope = _ciphertext(engine, ACCOUNT, "run-1")
    assert TOKEN in keyring_a.open(ACCOUNT, SESSION_PURPOSE, envelope).decode()  # the positive control
    with pytest.raises(CredentialDecryptError):
        keyring_a.open(OTHER, SESSION_PURPOSE, envelope)
    with pytest.raises(CredentialDecryptError):
        keyring_a.open(ACCOUNT, schema.IIKO, envelope)

    # Copied to another account's session row: left out (and logged), not opened.
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.iiko_sessions).values(
            account_id=OTHER, run_id="run-1", base_url=BASE_URL, token_ciphertext=envelope,
            key_id=keyring_a.current_key_id, created_at=T))
    assert sessions.sessions_of(engine, keyring_a, OTHER) == []
    # Copied into the account's own credentials row: loading credentials fails authentication.
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.account_integration_credentials).values(
            account_id=ACCOUNT, integration_type=schema.IIKO, credentials_ciphertext=envelope,
            key_id=keyring_a.current_key_id))
    with pytest.raises(CredentialDecryptError):
        load_credentials(engine, keyring_a, ACCOUNT, schema.IIKO)


def test_a_session_whose_server_url_was_edited_is_not_handed_out(engine: sa.Engine, keyring_a: KeyRing) -> None:
    """The token goes only to the server it was sealed with, not to a URL someone wrote into the row."""
    sessions.save_session(engine, keyring_a, ACCOUNT, "run-1", BASE_URL, TOKEN, now=T)
    s = schema.iiko_sessions
    with engine.begin() as conn:
        conn.execute(sa.update(s).values(base_url="https://attacker.example"))
    assert sessions.sessions_of(engine, keyring_a, ACCOUNT) == []
