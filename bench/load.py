"""Load test of the whole loop on one machine (issue 17, item 4): accounts on several emulator processes,
connected through the CLI, run by the real dagster-daemon on a PostgreSQL instance, for an onboarding cycle and
compressed hourly cycles.

    .venv/bin/python bench/load.py                                # 40 accounts, 4 emulators, 4 run workers
    .venv/bin/python bench/load.py --accounts 200 --emulators 20 --workers 8 --hourly-cycles 2

Cycle 1 is onboarding as production does it: the discovery sensor (every 5 s here) asks one run per new account.
An hourly cycle is the hourly schedule's hour compressed: its 12 ticks are evaluated back to back (each for the
accounts due at its minute) and every requested run is created and queued as the schedule daemon does, so the
queue holds a whole hour's runs and drains as fast as the run workers allow. Reported per cycle: the ticks' time,
queue wait and run time (median, p90), runs per minute, machine CPU seconds per run (from /proc/stat: everything
on the machine, PostgreSQL and the emulators included), failures, and iiko sessions overlapping on any one server
(each emulator has one licence seat, so this must be 0). Every emulator, database and process is removed after.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import EMU_LOGIN, EMU_PASSWORD, EmulatorControl, scratch_databases, write_results

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def cpu_jiffies() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return sum(int(v) for i, v in enumerate(fields) if i not in (3, 4))  # all but idle and iowait


def start_emulator(seed: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "emulator_proc.py"), "--scale", "tiny",
                                "--seed", str(seed), "--today", date.today().isoformat(), "--history-days", "120",
                                "--seats", "1"], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip() if process.stdout else ""
    if not line.startswith("listening on "):
        raise RuntimeError(f"emulator {seed} did not start: {line!r}")
    return process, line.removeprefix("listening on ")


def instance_yaml(dagster_url: str, workers: int) -> str:
    return f"""
storage:
  postgres:
    postgres_url: "{dagster_url}"
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
concurrency:
  runs:
    max_concurrent_runs: {workers}
    tag_concurrency_limits:
      - key: "iiko/account"
        value: {{applyLimitPerUniqueValue: true}}
        limit: 1
      - key: "iiko/server"
        value: {{applyLimitPerUniqueValue: true}}
        limit: 1
