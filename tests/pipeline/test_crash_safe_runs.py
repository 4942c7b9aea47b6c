"""Syncs from the API and the CLI are ordinary runs in processes of their own: concurrent across accounts, one at a
time per account (a lock in the warehouse every process sees), and safe when a process is killed.

Each test uses a real instance from the project's own `dagster_home/dagster.yaml`, real emulators over HTTP and
the real command line, as an operator runs them.
"""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta

import dagster as dg
import pytest
import requests
import sqlalchemy as sa

from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.dated_windows import get_watermark
from tests.conftest import ON_SQLITE
from tests.pipeline import cli_runs as op

pytestmark = pytest.mark.slow

TOKEN = "crash-test-token-0123456789abcdef"


# Once, on SQLite, where two runs writing the warehouse at once is the harder case (PostgreSQL's turn is the kill
# below; the API's 409 on PostgreSQL is test_api_accounts.py's).
@ON_SQLITE
def test_api_syncs_of_two_accounts_overlap_and_a_busy_account_answers_409_to_the_api_and_the_cli(home):
    from iiko_pipeline.api import ApiServer, create_app
    from iiko_pipeline.warehouse.crypto import KeyRing

    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    with op.emulator() as emu_a, op.emulator(seed=8) as emu_b, dg.DagsterInstance.get() as instance:
        op.connect(first, emu_a)
        op.connect(second, emu_b)
        for emu in (emu_a, emu_b):  # long enough for the runs to overlap and for the busy checks below
            emu.state.add_fault("suppliers", "slow", count=1, delay=6)
        app = create_app(instance=instance, engine=op.engine(), keyring=KeyRing.from_env(), api_token=TOKEN)
        with ApiServer(app) as server:
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {TOKEN}"
            base = server.url + "/api/v1/accounts/{}/integrations/iiko"
            started = {a: http.post(base.format(a) + "/sync/suppliers", headers={"Prefer": "respond-async"},
                                    timeout=60) for a in (first, second)}
            for response in started.values():
                assert response.status_code == 202, response.text
                assert response.headers["Location"] == response.json()["status_url"]
            run_a = started[first].json()["run_id"]

            busy = http.post(base.format(first) + "/sync/restaurants", timeout=60)
            assert busy.status_code == 409, busy.text
            assert busy.json()["run_id"] == run_a and run_a in busy.json()["detail"]
            cli = op.cli("sync", first, "restaurants")  # the CLI sees the same lock
            assert cli.returncode == 2 and run_a in cli.stderr, cli.stdout + cli.stderr

            results = {}
            deadline = time.monotonic() + 180
            while len(results) < 2 and time.monotonic() < deadline:
                for account, response in started.items():
                    status = http.get(server.url + response.json()["status_url"], timeout=60).json()
                    if status["done"]:
                        results[account] = status
                time.sleep(0.5)
            assert len(results) == 2, results
            for status in results.values():
                assert status["status"] == "SUCCESS" and status["http_status"] == 200, status
                assert status["result"]["total"] == status["result"]["created"] > 0, status
            http.close()
        records = {a: instance.get_run_record_by_id(started[a].json()["run_id"]) for a in (first, second)}
        spans = {a: (r.start_time, r.end_time) for a, r in records.items()}
        assert spans[first][0] < spans[second][1] and spans[second][0] < spans[first][1], spans  # they overlapped


# The production shape only (a `seed` account takes over a minute per backend; SQLite's own locking is covered by
# the run-lock tests and the daemon test).
@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_a_sync_killed_mid_commit_frees_its_account_and_seat_and_the_next_sync_loses_nothing(home, tmp_path):
    account = str(uuid.uuid4())
    history = 8  # two windows: the kill lands after the first commit, while the second is written
    today = date.today()
    start = today - timedelta(days=history - 1)
    # `seed` scale: windows large enough that the kill lands while the table step commits them
    with op.emulator(scale="seed", seats=1) as emu, dg.DagsterInstance.get() as instance:
        op.connect(account, emu)
        assert op.cli("sync", account, "restaurants", "stores", "suppliers").returncode == 0
        engine = op.engine()
        sync = op.start_cli("sync", account, "invoices", "--history-days", str(history))
        sw = schema.sync_windows
        deadline = time.monotonic() + 240
        committed = 0
        while time.monotonic() < deadline and sync.poll() is None:
            with engine.connect() as conn:
                committed = conn.execute(sa.select(sa.func.count()).select_from(sw).where(
                    sw.c.account_id == uuid.UUID(account))).scalar_one()
            if committed >= 1:
                break
            time.sleep(0.05)
        assert committed >= 1 and sync.poll() is None, "the sync ended before it could be killed mid-commit"
        op.kill_group(sync)  # the machine went down: the CLI and the run's process at once
        killed_run = next(r for r in instance.get_runs(dg.RunsFilter(tags={"iiko/account": account}))
                          if r.status == dg.DagsterRunStatus.STARTED)
        assert op.live_sessions(emu) == 1  # the dead run's iiko session still holds the only seat

        watermark = get_watermark(engine, account)
        assert watermark is not None and watermark < today  # some windows committed, not all
        truth_before = {d.id for d in emu.state.dataset.invoices(start, watermark)}
        assert set(op.stored_invoices(account)) == truth_before  # exactly the committed windows, nothing half-written

        again = op.cli("sync", account, "invoices", "--history-days", str(history), timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr  # the seat was freed: no licence error
        assert instance.get_run_by_id(killed_run.run_id).status == dg.DagsterRunStatus.FAILURE
        stored = op.stored_invoices(account)
        assert len(stored) == len(set(stored))  # nothing duplicated
        reread_from = min(start, watermark - timedelta(days=14))  # the re-run's lookback reaches further back
        assert set(stored) == {d.id for d in emu.state.dataset.invoices(reread_from, today)}  # nothing lost
        assert get_watermark(engine, account) == today
        assert op.live_sessions(emu) == 0  # every session logged out, the dead one's included
