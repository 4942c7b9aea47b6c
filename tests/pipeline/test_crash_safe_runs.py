"""Syncs from the API and the CLI are ordinary runs in processes of their own: concurrent across accounts, one at a
time per account (a lock in the warehouse every process sees), and safe when a process is killed.

Each test uses a real instance from the project's own `dagster_home/dagster.yaml`, real emulators over HTTP and
the real command line, as an operator runs them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import date, timedelta

import dagster as dg
import pytest
import requests
import sqlalchemy as sa

from iiko_pipeline.core.specs import spec
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
def test_a_sync_killed_mid_commit_frees_its_account_and_seat_and_the_next_sync_loses_nothing(home, tmp_path,
                                                                                           monkeypatch):
    account = str(uuid.uuid4())
    # Windows one at a time (as on SQLite and in hourly runs), so the kill lands after the first commit while the
    # second is written; two windows written at once are killed mid-commit by test_warehouse_restart (a server
    # restart ends every connection as a killed process does) and test_window_writers.
    monkeypatch.setenv("IIKO_TABLE_WRITERS", "1")
    history = 8  # two windows
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


def _sales_days(rows: Iterable[tuple]) -> dict[tuple[str, date], dict[tuple, tuple]]:
    """Daily sales rows (restaurant, day, dish, order type, pay types, amount, sums, cost) by restaurant day."""
    out: dict[tuple[str, date], dict[tuple, tuple]] = {}
    for restaurant, day, *key_and_values in rows:
        out.setdefault((restaurant, day), {})[tuple(key_and_values[:3])] = tuple(key_and_values[3:])
    return out


def _stored_sales(engine: sa.Engine, account: str) -> list[tuple]:
    sd = schema.sales_daily
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(
            sd.c.restaurant_external_id, sd.c.business_date, sd.c.dish_external_id, sd.c.order_type, sd.c.pay_types,
            sd.c.dish_amount, sd.c.dish_sum, sd.c.revenue, sd.c.cost).where(sd.c.account_id == uuid.UUID(account)))]


def _sales_truth(emu, start: date, end: date) -> dict[tuple[str, date], dict[tuple, tuple]]:
    """The emulator's daily sales of the business days [start, end], by restaurant day."""
    _totals, detail = op.sales_truth(emu.state.dataset.sales, start, end)
    return _sales_days((*key, *values) for key, values in detail.items())


def _blocked_by(engine: sa.Engine, holder_pid: int) -> tuple[int, str] | None:
    """The backend waiting for a lock `holder_pid` holds, and its statement, if one is waiting."""
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT pid, query FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"),
            {"holder": holder_pid}).first()
    return (row[0], row[1]) if row else None


def _backend_alive(engine: sa.Engine, pid: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                            {"pid": pid}).scalar_one() > 0


