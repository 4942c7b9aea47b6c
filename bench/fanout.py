"""Bench: what a schedule tick costs for 1,000 and 5,000 connected accounts.

    .venv/bin/python bench/fanout.py                 # 1000,5000 accounts, SQLite and PostgreSQL instances
    .venv/bin/python bench/fanout.py --accounts 1000 --backends sqlite

For each size and backend (the warehouse and the Dagster instance on the same backend, as deployed): N accounts
connected (credentials stored encrypted, partitions added, reference data marked synced), then the hourly
schedule's tick is evaluated as the daemon evaluates it: once for every one of its 12 ticks in an hour (each
account is due at one of them, `core.fanout`), and once as a tick started by hand, which takes every account at
once, the shape every hourly tick had before the spread (the same run's baseline). Reported: seconds per tick
(median and max of the 12), run requests per tick, and the ratio to the all-at-once tick. Not measured here:
the daemon creating the requested runs (Dagster's own cost per run, now paid for a twelfth of the accounts per
tick) and the queue draining (the load test's).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import scratch_databases, write_results

SUBMIT_WORKERS = 8  # `schedules: num_submit_workers` in dagster_home/dagster.postgres.yaml


def _connect_accounts(engine, keyring, instance, n: int) -> list[str]:
    import sqlalchemy as sa

    from iiko_pipeline.core.specs import SCHEDULES, with_prerequisites
    from iiko_pipeline.warehouse import schema
    from iiko_pipeline.warehouse.credentials import IIKO, save_credentials

    accounts = [str(uuid.uuid4()) for _ in range(n)]
    for account in accounts:
        save_credentials(engine, keyring, account, IIKO, "user", "bench-password", base_url="https://x.iiko.it",
                         connected_at=datetime.now(UTC))
    instance.add_dynamic_partitions("accounts", accounts)
    hourly = next(g for g in SCHEDULES if g.name == "hourly")
    references = [e for e in with_prerequisites(hourly.entities) if e not in hourly.entities]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.sync_state), [
            {"account_id": uuid.UUID(a), "entity": e, "last_success_at": now, "updated_at": now}
            for a in accounts for e in references])
    return accounts


def _tick(instance, when: datetime, *, spread: bool = True) -> tuple[float, int]:
    """One evaluation of the hourly schedule's tick at `when`; without `spread`, the same function over a group
    that takes every account at every tick (the shape before the spread)."""
    import dataclasses

    import dagster as dg

    from iiko_pipeline.core.specs import SCHEDULES
    from iiko_pipeline.definitions import defs
    from iiko_pipeline.defs.resources import WarehouseResource
    from iiko_pipeline.defs.schedules import account_run_requests

    group = next(g for g in SCHEDULES if g.name == "hourly")
    if not spread:
        group = dataclasses.replace(group, spread=1)
    ctx = dg.build_schedule_context(instance=instance, resources={"warehouse": WarehouseResource()},
                                    scheduled_execution_time=when, repository_def=defs.get_repository_def())
    started = time.perf_counter()
    answer = account_run_requests(ctx, WarehouseResource(), group)
    requests = answer if isinstance(answer, list) else []
    return time.perf_counter() - started, len(requests)


def _run_creation_seconds(instance, accounts: list[str], samples: int) -> float:
    """Seconds to create and queue one hourly run, as the daemon does for each run request of a tick (the job's
    subset from the code location, its execution plan, the run, the queue), median over `samples` runs."""
    from iiko_pipeline.core.specs import SCHEDULES
    from iiko_pipeline.defs.sensors import run_tags
    from iiko_pipeline.services.queue import submit
    from iiko_pipeline.services.sync import selection_for

    group = next(g for g in SCHEDULES if g.name == "hourly")
    keys = selection_for(group.entities)
    seconds = []
    for account in accounts[: samples + 1]:
        started = time.perf_counter()
        submit(instance, run_id=str(uuid.uuid4()), job_name=group.job, partition_key=account, asset_keys=keys,
               run_config={}, tags=run_tags(account))
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[1:])  # the first loads the code location


def _parallel_run_creation_seconds(instance, accounts: list[str], runs: int, threads: int) -> float:
    """Wall seconds per run when `threads` create and queue runs at once, as the schedule daemon does with
    `num_submit_workers` (dagster.postgres.yaml)."""
    from concurrent.futures import ThreadPoolExecutor

    from iiko_pipeline.core.specs import SCHEDULES
    from iiko_pipeline.defs.sensors import run_tags
    from iiko_pipeline.services.queue import submit
    from iiko_pipeline.services.sync import selection_for

    group = next(g for g in SCHEDULES if g.name == "hourly")
    keys = selection_for(group.entities)

    def one(account: str) -> None:
        submit(instance, run_id=str(uuid.uuid4()), job_name=group.job, partition_key=account, asset_keys=keys,
               run_config={}, tags=run_tags(account))

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, accounts[-runs:]))
    return (time.perf_counter() - started) / runs


def measure(n: int, backend: str) -> dict:
    import dagster as dg

    from iiko_pipeline.warehouse.crypto import KeyRing, generate_key
    from iiko_pipeline.warehouse.migrate import migrated_engine

    folder = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    os.environ["CREDENTIAL_ENCRYPTION_KEY"] = generate_key()
    os.environ["DAGSTER_HOME"] = str(folder)
    databases = scratch_databases("fanout", "all") if backend == "postgresql" else contextlib.nullcontext([None])
    with databases as (pg_url,):
        if pg_url is not None:
            url, overrides = pg_url, {"storage": {"postgres": {"postgres_url": pg_url}}}
        else:
            url, overrides = f"sqlite:///{folder / 'warehouse.db'}", {}
        # Runs are queued, never launched: no daemon dequeues them.
        overrides["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
        os.environ["DATABASE_URL"] = url
        engine = migrated_engine(url)
        with dg.instance_for_test(temp_dir=str(folder), overrides=overrides) as instance:
            accounts = _connect_accounts(engine, KeyRing.from_env(), instance, n)
            _tick(instance, datetime(2026, 12, 2, 8, 0, tzinfo=UTC))  # warm: definitions loaded, caches filled
            spread = [_tick(instance, datetime(2026, 12, 2, 9, minute, tzinfo=UTC)) for minute in range(0, 60, 5)]
            all_at_once = min(_tick(instance, datetime(2026, 12, 2, 9, 7, tzinfo=UTC), spread=False)[0]
                              for _ in range(3))
            per_run = _run_creation_seconds(instance, accounts, samples=20)
            per_run_parallel = _parallel_run_creation_seconds(instance, accounts, runs=48, threads=SUBMIT_WORKERS)
        engine.dispose()
    assert sum(r for _, r in spread) == len(accounts), "every account due once an hour"
    seconds = [s for s, _ in spread]
    most = max(r for _, r in spread)
    daemon_tick = max(seconds) + most * per_run  # the tick's evaluation, then its runs created and queued
    daemon_all = all_at_once + n * per_run
    daemon_tick_parallel = max(seconds) + most * per_run_parallel
    return {"accounts": n, "backend": backend, "eval_median_s": statistics.median(seconds),
            "eval_max_s": max(seconds), "requests_per_tick": [r for _, r in spread],
            "eval_all_at_once_s": all_at_once, "run_creation_s": per_run,
            "daemon_tick_s": daemon_tick, "daemon_all_at_once_s": daemon_all,
            "daemon_tick_vs_all_at_once": daemon_tick / daemon_all,
            "run_creation_parallel_s": per_run_parallel, "daemon_tick_parallel_s": daemon_tick_parallel}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", default="1000,5000")
    p.add_argument("--backends", default="sqlite,postgresql")
    args = p.parse_args()
    results = [measure(int(n), b) for n in args.accounts.split(",") for b in args.backends.split(",")]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = ["# Schedule tick for many accounts (`bench/fanout.py`)", "",
             f"{stamp}, {os.cpu_count()} cores. Hourly schedule: 12 ticks an hour, each for the accounts due then. "
             "A tick's cost is its evaluation plus creating and queueing each requested run (measured per run, "
             "median of 20); the baseline is every account in one tick, the shape before the spread.", "",
             "| accounts | backend | evaluation, max of 12 ticks (s) | runs per tick (min-max) | one run created "
             "and queued (ms) | busiest tick, total (s) | all in one tick, total (s, baseline) | ratio | "
             f"per run with {SUBMIT_WORKERS} submit threads (ms) | busiest tick with them (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        per_tick = f"{min(r['requests_per_tick'])}-{max(r['requests_per_tick'])}"
        lines.append(f"| {r['accounts']} | {r['backend']} | {r['eval_max_s']:.2f} | {per_tick} | "
                     f"{r['run_creation_s'] * 1000:.0f} | "
                     f"{r['daemon_tick_s']:.2f} | {r['daemon_all_at_once_s']:.1f} | "
                     f"{r['daemon_tick_vs_all_at_once']:.3f} | {r['run_creation_parallel_s'] * 1000:.0f} | "
                     f"{r['daemon_tick_parallel_s']:.1f} |")
    write_results("fanout", stamp, lines, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
