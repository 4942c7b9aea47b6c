"""Helpers for tests that run the product as an operator does: the real `iiko-pipeline` command line, a real
instance from the shipped `dagster_home/dagster.yaml`, runs in processes of their own, emulators over HTTP.

Used by the crash and fault tests; the `home` fixture that sets the environment lives in this folder's conftest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa

from iiko_pipeline.emulator import EmulatorConfig, EmulatorServer
from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.dated_windows import get_watermark
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: What a run that ended looks like; anything else (QUEUED, STARTING, STARTED, CANCELING...) still looks alive.
FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


def emulator(**kw) -> EmulatorServer:
    """An emulator on loopback with the tests' credentials (`tiny`, seed 7 unless told otherwise)."""
    return EmulatorServer(EmulatorConfig(host="127.0.0.1", port=kw.pop("port", 0), login=EMULATOR_LOGIN,
                                         password=EMULATOR_PASSWORD, seed=kw.pop("seed", 7),
                                         scale=kw.pop("scale", "tiny"), **kw))


def free_port() -> int:
    """A port free right now on loopback (for a server that must come back on the same port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`iiko-pipeline ARGS` to the end, as an operator types it (the password comes from IIKO_PASSWORD). On a
    timeout the command and every process it started are killed (a run left behind would hold its account)."""
    process = subprocess.Popen([str(BIN / "iiko-pipeline"), *args], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env={**os.environ, "IIKO_PASSWORD": EMULATOR_PASSWORD})
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def start_cli(*args: str) -> subprocess.Popen:
    """`iiko-pipeline ARGS` in the background, in a process group of its own so a test can kill the CLI and the
    run's process at once, as a machine going down does."""
    return subprocess.Popen([str(BIN / "iiko-pipeline"), *args], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process and everything it started; reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def connect(account: str, emu: EmulatorServer) -> None:
    done = cli("connect", account, "--username", EMULATOR_LOGIN, "--base-url", emu.url)
    assert done.returncode == 0, done.stdout + done.stderr


def engine() -> sa.Engine:
    from iiko_pipeline.warehouse.migrate import migrated_engine

    return migrated_engine(os.environ["DATABASE_URL"])


def live_sessions(emu: EmulatorServer) -> int:
    return emu.state.sessions.live_count(emu.state.config.token_ttl)


def stored_invoices(account: str) -> list[str]:
    """The external ids of the account's invoices that are not soft-deleted (duplicates kept, to be counted)."""
    inv = schema.invoices
    with engine().connect() as conn:
        return list(conn.execute(sa.select(inv.c.external_id).where(
            inv.c.account_id == uuid.UUID(account), inv.c.is_deleted.is_(False))).scalars())


def invoice_truth(emu: EmulatorServer, start: date, end: date) -> set[str]:
    return {d.id for d in emu.state.dataset.invoices(start, end)}


def is_connected(account: str) -> bool:
    creds = schema.account_integration_credentials
    with engine().connect() as conn:
        return bool(conn.execute(sa.select(creds.c.is_connected).where(
            creds.c.account_id == uuid.UUID(account))).scalar_one())


#: Columns that legitimately differ between two accounts holding the same iiko data: our surrogate keys, the
#: account itself and the moments we wrote or soft-deleted a row.
_OURS = frozenset({"id", "account_id", "synced_at", "deleted_at", "supplier_id", "default_store_id", "store_id",
                   "invoice_id", "restaurant_id", "parent_id", "product_id", "amount_unit_id", "group_id",
                   "main_unit_id"})  # surrogate keys (links resolved to our ids) differ between two accounts


def snapshot(account: str) -> dict[str, list[tuple]]:
    """Every row of the account's entity tables as iiko's data decides it, sorted: two accounts synced from the
    same iiko data have equal snapshots, whatever happened on the way. Invoice lines carry their invoice's
    external id instead of our surrogate key."""
    tables = (schema.restaurants, schema.stores, schema.suppliers, schema.invoices, schema.invoice_items)
    out: dict[str, list[tuple]] = {}
    with engine().connect() as conn:
        invoice_ids = dict(conn.execute(sa.select(schema.invoices.c.id, schema.invoices.c.external_id).where(
            schema.invoices.c.account_id == uuid.UUID(account))).all())
        for table in tables:
            columns = [c for c in table.c if c.name not in _OURS]
            select = sa.select(*columns, *([table.c.invoice_id] if "invoice_id" in table.c else []))
            rows = []
            for row in conn.execute(select.where(table.c.account_id == uuid.UUID(account))):
                values = list(row)
                if "invoice_id" in table.c:
                    values[-1] = invoice_ids[values[-1]]
                rows.append(tuple(values))
            out[table.name] = sorted(rows, key=repr)
    return out


def earliest_invoice_date(account: str) -> date:
    """The document date of the account's oldest stored invoice."""
    inv = schema.invoices
    with engine().connect() as conn:
        return conn.execute(sa.select(sa.func.min(inv.c.document_date)).where(
            inv.c.account_id == uuid.UUID(account))).scalar_one()


def runs_alive(instance: dg.DagsterInstance, account: str) -> list[str]:
    runs = instance.get_runs(dg.RunsFilter(tags={"iiko/account": account}))
    return [f"{r.run_id}: {r.status.value}" for r in runs if r.status.value not in FINISHED]


def expired_sessions(emu) -> int:
    """How many live sessions a `token_expired` fault killed (a fault on an already dead token kills none)."""
    return sum(1 for r in emu.state.log.records() if r.fault == "token_expired" and r.token)


def assert_whole(emu, instance, account: str, start: date, killed_by_server: int, stranded_at_most: int = 0) -> None:
    """The account's invoices are exactly iiko's for [start, today], once each; the watermark is today; the account
    is connected; the seats are free; no run looks alive; every login was logged out or its session killed by the
    server, except at most `stranded_at_most` logins a SIGKILL cut off before the token reached us (those expire at
    iiko, as they would there after ~1 h)."""
    today = date.today()
    stored = stored_invoices(account)
    assert len(stored) == len(set(stored)), "an invoice was stored twice"
    assert set(stored) == invoice_truth(emu, start, today)
    assert get_watermark(engine(), account) == today
    assert is_connected(account)
    assert live_sessions(emu) == 0
    log = emu.state.log
    accounted = log.logouts + killed_by_server
    assert accounted <= log.logins <= accounted + stranded_at_most, (log.logins, log.logouts, killed_by_server)
    assert runs_alive(instance, account) == []


def diagnosis(emu, instance: dg.DagsterInstance, account: str) -> str:
    """What a stuck or failed sync leaves behind, for the failure message: locks, runs, the emulator's open and
    last requests, the processes still running."""
    from iiko_pipeline.warehouse import run_locks

    now = time.time()
    runs = instance.get_runs(dg.RunsFilter(tags={"iiko/account": account}))
    lines = [f"locks: {run_locks.all_locks(engine())}", f"runs: {[(r.run_id[:8], r.status.value) for r in runs]}",
             f"live iiko sessions: {live_sessions(emu)}"]
    for rec in emu.state.log.records()[-12:]:
        open_for = "" if rec.ended is not None else f" OPEN for {now - rec.started:.0f} s"
        lines.append(f"  {rec.seq} {rec.method} {rec.endpoint} {rec.status} fault={rec.fault}{open_for}")
    ps = subprocess.run(["ps", "-eo", "pid,pgid,stat,etimes,args"], capture_output=True, text=True).stdout
    lines += [line for line in ps.splitlines() if "iiko" in line or "dagster" in line]
    return "\n".join(lines)


def sales_truth(sales: Any, start: date, end: date) -> tuple[dict[tuple, tuple], dict[tuple, tuple]]:
    """iiko's SALES report of the business days [start, end] computed from the emulator's orders themselves (not
    through its OLAP endpoint): per (restaurant, day) the orders with a live line and their sums before and after
    discount; per detail row (restaurant, day, dish, order type, pay type) portions, both sums and cost. Deleted
    orders and dishes are not sales. `sales` is the emulator dataset's `sales`."""
    totals: dict[tuple, list[int]] = {}
    detail: dict[tuple, list[int]] = {}
    for day, order in sales.orders_by_business_day(start, end):
        lines = list(order.live_lines())
        if not lines:
            continue
        restaurant = order.department_id.lower()
        total = totals.setdefault((restaurant, day), [0, 0, 0])
        total[0] += 1
        for index, portions, sum_c, discount_c, cost_c, _status in lines:
            total[1] += sum_c
            total[2] += sum_c - discount_c
            row = detail.setdefault((restaurant, day, sales.dishes[index].id.lower(), order.order_type,
                                     order.pay_type), [0, 0, 0, 0])
            for i, value in enumerate((portions, sum_c, sum_c - discount_c, cost_c)):
                row[i] += value
    cent = Decimal("0.01")
    return ({k: (n, s * cent, r * cent) for k, (n, s, r) in totals.items()},
            {k: (Decimal(a), s * cent, r * cent, c * cent) for k, (a, s, r, c) in detail.items()})
