"""Load test of the whole loop on one machine (issue 17, item 4): accounts on several emulator processes,
connected through the CLI, run by the real dagster-daemon (its own sensor and schedule) on a PostgreSQL instance,
through onboarding and then whole hourly periods compressed in time.

    .venv/bin/python bench/load.py          # 40 accounts, 4 emulators, 4 run workers, 20-minute periods, 2 periods
    .venv/bin/python bench/load.py --accounts 200 --emulators 20 --workers 4 --period-minutes 20 --hourly-cycles 2

Onboarding is production's: the discovery sensor (every 5 s here) asks one run per new account. The hourly
schedule is the shipped one with its period compressed (`IIKO_HOURLY_PERIOD_MINUTES`: it ticks every minute and
starts each account once per period, at its own minute), so the daemon ticks, creates, queues and launches every
run itself; it runs during onboarding too, as it would in production. After the last onboarding run the test
measures whole periods and waits for their runs to drain. Reported per cycle: the schedule's own ticks (time
and runs per tick), queue wait and run time (median, p90), drain time, runs per minute, machine CPU seconds per
run (from /proc/stat: everything on the machine, PostgreSQL and the emulators included), failures, the largest
queue, and iiko sessions overlapping on any one server (each emulator has one licence seat, so this must be 0).
Every emulator, database and process is removed after.
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
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
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


def cycle_report(name: str, records: list, started: float, clock: CpuClock, ticks: list | None,
                 everything: list) -> dict:
    finished = [r for r in records if r.dagster_run.is_finished]
    waits = [r.start_time - r.create_timestamp.timestamp() for r in finished if r.start_time]
    runs = [r.end_time - r.start_time for r in finished if r.start_time and r.end_time]
    ended = max((r.end_time for r in finished if r.end_time), default=time.time())
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r.dagster_run.status.value] = statuses.get(r.dagster_run.status.value, 0) + 1
    durations = [t.end_timestamp - t.timestamp for t in ticks or [] if t.end_timestamp]
    # the machine's CPU from the cycle's start to its last run's end, shared by every run that ended in between
    # (of any cycle or kind: cycles overlap when the queue does not drain within a period)
    ended_within = [r for r in everything if r.end_time and started <= r.end_time <= ended]

    def p90(values: list[float]) -> float:
        return statistics.quantiles(values, n=10)[-1] if len(values) >= 2 else (values[0] if values else 0.0)

    return {"cycle": name, "runs": len(records), "statuses": statuses,
            "tick_median_s": statistics.median(durations) if durations else None,
            "tick_max_s": max(durations) if durations else None,
            "runs_per_tick": sorted(len(t.run_ids) for t in ticks or []),
            "queue_wait_median_s": statistics.median(waits) if waits else None, "queue_wait_p90_s": p90(waits),
            "run_median_s": statistics.median(runs) if runs else None, "run_p90_s": p90(runs),
            "drain_s": ended - started, "runs_per_min": len(finished) / max(1e-9, (ended - started) / 60),
            "cpu_s_per_run": clock.seconds_between(started, ended) / max(1, len(ended_within))}


def schedule_ticks(dagster_url: str, name: str, since: float, until: float) -> list:
    """The daemon's own ticks of schedule `name` scheduled in [since, until) (TickData, from its tick table)."""
    import sqlalchemy as sa
    from dagster._core.scheduler.instigation import TickData
    from dagster._serdes import deserialize_value

    engine = sa.create_engine(dagster_url)
    try:
        with engine.connect() as conn:
            bodies = conn.execute(sa.text("SELECT tick_body FROM job_ticks WHERE type = 'SCHEDULE'")).scalars()
            ticks = [deserialize_value(body, TickData) for body in bodies]
    finally:
        engine.dispose()
    return sorted((t for t in ticks if t.instigator_name == name and since <= t.timestamp < until),
                  key=lambda t: t.timestamp)


def connect_all(accounts: list[str], urls: list[str], env: dict, parallel: int) -> None:
    """Each account through `iiko-pipeline connect`, a few at a time (consecutive accounts are on different
    emulators, so no two connects share a licence seat)."""
    def connect(item: tuple[int, str]) -> None:
        i, account = item
        done = subprocess.run([str(BIN / "iiko-pipeline"), "connect", account, "--username", EMU_LOGIN,
                               "--base-url", urls[i % len(urls)]], env=env, capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"connect {account}: {done.stdout}{done.stderr}")

    items = list(enumerate(accounts))
    connect(items[0])  # alone: the first command creates the instance's and the warehouse's schemas
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(connect, items[1:]))


