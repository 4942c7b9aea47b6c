"""Accounts: the connect flow, the discovery sensor, the kill switch, and secrets that never leak."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from iiko_pipeline.emulator.auth import SessionManager
from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.credentials import connected_account_ids, list_accounts, load_credentials
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD, ON_POSTGRESQL, ON_SQLITE


def test_connect_stores_encrypted_credentials_and_adds_partition(pipeline):
    p = pipeline
    result = p.connect()
    assert result.as_dict().keys() == {"account_id", "is_connected", "last_connected_at", "connection_error",
                                       "integration_type"}
    assert result.is_connected and result.connection_error is None and result.integration_type == "iiko"
    assert p.account_id in p.instance.get_dynamic_partitions("accounts")
    creds = load_credentials(p.engine, p.keyring, p.account_id, "iiko")
    assert (creds.username, creds.password) == (EMULATOR_LOGIN, EMULATOR_PASSWORD)
    log = p.emulator.state.log.summary()
    assert log["logins"] == log["logouts"] == 1  # the check frees its licence seat at once


# Each failure once, spread over both backends.
@pytest.mark.parametrize(("db_url", "case"), [
    ("sqlite", "wrong_password"), pytest.param("postgresql", "unreachable", marks=pytest.mark.postgres),
    ("sqlite", "html"), pytest.param("postgresql", "licence", marks=pytest.mark.postgres)], indirect=["db_url"])
def test_failed_connect_gives_a_specific_error_and_keeps_working_credentials(pipeline, case):
    p = pipeline
    assert p.connect().is_connected
    before = _ciphertext(p.engine, p.account_id)
    password, base_url = EMULATOR_PASSWORD, None
    if case == "wrong_password":
        password = "wrong"
    elif case == "unreachable":
        base_url = "http://127.0.0.1:9"  # the discard port: nothing listens
    elif case == "html":
        p.emulator.state.add_fault(endpoint="auth", kind="html200", count=10)
    else:
        p.emulator.state.configure(mode="module_blocked")
    result = p.connect(password=password, base_url=base_url)
    assert not result.is_connected and result.last_connected_at is None
    expected = {"wrong_password": "wrong login or password", "unreachable": "could not be reached",
                "html": "HTML", "licence": "not licensed"}[case]
    assert expected in result.connection_error
    assert EMULATOR_PASSWORD not in result.connection_error
    assert _ciphertext(p.engine, p.account_id) == before  # working credentials never replaced


def test_integrations_disabled_refuses_connect_and_sensor_skips(pipeline, monkeypatch):
    from iiko_pipeline.definitions import defs
    from iiko_pipeline.services.connect import IntegrationsDisabledError

    p = pipeline
    monkeypatch.setenv("INTEGRATIONS_ENABLED", "false")
    with pytest.raises(IntegrationsDisabledError, match="INTEGRATIONS_ENABLED"):
        p.connect()
    sensor = defs.resolve_sensor_def("account_discovery_sensor")
    with dg.build_sensor_context(instance=p.instance, definitions=defs, resources=_resources()) as ctx:
        data = sensor.evaluate_tick(ctx)
    assert not data.run_requests and "INTEGRATIONS_ENABLED" in data.skip_message


@ON_SQLITE
def test_integrations_disabled_stops_every_run_before_it_logs_in(pipeline, monkeypatch):
    """The switch holds where iiko is called (the run's iiko resource), so no path (CLI, API, a run launched
    from the UI, a schedule) reaches iiko while it is off."""
    p = pipeline
    p.connect()
    before = p.emulator.state.log.summary()["logins"]
    monkeypatch.setenv("INTEGRATIONS_ENABLED", "false")
    outcome = p.sync(["restaurants"])
    assert not outcome.success
    assert [f.kind for f in outcome.step_failures] == ["config"]
    assert "INTEGRATIONS_ENABLED is false" in outcome.step_failures[0].reason
    assert p.emulator.state.log.summary()["logins"] == before  # nothing was sent


def _tick(p):
    from iiko_pipeline.definitions import defs

    sensor = defs.resolve_sensor_def("account_discovery_sensor")
    with dg.build_sensor_context(instance_ref=p.instance.get_ref(), definitions=defs,
                                 resources=_resources()) as context:  # resources with a setup open as a context
        return sensor.evaluate_tick(context)


def _onboarding_run(p, account: str, status: dg.DagsterRunStatus) -> str:
    run = dg.DagsterRun(job_name="sync_account_job", run_id=str(uuid.uuid4()), status=status,
                        tags={"iiko/account": account, "iiko/trigger": "onboarding"})
    p.instance.add_run(run)
    return run.run_id


def test_sensor_onboards_every_connected_account_that_never_synced(pipeline, monkeypatch):
    """Onboarding keys on "never synced", not on "no partition yet": connect adds the partition itself."""
    from iiko_pipeline.core.seats import server_origin
    from iiko_pipeline.core.specs import ENTITY_NAMES as ENTITIES
    from iiko_pipeline.warehouse.credentials import save_credentials
    from iiko_pipeline.warehouse.entities import SyncResult
    from iiko_pipeline.warehouse.state import record_run

    p = pipeline
    p.connect()  # connected here: it already has its partition, and still needs onboarding
    other = [str(uuid.uuid4()) for _ in range(2)]
    for account in other:  # connected through another process: credentials but no partition
        save_credentials(p.engine, p.keyring, account, "iiko", EMULATOR_LOGIN, EMULATOR_PASSWORD,
                         base_url=p.emulator.url, connected_at=_now())
    data = _tick(p)
    everyone = sorted([p.account_id, *other])
    assert sorted(r.partition_key for r in data.run_requests) == everyone
    assert {r.run_key for r in data.run_requests} == {f"onboard:{a}:0" for a in everyone}
    server = server_origin(p.emulator.url)  # the queue limits runs per iiko server on this tag
    assert all(r.tags.items() >= {"iiko/account": r.partition_key, "iiko/trigger": "onboarding",
                                  "iiko/server": server}.items() for r in data.run_requests)
    added = [k for req in data.dynamic_partitions_requests for k in req.partition_keys]
    assert sorted(added) == sorted(other)
    p.instance.add_dynamic_partitions("accounts", added)  # what the daemon does with the request

    synced, queued, failed = everyone
    for entity in ENTITIES:  # a complete sync (by any path) means onboarded
        record_run(p.engine, uuid.UUID(synced), entity, "r", SyncResult(entity), _now())
    _onboarding_run(p, queued, dg.DagsterRunStatus.STARTED)  # never twice at once
    _onboarding_run(p, failed, dg.DagsterRunStatus.FAILURE)  # a failed attempt waits before the next
    again = _tick(p)
    assert not again.run_requests
    assert "is started" in again.skip_message and "next attempt in" in again.skip_message
    monkeypatch.setenv("IIKO_ONBOARDING_RETRY_SECONDS", "0")
    retry = _tick(p)
    assert [(r.partition_key, r.run_key) for r in retry.run_requests] == [(failed, f"onboard:{failed}:1")]


def test_the_sensor_marks_a_run_whose_process_died_failed_and_frees_its_account(pipeline):
    from iiko_pipeline.warehouse import run_locks

    p = pipeline
    p.connect()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = f"{run_locks.this_holder().rpartition(':')[0]}:{dead.stdout.strip()}"  # this host, a pid that is gone
    run_id = _onboarding_run(p, p.account_id, dg.DagsterRunStatus.STARTED)
    assert run_locks.acquire(p.engine, p.account_id, run_id, holder=holder) is None
    _tick(p)
    assert p.instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    assert run_locks.current(p.engine, p.account_id) is None


@ON_POSTGRESQL
def test_secrets_never_reach_dagster_home_or_the_warehouse(pipeline, monkeypatch, tmp_path):
    p = pipeline
    tokens: list[str] = []
    original = SessionManager.login

    def spy(self, seats, ttl):  # records issued tokens so the test can look for them
        token, label = original(self, seats, ttl)
        tokens.append(token)
        return token, label

    monkeypatch.setattr(SessionManager, "login", spy)
    p.connect()
    outcome = p.sync(history_days=5)
    assert outcome.success, outcome.failures
    assert tokens
    sha1 = hashlib.sha1(EMULATOR_PASSWORD.encode()).hexdigest()  # noqa: S324 - what iiko sends
    secrets = {"password": EMULATOR_PASSWORD, "sha1": sha1,
               "key": p.key, **{f"token{i}": t for i, t in enumerate(tokens)}}
    leaks = []
    for path in Path(p.dagster_home).rglob("*"):
        if path.is_file():
            data = _readable(path)
            leaks += [f"{name} in {path}" for name, secret in secrets.items() if secret.encode() in data]
    with p.engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)).mappings():
                for column, value in row.items():
                    if table.name == "account_integration_credentials" and column == "credentials_ciphertext":
                        continue
                    text = value if isinstance(value, (bytes, str)) else str(value)
                    blob = text if isinstance(text, bytes) else text.encode()
                    leaks += [f"{name} in {table.name}.{column}" for name, s in secrets.items() if s.encode() in blob]
    assert not leaks, leaks


def test_cli_connect_accounts_disconnect(emulator, tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
           "CREDENTIAL_ENCRYPTION_KEY": _key(), "IIKO_PASSWORD": EMULATOR_PASSWORD}
    account = str(uuid.uuid4())
    cli = [sys.executable, "-m", "iiko_pipeline.cli"]
    ok = subprocess.run([*cli, "connect", account, "--username", EMULATOR_LOGIN, "--base-url", emulator.url],
                        env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["is_connected"] is True
    bad = subprocess.run([*cli, "connect", account, "--username", "nobody", "--base-url", emulator.url],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and json.loads(bad.stdout)["connection_error"]
    listed = subprocess.run([*cli, "accounts"], env=env, capture_output=True, text=True, timeout=120)
    assert json.loads(listed.stdout)[0]["is_connected"] is True
    assert EMULATOR_PASSWORD not in listed.stdout + ok.stdout + ok.stderr
    # a run holding the account (its lock, fresh heartbeat): disconnect is refused naming it, nothing deleted
    from iiko_pipeline.warehouse import run_locks
    from iiko_pipeline.warehouse.engine import make_engine

    engine, run_id = make_engine(env["DATABASE_URL"]), str(uuid.uuid4())
    assert run_locks.acquire(engine, account, run_id) is None
    busy = subprocess.run([*cli, "disconnect", account], env=env, capture_output=True, text=True, timeout=120)
    assert busy.returncode == 2 and run_id in busy.stderr and not busy.stdout, busy.stderr
    assert account in {str(a) for a in connected_account_ids(engine)}
    run_locks.release(engine, account, run_id)
    gone = subprocess.run([*cli, "disconnect", account], env=env, capture_output=True, text=True, timeout=120)
    assert gone.returncode == 0 and json.loads(gone.stdout)["disconnected"] is True
    assert account not in {str(a) for a in connected_account_ids(engine)}
    engine.dispose()
    plain = subprocess.run([*cli, "connect", account, "--username", "u", "--password", "p"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert plain.returncode != 0  # no plain --password flag exists


def _readable(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".gz":
        import gzip

        data += gzip.decompress(data)
    return data


def _ciphertext(engine, account_id: str) -> bytes:
    t = schema.account_integration_credentials
    with engine.connect() as conn:
        return conn.execute(sa.select(t.c.credentials_ciphertext).where(
            t.c.account_id == uuid.UUID(account_id))).scalar_one()


def _resources() -> dict:
    from iiko_pipeline.defs.resources import AccountGuardResource, WarehouseResource

    warehouse = WarehouseResource()  # DATABASE_URL from the environment, as the daemon would
    return {"warehouse": warehouse,
            "guard": AccountGuardResource(encryption_key=os.environ["CREDENTIAL_ENCRYPTION_KEY"], warehouse=warehouse)}


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _key() -> str:
    from iiko_pipeline.warehouse.crypto import generate_key

    return generate_key()


def test_accounts_listing_has_no_secret(pipeline):
    p = pipeline
    p.connect()
    text = repr(list_accounts(p.engine))
    assert EMULATOR_PASSWORD not in text and "ciphertext" not in text


@ON_POSTGRESQL
def test_an_account_is_disconnected_only_on_proof(pipeline):
    """A server that is starting (401 to every login) fails the run as transient and leaves the account
    connected; a password changed at iiko (refused twice, a pause apart) disconnects it, and so do rights
    taken away at iiko (denied again after a logout, a pause and a new login) (issue 13.4)."""
    from datetime import UTC, datetime

    from iiko_pipeline.warehouse.credentials import save_credentials

    p = pipeline
    p.connect()

    def account():
        return next(a for a in list_accounts(p.engine) if str(a.account_id) == p.account_id)

    p.emulator.state.configure(mode="starting")
    starting = p.sync(["restaurants"])
    assert not starting.success and [f.kind for f in starting.step_failures] == ["transient"]
    assert account().is_connected and account().connection_error is None

    p.emulator.state.configure(mode="normal")
    save_credentials(p.engine, p.keyring, p.account_id, "iiko", EMULATOR_LOGIN, "changed at iiko",
                     base_url=p.emulator.url, connected_at=datetime.now(UTC))  # worked until iiko changed it
    assert account().is_connected
    changed = p.sync(["restaurants"])
    assert not changed.success and [f.kind for f in changed.step_failures] == ["credentials"]
    assert not account().is_connected and "wrong login or password" in account().connection_error

    save_credentials(p.engine, p.keyring, p.account_id, "iiko", EMULATOR_LOGIN, EMULATOR_PASSWORD,
                     base_url=p.emulator.url, connected_at=datetime.now(UTC))  # reconnected
    p.emulator.state.configure(permission_denied=("corporation/departments",))  # the right taken away at iiko
    denied = p.sync(["restaurants"])
    assert not denied.success and [f.kind for f in denied.step_failures] == ["rights"]
    assert [r.status for r in p.emulator.state.log.records("corporation/departments")] == [403, 403]
    assert not account().is_connected and "rights" in account().connection_error
    log = p.emulator.state.log.summary()
    assert log["logins"] == log["logouts"]  # the re-check's login was logged out too


@ON_SQLITE
def test_the_ca_bundle_of_a_connect_is_kept_for_the_accounts_syncs(pipeline, certificate, tmp_path):
    """`connect --ca-bundle` used to check the server against the bundle and then forget it, so every sync
    failed TLS (issue 13.7). The bundle's PEM is kept with the account; the run verifies against it."""
    from iiko_pipeline.emulator import EmulatorConfig, EmulatorServer
    from iiko_pipeline.services.connect import connect_account

    p = pipeline
    cert, key = certificate
    cfg = EmulatorConfig(host="127.0.0.1", port=0, login=EMULATOR_LOGIN, password=EMULATOR_PASSWORD, seed=7,
                         scale="tiny", certfile=cert, keyfile=key)
    with EmulatorServer(cfg) as tls:
        result = connect_account(p.engine, p.keyring, p.account_id, EMULATOR_LOGIN, EMULATOR_PASSWORD, tls.url,
                                 verify_tls=cert,
                                 register_partition=lambda a: p.instance.add_dynamic_partitions("accounts", [a]))
        assert result.is_connected, result.connection_error
        creds = load_credentials(p.engine, p.keyring, p.account_id, "iiko")
        assert creds.ca_bundle == Path(cert).read_text() and creds.verify_tls
        outcome = p.sync(["restaurants"])
        assert outcome.success, outcome.failures
        assert outcome.results["restaurants"]["total"] == len(tls.state.dataset.restaurants())
        assert tls.state.log.summary()["logins"] == 2  # the connect and the run, both over verified TLS
