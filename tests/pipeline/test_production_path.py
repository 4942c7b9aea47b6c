"""The production path as the README sets it up: the real daemon on a PostgreSQL instance, nothing run by hand.

An operator connects an account with the CLI; from then on only the daemon acts (its sensor and schedules).
Within a few minutes every table must hold the whole onboarding window: this is where the onboarding data loss
was found (the sensor skipped accounts that already had a partition, and the first run was an hourly invoice
run that rejected every document while moving the watermark to today).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.crypto import generate_key
from iiko_pipeline.warehouse.engine import make_engine
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD
from tests.pipeline.cli_runs import sales_truth

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ONBOARDING_DAYS = 90  # InvoiceSyncConfig.history_days: the onboarding window of a new account
# What the onboarding run (the sensor's request carries no run config) reads of the other dated entities, as
# `WindowPolicy.for_entity(...).window(None)` decides it from the specs: sales, day totals and cash shifts have no
# `history_days` of their own, so the same 90 days up to today (business days; opening days for shifts); stock
# balances have `history_days=3, lag_days=1`: a snapshot at the end of each of the 3 days up to yesterday.
SNAPSHOT_DAYS, SNAPSHOT_LAG_DAYS = 3, 1
DEADLINE_S = 240


def _env(home: Path, db_url: str, key: str) -> dict[str, str]:
    db = sa.make_url(db_url if db_url.startswith("postgresql") else "postgresql://postgres@127.0.0.1:5432/unused")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "PYTEST_"))}
    env.update({
        "DAGSTER_HOME": str(home), "DATABASE_URL": db_url, "CREDENTIAL_ENCRYPTION_KEY": key,
        # the production instance config reads these (dagster_home/dagster.postgres.yaml)
        "DAGSTER_PG_USERNAME": db.username or "postgres", "DAGSTER_PG_PASSWORD": db.password or "trust-auth",
        "DAGSTER_PG_HOST": db.host or "127.0.0.1", "DAGSTER_PG_PORT": str(db.port or 5432),
        "DAGSTER_PG_DB": db.database or "",
        "IIKO_DISCOVERY_INTERVAL_SECONDS": "5",  # the sensor's interval, compressed for the test
    })
    return env


def _counts(engine, account: uuid.UUID) -> dict[str, int]:
    out = {}
    with engine.connect() as conn:
        for table in (schema.restaurants, schema.stores, schema.suppliers, schema.invoices):
            out[table.name] = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                table.c.account_id == account)).scalar_one()
    return out


def _rows(engine, table, account: uuid.UUID, *columns: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*(table.c[c] for c in columns)).where(
            table.c.account_id == account))]


def _summed(rows: Iterable[tuple], key_len: int) -> dict[tuple, Decimal]:
    out: dict[tuple, Decimal] = {}
    for row in rows:
        out[row[:key_len]] = out.get(row[:key_len], Decimal(0)) + row[key_len]
    return out


def _assert_dated_entities_complete(engine, account: uuid.UUID, ds, today: date) -> None:
    """Sales, day totals, cash shifts and stock snapshots hold exactly what the emulator holds for the windows the
    onboarding covers (see SNAPSHOT_DAYS above)."""
    start = today - timedelta(days=ONBOARDING_DAYS - 1)

    # cash shifts: upserted by id, dated by their opening day (restaurant_id is not compared: being reworked)
    truth_shifts = {s.id.lower(): (s.session_number, s.session_status, Decimal(s.cash_diff).scaleb(-2))
                    for s in ds.sales.shifts(start - timedelta(days=1), today)
                    if start <= s.open_date.date() <= today}
    stored_shifts = _rows(engine, schema.cash_shifts, account, "external_id", "session_number", "status",
                          "cash_diff", "open_day")
    assert len(stored_shifts) == len({r[0] for r in stored_shifts}), "a cash shift was stored twice"
    assert {r[0] for r in stored_shifts} == set(truth_shifts) and truth_shifts
    assert {r[0]: r[1:4] for r in stored_shifts} == truth_shifts
    assert all(start <= r[4] <= today for r in stored_shifts)

    # day totals: orders and sums per restaurant and business day
    totals, detail = sales_truth(ds.sales, start, today)
    assert {d for _, d in totals} >= {start, today}, "the emulator's sales do not span the onboarding window"
    stored_totals = _rows(engine, schema.sales_day_totals, account, "restaurant_external_id", "business_date",
                          "orders", "dish_sum", "revenue")
    assert len(stored_totals) == len({r[:2] for r in stored_totals})
    assert {r[:2]: r[2:] for r in stored_totals} == totals

    # daily sales: every detail row, and each restaurant day adds up to its total
    stored_detail = _rows(engine, schema.sales_daily, account, "restaurant_external_id", "business_date",
                          "dish_external_id", "order_type", "pay_types", "dish_amount", "dish_sum", "revenue", "cost")
    assert len(stored_detail) == len({r[:5] for r in stored_detail}), "a sales row was stored twice"
    assert {r[:5]: r[5:] for r in stored_detail} == detail
    assert _summed(((r[0], r[1], r[6]) for r in stored_detail), 2) == {k: v[1] for k, v in totals.items()}

    # stock balances: one snapshot per onboarding day, each the balances at that day's end (zero ones omitted)
    last = today - timedelta(days=SNAPSHOT_LAG_DAYS)
    days = [last - timedelta(days=n) for n in range(SNAPSHOT_DAYS)]
    truth_stock = {}
    for day in days:
        for (store, product), (amount, cents) in ds.stock.balances(
                datetime(day.year, day.month, day.day, 23, 59, 59)).items():
            if (amount, cents) != (0, 0):
                truth_stock[(day, store.lower(), product.lower())] = (Decimal(amount).scaleb(-3),
                                                                        Decimal(cents).scaleb(-2))
    stored_stock = _rows(engine, schema.stock_balances, account, "snapshot_date", "store_external_id",
                         "product_external_id", "amount", "sum")
    assert {r[0] for r in stored_stock} == set(days) == {d for d, _, _ in truth_stock}
    assert len(stored_stock) == len({r[:3] for r in stored_stock})
    assert {r[:3]: r[3:] for r in stored_stock} == truth_stock


def _finished(account: str) -> bool:
    with dg.DagsterInstance.get() as instance:
        return any(r.status == dg.DagsterRunStatus.SUCCESS
                   for r in instance.get_runs(dg.RunsFilter(tags={"iiko/account": account})))


def _cli_syncs_go_through_the_daemons_queue(env: dict[str, str], account: str, expected: dict[str, int],
                                            emulator) -> None:
    """With a daemon dequeuing runs, `sync` submits to its queue (IIKO_RUN_SUBMISSION=auto) and answers as it
    does without one; a second sync of the account while the first is queued or running exits 2 naming it."""
    cli = [str(BIN / "iiko-pipeline"), "sync", account, "restaurants"]
    # The first run's one iiko read answers slowly, so it is still running when the second sync asks (a run of a
    # few restaurants otherwise ends before a second command line has imported Dagster).
    emulator.state.add_fault(endpoint="corporation/departments", kind="slow", delay=8, count=1)
    first = subprocess.Popen(cli, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = first.stderr.readline()  # "run <id>: restaurants of account ..." once the run is queued
    assert started.startswith("run "), started + first.stderr.read()
    run_id = started.split()[1].rstrip(":")
    second = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=180)
    assert second.returncode == 2 and run_id in second.stderr, second.stderr
    assert first.returncode == 0, out + err
    assert json.loads(out)["restaurants"]["total"] == expected["restaurants"]  # the brief's result, as before
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        kinds = {e.dagster_event_type for e in instance.all_logs(run_id) if e.dagster_event_type}
    assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["iiko/trigger"] == "cli"
    assert run.tags["dagster/priority"] == "2"  # a person waits: ahead of scheduled and onboarding runs
    assert {dg.DagsterEventType.RUN_ENQUEUED, dg.DagsterEventType.RUN_STARTING} <= kinds  # queued, then launched


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_daemon_alone_onboards_a_cli_connected_account_completely(emulator, tmp_path, monkeypatch, request,
                                                                       backend):
    """Both instance configs the project ships, each with the warehouse on the same backend."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    if backend == "postgresql":
        db_url = request.getfixturevalue("pg_url")
        shutil.copy(ROOT / "dagster_home" / "dagster.postgres.yaml", home / "dagster.yaml")
    else:
        db_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
        shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = _env(home, db_url, generate_key())
    for name in ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB"):
        monkeypatch.setenv(name, env[name])  # this process reads the same instance afterwards
    account = str(uuid.uuid4())
    # The instance exists before its daemon starts, as on a server (two processes creating a brand-new SQLite
    # instance at once race in Dagster's own schema setup: "UNIQUE constraint failed: alembic_version").
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    dg.DagsterInstance.get().dispose()

    log_path = tmp_path / "daemon.log"
    log = log_path.open("w")
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "iiko_pipeline.definitions"], cwd=ROOT,
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    engine = make_engine(db_url)
    try:
        connect = subprocess.run(
            [str(BIN / "iiko-pipeline"), "connect", account, "--username", EMULATOR_LOGIN, "--base-url", emulator.url],
            cwd=ROOT, env={**env, "IIKO_PASSWORD": EMULATOR_PASSWORD}, capture_output=True, text=True, timeout=120)
        assert connect.returncode == 0, connect.stdout + connect.stderr

        ds = emulator.state.dataset
        today = date.today()
        truth = {d.id for d in ds.invoices(today - timedelta(days=ONBOARDING_DAYS - 1), today)}
        expected = {"restaurants": len(ds.restaurants()), "stores": len(ds.stores()),
                    "suppliers": len(ds.suppliers()), "invoices": len(truth)}
        deadline = time.monotonic() + DEADLINE_S
        counts: dict[str, int] = {}
        finished = False
        while time.monotonic() < deadline and daemon.poll() is None:
            counts = _counts(engine, uuid.UUID(account))
            finished = _finished(account)
            if counts == expected and finished:  # the tables fill before the run's last checks end
                break
            time.sleep(1)
        assert counts == expected and finished, (
            f"after {DEADLINE_S} s: {counts}, expected {expected}, run finished {finished}; daemon log:\n"
            + log_path.read_text()[-6000:])

        inv = schema.invoices
        with engine.connect() as conn:
            stored = set(conn.execute(sa.select(inv.c.external_id).where(
                inv.c.account_id == uuid.UUID(account))).scalars())
        assert stored == truth  # the whole onboarding window, not a lookback's worth
        _assert_dated_entities_complete(engine, uuid.UUID(account), ds, today)

        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs(dg.RunsFilter(tags={"iiko/account": account}))
        assert runs and all(r.tags.get("iiko/trigger") == "onboarding" for r in runs)  # started by the sensor
        assert any(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)

        _cli_syncs_go_through_the_daemons_queue(env, account, expected, emulator)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        log.close()
        engine.dispose()