def runs_since(instance, since: float) -> list:
    import dagster as dg

    return [r for r in instance.get_run_records(dg.RunsFilter(created_after=datetime.fromtimestamp(since, UTC)))
            if r.dagster_run.tags.get("iiko/account")]


def tick_of(record) -> float | None:
    """The scheduled minute of a schedule run (its run key ends with the tick's ISO time)."""
    parts = record.dagster_run.tags.get("dagster/run_key", "").split(":", 2)  # hourly:<account>:<ISO time>
    try:
        return datetime.fromisoformat(parts[2]).timestamp() if len(parts) == 3 else None
    except ValueError:
        return None


class CpuClock:
    """Machine CPU jiffies sampled every few seconds, to charge an interval's CPU to the runs it finished."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []

    def sample(self) -> None:
        self.samples.append((time.time(), cpu_jiffies()))

    def seconds_between(self, start: float, end: float) -> float:
        def at(t: float) -> int:
            return min(self.samples, key=lambda s: abs(s[0] - t))[1]
        return (at(end) - at(start)) / os.sysconf("SC_CLK_TCK")


def wait_until(condition, clock: CpuClock, instance, timeout: float, queue_depths: list) -> bool:
    import dagster as dg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clock.sample()
        queued = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
        queue_depths.append((time.time(), queued))
        if condition():
            return True
        time.sleep(5)
    return False


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=40)
    p.add_argument("--emulators", type=int, default=4)
    p.add_argument("--workers", type=int, default=4, help="max_concurrent_runs of the instance")
    p.add_argument("--period-minutes", type=int, default=20,
                   help="the hourly schedule's compressed period (IIKO_HOURLY_PERIOD_MINUTES; divides 60)")
    p.add_argument("--hourly-cycles", type=int, default=2, help="full periods measured after onboarding")
    p.add_argument("--connect-parallel", type=int, default=4)
    p.add_argument("--timeout", type=float, default=3600, help="for onboarding, and for the cycles to drain")
    args = p.parse_args()
    period = args.period_minutes * 60

    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    home = folder / "dagster_home"
    home.mkdir()
    with scratch_databases("load", "warehouse", "dagster") as (warehouse_url, dagster_url):
        (home / "dagster.yaml").write_text(instance_yaml(dagster_url, args.workers))
        from iiko_pipeline.warehouse.crypto import generate_key

        env = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": warehouse_url,
               "CREDENTIAL_ENCRYPTION_KEY": generate_key(), "IIKO_PASSWORD": EMU_PASSWORD,
               "IIKO_DISCOVERY_INTERVAL_SECONDS": "5", "IIKO_ALLOW_HTTP": "false",
               "IIKO_HOURLY_PERIOD_MINUTES": str(args.period_minutes)}
        os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DATABASE_URL", "CREDENTIAL_ENCRYPTION_KEY")})
        emulators: list[tuple[subprocess.Popen, str]] = []
        daemon: subprocess.Popen | None = None
        results: dict = {"accounts": args.accounts, "emulators": args.emulators, "workers": args.workers,
                         "period_minutes": args.period_minutes, "cores": os.cpu_count(), "cycles": []}
        clock, depths = CpuClock(), []
        try:
            emulators = [start_emulator(seed) for seed in range(1, args.emulators + 1)]
            accounts = [str(uuid.uuid4()) for _ in range(args.accounts)]
            started = time.perf_counter()
            connect_all(accounts, [url for _, url in emulators], env, args.connect_parallel)
            results["connect_s_per_account"] = (time.perf_counter() - started) / len(accounts)
            print(f"connected {len(accounts)} accounts through the CLI", flush=True)

            import dagster as dg

            instance = dg.DagsterInstance.get()
            for _, url in emulators:
                EmulatorControl(url).clear_log()
            daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "iiko_pipeline.definitions"],
                                      env=env, cwd=ROOT, stdout=open(folder / "daemon.log", "w"),  # noqa: SIM115
                                      stderr=subprocess.STDOUT)
            since = time.time()
            clock.sample()

            def onboarded() -> bool:
                sensed = [r for r in runs_since(instance, since) if r.dagster_run.tags.get("dagster/sensor_name")]
                return len([r for r in sensed if r.dagster_run.is_finished]) >= len(accounts)

            if not wait_until(onboarded, clock, instance, args.timeout, depths):
                raise RuntimeError("onboarding did not finish in time")
            first = (int(time.time()) // period + 1) * period  # the first whole period after onboarding
            last = first + args.hourly_cycles * period
            print(f"onboarded; measuring the periods from {datetime.fromtimestamp(first, UTC):%H:%M} to "
                  f"{datetime.fromtimestamp(last, UTC):%H:%M} UTC", flush=True)

            def drained() -> bool:
                if time.time() < last + 5:
                    return False
                cycle_runs = [r for r in runs_since(instance, first - 60) if (tick_of(r) or 0) >= first
                              and (tick_of(r) or 0) < last]
                return all(r.dagster_run.is_finished for r in cycle_runs)

            if not wait_until(drained, clock, instance, (last - time.time()) + args.timeout, depths):
                raise RuntimeError("the measured periods' runs did not drain in time")
            results["session_overlaps_per_server"] = [session_overlaps(url) for _, url in emulators]
            records = runs_since(instance, since)
            sensed = [r for r in records if r.dagster_run.tags.get("dagster/sensor_name")]
            results["cycles"].append(cycle_report("onboarding (discovery sensor, every 5 s)", sensed, since, clock,
                                                  None, records))
            early = [r for r in records if (tick_of(r) or last) < first]
            if early:
                results["cycles"].append(cycle_report("hourly schedule during onboarding", early, since, clock, None,
                                                      records))
            for n in range(args.hourly_cycles):
                start = first + n * period
                mine = [r for r in records if start <= (tick_of(r) or 0) < start + period]
                ticks = schedule_ticks(dagster_url, "hourly_sync_schedule", start, start + period)
                results["cycles"].append(cycle_report(f"period {n + 1} ({args.period_minutes} min, "
                                                      f"{len(ticks)} ticks)", mine, start, clock, ticks, records))
            results["queue_depth_max"] = max((d for _, d in depths), default=0)
            for c in results["cycles"]:
                print(c, flush=True)
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

    write_report(args, results)
    return 0


def write_report(args: argparse.Namespace, results: dict) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    overlaps = results["session_overlaps_per_server"]
    lines = [f"# Load test: {args.accounts} accounts on {args.emulators} emulators, {args.workers} run workers, "
             f"hourly period compressed to {args.period_minutes} min (`bench/load.py`)", "",
             f"{stamp}, {os.cpu_count()} cores; real dagster-daemon (its own discovery sensor and hourly schedule, "
             f"`IIKO_HOURLY_PERIOD_MINUTES={args.period_minutes}`), PostgreSQL instance and warehouse, "
             f"DefaultRunLauncher (a process per run). Accounts connected through the CLI: "
             f"{results['connect_s_per_account']:.1f} s each ({args.connect_parallel} at a time). iiko sessions "
             f"overlapping on one server: {sum(overlaps)} (per server: {overlaps}). Largest queue seen: "
             f"{results['queue_depth_max']} runs.", "",
             "Ticks: the hourly schedule's own ticks in the period (scheduled minute to tick end, i.e. the daemon's "
             "lag plus evaluation plus creating and queueing the tick's runs). Drain: from the period's start to "
             "the end of its last run. CPU: the machine's CPU over the period (or the onboarding) divided by the "
             "runs that finished in it (PostgreSQL, daemon and emulators included).", "",
             "| cycle | runs | statuses | ticks: median / max (s), runs per tick | queue wait median / p90 (s) | "
             "run median / p90 (s) | drain (s) | runs per minute | machine CPU s per run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in results["cycles"]:
        tick = ("-" if c["tick_median_s"] is None else
                f"{c['tick_median_s']:.1f} / {c['tick_max_s']:.1f}, {c['runs_per_tick']}")
        lines.append(f"| {c['cycle']} | {c['runs']} | {c['statuses']} | {tick} | "
                     f"{c['queue_wait_median_s'] or 0:.1f} / {c['queue_wait_p90_s']:.1f} | "
                     f"{c['run_median_s'] or 0:.1f} / {c['run_p90_s']:.1f} | {c['drain_s']:.0f} | "
                     f"{c['runs_per_min']:.1f} | {c['cpu_s_per_run']:.1f} |")
    write_results("load", stamp, lines, results)


if __name__ == "__main__":
    raise SystemExit(main())