schedules: {{use_threads: true, num_workers: 2, num_submit_workers: 4}}
sensors: {{use_threads: true, num_workers: 2, num_submit_workers: 4}}
run_monitoring: {{enabled: true}}
telemetry: {{enabled: false}}
"""


def session_overlaps(url: str) -> int:
    """Pairs of iiko sessions (tokens) whose requests overlapped in time on this server."""
    spans: dict[str, list[float]] = {}
    for r in EmulatorControl(url).log().get("requests", []):
        token, started, duration = r.get("token"), r.get("started"), r.get("duration")
        if token is None or started is None or duration is None:
            continue
        span = spans.setdefault(token, [started, started + duration])
        span[0], span[1] = min(span[0], started), max(span[1], started + duration)
    ordered = sorted(spans.values())
    return sum(1 for a, b in itertools.pairwise(ordered) if b[0] < a[1])


def wait_for_runs(instance, since: float, expected: int, timeout: float) -> list:
    import dagster as dg

    deadline = time.monotonic() + timeout
    while True:
        records = [r for r in instance.get_run_records(dg.RunsFilter(
            created_after=datetime.fromtimestamp(since, UTC))) if r.dagster_run.tags.get("iiko/account")]
        done = [r for r in records if r.dagster_run.is_finished]
        if len(done) >= expected or time.monotonic() > deadline:
            return records
        time.sleep(2)


def cycle_report(name: str, records: list, started: float, cpu_start: int, tick_seconds: float | None) -> dict:
    hz = os.sysconf("SC_CLK_TCK")
    finished = [r for r in records if r.dagster_run.is_finished]
    waits = [r.start_time - r.create_timestamp.timestamp() for r in finished if r.start_time]
    runs = [r.end_time - r.start_time for r in finished if r.start_time and r.end_time]
    ended = max((r.end_time for r in finished if r.end_time), default=time.time())
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r.dagster_run.status.value] = statuses.get(r.dagster_run.status.value, 0) + 1

    def p90(values: list[float]) -> float:
        return statistics.quantiles(values, n=10)[-1] if len(values) >= 2 else (values[0] if values else 0.0)

    return {"cycle": name, "runs": len(records), "statuses": statuses, "tick_s": tick_seconds,
            "queue_wait_median_s": statistics.median(waits) if waits else None, "queue_wait_p90_s": p90(waits),
            "run_median_s": statistics.median(runs) if runs else None, "run_p90_s": p90(runs),
            "wall_s": ended - started, "runs_per_min": len(finished) / max(1e-9, (ended - started) / 60),
            "cpu_s_per_run": (cpu_jiffies() - cpu_start) / hz / max(1, len(finished))}


def hourly_cycle(instance, engine) -> tuple[float, int]:
    """The hourly schedule's 12 ticks of one hour, back to back, each run requested created and queued."""
    import dagster as dg

    from iiko_pipeline.core.specs import SCHEDULES
    from iiko_pipeline.definitions import defs
    from iiko_pipeline.defs.resources import WarehouseResource
    from iiko_pipeline.defs.schedules import account_run_requests
    from iiko_pipeline.services.queue import submit
    from iiko_pipeline.services.sync import selection_for

    group = next(g for g in SCHEDULES if g.name == "hourly")
    keys = selection_for(group.entities)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    started, count = time.perf_counter(), 0
    for minute in range(0, 60, 60 // group.spread):
        when = hour + timedelta(minutes=minute)
        ctx = dg.build_schedule_context(instance=instance, resources={"warehouse": WarehouseResource()},
                                        scheduled_execution_time=when, repository_def=defs.get_repository_def())
        requests = account_run_requests(ctx, WarehouseResource(), group)
        for request in requests if isinstance(requests, list) else []:
            submit(instance, run_id=str(uuid.uuid4()), job_name=group.job, partition_key=request.partition_key,
                   asset_keys=keys, run_config={}, tags=dict(request.tags))
            count += 1
    return time.perf_counter() - started, count


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=40)
    p.add_argument("--emulators", type=int, default=4)
    p.add_argument("--workers", type=int, default=4, help="max_concurrent_runs of the instance")
    p.add_argument("--hourly-cycles", type=int, default=2)
    p.add_argument("--cycle-timeout", type=float, default=1800)
    args = p.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    home = folder / "dagster_home"
    home.mkdir()
    with scratch_databases("load", "warehouse", "dagster") as (warehouse_url, dagster_url):
        (home / "dagster.yaml").write_text(instance_yaml(dagster_url, args.workers))
        from iiko_pipeline.warehouse.crypto import generate_key

        env = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": warehouse_url,
               "CREDENTIAL_ENCRYPTION_KEY": generate_key(), "IIKO_PASSWORD": EMU_PASSWORD,
               "IIKO_DISCOVERY_INTERVAL_SECONDS": "5", "IIKO_ALLOW_HTTP": "false"}
        os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DATABASE_URL", "CREDENTIAL_ENCRYPTION_KEY")})
        emulators: list[tuple[subprocess.Popen, str]] = []
        daemon: subprocess.Popen | None = None
        results: dict = {"accounts": args.accounts, "emulators": args.emulators, "workers": args.workers,
                         "cores": os.cpu_count(), "cycles": []}
        try:
            emulators = [start_emulator(seed) for seed in range(1, args.emulators + 1)]
            accounts = [str(uuid.uuid4()) for _ in range(args.accounts)]
            started = time.perf_counter()
            for i, account in enumerate(accounts):
                done = subprocess.run([str(BIN / "iiko-pipeline"), "connect", account, "--username", EMU_LOGIN,
                                       "--base-url", emulators[i % len(emulators)][1]], env=env, capture_output=True,
                                      text=True, timeout=120)
                if done.returncode != 0:
                    raise RuntimeError(f"connect {account}: {done.stdout}{done.stderr}")
            results["connect_s_per_account"] = (time.perf_counter() - started) / len(accounts)
            print(f"connected {len(accounts)} accounts through the CLI", flush=True)

            import dagster as dg

            from iiko_pipeline.warehouse.migrate import migrated_engine

            instance = dg.DagsterInstance.get()
            engine = migrated_engine(warehouse_url)
            for _, url in emulators:
                EmulatorControl(url).clear_log()
            daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "iiko_pipeline.definitions"],
                                      env=env, cwd=ROOT, stdout=open(folder / "daemon.log", "w"),  # noqa: SIM115
                                      stderr=subprocess.STDOUT)
            since, cpu = time.time(), cpu_jiffies()
            records = wait_for_runs(instance, since, len(accounts), args.cycle_timeout)
            results["cycles"].append(cycle_report("onboarding (discovery sensor)", records, since, cpu, None))
            print(results["cycles"][-1], flush=True)
            for n in range(1, args.hourly_cycles + 1):
                since, cpu = time.time(), cpu_jiffies()
                tick_s, requested = hourly_cycle(instance, engine)
                records = wait_for_runs(instance, since, requested, args.cycle_timeout)
                results["cycles"].append(cycle_report(f"hourly {n} (12 ticks, {requested} runs)", records, since, cpu,
                                                      tick_s))
                print(results["cycles"][-1], flush=True)
            results["session_overlaps_per_server"] = [session_overlaps(url) for _, url in emulators]
        finally:
            if daemon is not None:
                daemon.terminate()
                try:
                    daemon.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    daemon.kill()
            for process, _ in emulators:
                process.terminate()
                process.wait(timeout=30)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = [f"# Load test: {args.accounts} accounts on {args.emulators} emulators, {args.workers} run workers "
             f"(`bench/load.py`)", "",
             f"{stamp}, {os.cpu_count()} cores; real dagster-daemon, PostgreSQL instance and warehouse, "
             f"DefaultRunLauncher (a process per run). Accounts connected through the CLI: "
             f"{results['connect_s_per_account']:.1f} s each. iiko sessions overlapping on one server: "
             f"{sum(results['session_overlaps_per_server'])} (per server: {results['session_overlaps_per_server']}).",
             "", "| cycle | runs | statuses | ticks (s) | queue wait median / p90 (s) | run median / p90 (s) | "
             "wall (s) | runs per minute | machine CPU s per run |", "|---|---|---|---|---|---|---|---|---|"]
    for c in results["cycles"]:
        tick = f"{c['tick_s']:.1f}" if c["tick_s"] is not None else "sensor"
        lines.append(f"| {c['cycle']} | {c['runs']} | {c['statuses']} | {tick} | "
                     f"{c['queue_wait_median_s'] or 0:.1f} / {c['queue_wait_p90_s']:.1f} | "
                     f"{c['run_median_s'] or 0:.1f} / {c['run_p90_s']:.1f} | {c['wall_s']:.0f} | "
                     f"{c['runs_per_min']:.1f} | {c['cpu_s_per_run']:.1f} |")
    write_results("load", stamp, lines, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
