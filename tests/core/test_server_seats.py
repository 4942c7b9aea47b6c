"""iiko licence seats per server (`core.seats`), on both backends: each server has its own seats, as many as
configured; a run that finds them all taken waits, then fails retryably naming a holder; other servers are not
held up by it."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

import pytest

from iiko_pipeline.core.failures import FailureKind, SyncFailure
from iiko_pipeline.core.seats import DEFAULT_SEATS_ENV, SEATS_ENV, seat_key, seats_for, server_origin, server_seat
from iiko_pipeline.warehouse import run_locks
from iiko_pipeline.warehouse.crypto import KeyRing, generate_key

SERVER_A = "https://chain-a.iiko.it/resto"
SERVER_B = "https://chain-b.iiko.it:8443/resto"


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing.with_key(generate_key())


def test_a_server_is_its_scheme_host_and_port_whatever_the_path_or_case() -> None:
    assert server_origin("HTTPS://Chain-A.iiko.it/resto") == "https://chain-a.iiko.it:443"
    assert server_origin("http://10.0.0.5/resto/") == "http://10.0.0.5:80"
    assert seat_key("https://chain-a.iiko.it/resto") == seat_key("https://CHAIN-A.iiko.it:443/other")
    assert seat_key(SERVER_A, 1) != seat_key(SERVER_A, 0) != seat_key(SERVER_B, 0)


def test_seats_come_from_the_environment_per_server_with_a_default() -> None:
    env = {SEATS_ENV: " https://chain-a.iiko.it=3 , http://10.0.0.5:8080=2"}
    assert seats_for(SERVER_A, env) == 3
    assert seats_for("http://10.0.0.5:8080/resto", env) == 2
    assert seats_for(SERVER_B, env) == 1
    assert seats_for(SERVER_B, {**env, DEFAULT_SEATS_ENV: "4"}) == 4
    assert seats_for(SERVER_A, {}) == 1
    for bad, named in (({SEATS_ENV: "chain-a=3"}, "chain-a=3"), ({SEATS_ENV: "https://chain-a.iiko.it=0"}, "'0'"),
                       ({SEATS_ENV: "https://chain-a.iiko.it=two"}, "'two'"), ({DEFAULT_SEATS_ENV: "-1"}, "'-1'")):
        with pytest.raises(SyncFailure) as refused:
            seats_for(SERVER_A, bad)
        assert refused.value.kind is FailureKind.CONFIG and named in refused.value.reason


def test_a_server_with_two_seats_takes_two_runs_and_the_third_waits_then_fails_naming_a_holder(engine, keyring):
    with ExitStack() as held:
        held.enter_context(server_seat(engine, keyring, SERVER_A, "run-1", seats=2))
        held.enter_context(server_seat(engine, keyring, SERVER_A, "run-2", seats=2))
        with pytest.raises(SyncFailure) as full, server_seat(engine, keyring, SERVER_A, "run-3", seats=2,
                                                                 wait_seconds=0.3, poll_seconds=0.05):
            pass
        assert full.value.kind is FailureKind.LICENCE and full.value.retryable
        assert "2 seats are all taken" in full.value.reason and "run-" in full.value.reason
        with server_seat(engine, keyring, SERVER_B, "run-3", seats=1, wait_seconds=0):
            pass  # another server is not held up by a full one
    with server_seat(engine, keyring, SERVER_A, "run-3", seats=2, wait_seconds=0):
        assert run_locks.current(engine, seat_key(SERVER_A, 0)).run_id == "run-3"
    assert run_locks.current(engine, seat_key(SERVER_A, 0)) is None


def test_a_run_waiting_for_the_only_seat_gets_it_when_the_holder_lets_go(engine, keyring):
    order: list[str] = []

    def second() -> None:
        with server_seat(engine, keyring, SERVER_A, "run-2", seats=1, wait_seconds=30, poll_seconds=0.05):
            order.append("run-2 in")

    with server_seat(engine, keyring, SERVER_A, "run-1", seats=1):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.4)
        order.append("run-1 out")
    waiter.join(timeout=30)
    assert order == ["run-1 out", "run-2 in"]


def test_runs_are_tagged_with_their_account_s_server_or_the_default_one(engine, keyring, monkeypatch) -> None:
    from iiko_pipeline.core.seats import account_servers
    from iiko_pipeline.warehouse.credentials import IIKO, save_credentials

    own, default = "0e3f0d9a-0000-4000-8000-000000000001", "0e3f0d9a-0000-4000-8000-000000000002"
    save_credentials(engine, keyring, own, IIKO, "user", "pass", base_url="https://Chain-A.iiko.it/resto")
    save_credentials(engine, keyring, default, IIKO, "user", "pass")
    monkeypatch.delenv("IIKO_DEFAULT_BASE_URL", raising=False)
    assert account_servers(engine) == {own: "https://chain-a.iiko.it:443"}  # no default: no tag to give
    monkeypatch.setenv("IIKO_DEFAULT_BASE_URL", "https://shared.iiko.it")
    assert account_servers(engine, [default]) == {default: "https://shared.iiko.it:443"}