# PostgreSQL only, as above, and because the kill is placed with a row lock: the test holds one row of the second
# window, so the run's transaction that writes that window waits on it with part of the window written, and is
# killed right there (on SQLite a lock is the whole database: the write would wait before writing anything).
@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_a_sync_killed_while_it_commits_a_window_of_daily_sales_leaves_each_day_whole_and_the_next_sync_exact(
        home):
    account = str(uuid.uuid4())
    history = 14  # two windows of report_window_days (7): the kill lands while the second is written
    today = date.today()
    start = today - timedelta(days=history - 1)
    first_window_end = start + timedelta(days=6)
    entities = ("sales_day_totals", "sales_daily")  # the totals too: the sales are checked against them
    with op.emulator(seats=1) as emu, dg.DagsterInstance.get() as instance:
        op.connect(account, emu)
        assert op.cli("sync", account, "restaurants", "products").returncode == 0
        engine = op.engine()
        done = op.cli("backfill", account, *entities, "--from", start.isoformat(), "--to", today.isoformat())
        assert done.returncode == 0, done.stdout + done.stderr
        before = _sales_days(_stored_sales(engine, account))
        assert before == _sales_truth(emu, start, today)
        assert get_watermark(engine, account, "sales_daily") is None  # a backfill leaves it where it was

        # A shift left open over a night moves that morning's sales to the day before: one night in each window,
        # so both windows' answers change (an unchanged answer would not be written at all).
        department = emu.state.dataset.sales.profiles[0].department_id.lower()
        moved = (today - timedelta(days=10), today - timedelta(days=3))
        for day in moved:
            emu.state.late_shift(department, day, "23:00:00")
        truth = _sales_truth(emu, start, today)
        for day in moved:
            assert before[(department, day - timedelta(days=1))] != truth[(department, day - timedelta(days=1))]
        locked_day = moved[1] - timedelta(days=1)
        assert first_window_end < locked_day <= today
        held = sorted(before[(department, locked_day)])[0]

        sd = schema.sales_daily
        lock, sync = engine.connect(), None
        try:
            lock.begin()
            holder = lock.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            assert lock.execute(sa.select(sd.c.id).where(
                sd.c.account_id == uuid.UUID(account), sd.c.restaurant_external_id == department,
                sd.c.business_date == locked_day, sd.c.dish_external_id == held[0], sd.c.order_type == held[1],
                sd.c.pay_types == held[2]).with_for_update()).scalar_one()
            sync = op.start_cli("sync", account, *entities, "--history-days", str(history))
            deadline = time.monotonic() + 240
            blocked = None
            while time.monotonic() < deadline and sync.poll() is None:
                blocked = _blocked_by(engine, holder)
                # On PostgreSQL the two windows are written at once: the second may reach the held row before the
                # first committed, which it still does (it never waits for the second).
                if blocked is not None and get_watermark(engine, account, "sales_daily") == first_window_end:
                    break
                time.sleep(0.05)
            assert blocked is not None and sync.poll() is None, (
                "the sync never reached the held row: " + op.diagnosis(emu, instance, account))
            assert "sales_daily" in blocked[1], blocked[1]  # it waits inside its write of the daily sales...
            assert get_watermark(engine, account, "sales_daily") == first_window_end  # ...of the second window
            op.kill_group(sync)  # the machine went down: the CLI and the run's process at once
        finally:
            if sync is not None and sync.poll() is None:
                op.kill_group(sync)  # a failed assertion above must not leave the run behind
            lock.rollback()
            lock.close()
        deadline = time.monotonic() + 60
        while _backend_alive(engine, blocked[0]) and time.monotonic() < deadline:
            time.sleep(0.05)  # the dead client's transaction goes with its connection
        assert not _backend_alive(engine, blocked[0])
        killed_run = next(r for r in instance.get_runs(dg.RunsFilter(tags={"iiko/account": account}))
                          if r.status == dg.DagsterRunStatus.STARTED)

        # Nothing half-written: every restaurant day of the committed window is iiko's, every one of the killed
        # window still what it was, and the watermark stayed at the last committed window.
        assert get_watermark(engine, account, "sales_daily") == first_window_end
        stored = _stored_sales(engine, account)
        assert len(stored) == len({r[:5] for r in stored})
        after_kill = _sales_days(stored)
        for key in set(before) | set(truth) | set(after_kill):
            expected = truth if key[1] <= first_window_end else before
            assert after_kill.get(key) == expected.get(key), key

        again = op.cli("sync", account, *entities, "--history-days", str(history), timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr  # the account and the seat were taken back
        assert instance.get_run_by_id(killed_run.run_id).status == dg.DagsterRunStatus.FAILURE
        stored = _stored_sales(engine, account)
        assert len(stored) == len({r[:5] for r in stored})  # nothing duplicated
        # nothing lost, nothing left of the days the sales moved from; the re-run's lookback reaches further back
        reread_from = min(start, first_window_end - timedelta(days=spec("sales_daily").lookback_days))
        assert _sales_days(stored) == _sales_truth(emu, reread_from, today)
        assert get_watermark(engine, account, "sales_daily") == today
        assert op.live_sessions(emu) == 0
