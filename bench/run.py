"""`make bench`: full and incremental sync of an iiko account against its baselines, at scales `large` and
`seed` (`--invoice-scales`), on PostgreSQL and SQLite. See bench/README.md for what each figure means.

    .venv/bin/python bench/run.py             # full: 365 days at `large` and `seed` (>= 1M line items), hours
    .venv/bin/python bench/run.py --quick     # 30 days at `large`: checks the harness in a few minutes
    .venv/bin/python bench/run.py --only reference   # the reference-data line alone (products), a few minutes
    .venv/bin/python bench/run.py --only sales       # a year of daily sales (OLAP) at `large` and `seed`

Every measurement runs in its own child process (`worker.py`), so each peak RSS is that process's own; the
emulator runs in another process, and its time counts as "fetch" (it is the server). Results land in
bench/results/ as JSON and markdown (`latest.md` / `latest-quick.md` point at the newest).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report
from common import (
    BENCH_DIR,
    REPO_DIR,
    RESULTS_DIR,
    EmulatorControl,
    pg_rows_written,
    pg_write_counters,
    proc_cpu_seconds,
    proc_rss_mb,
    proc_tree_pss_mb,
    request_summary,
    sqlite_rows_written,
    sqlite_snapshot,
    write_json,
)

PG_BASE = "postgresql+psycopg2://postgres@127.0.0.1:5432"
PG_DSN_BASE = "postgresql://postgres@127.0.0.1:5432"
LOOKBACK_DAYS = 14  # the pipeline's default InvoiceSyncConfig.lookback_days
#: The sections of a run (`--skip`, `--only`).
SECTIONS = ("reference", "sales", "overhead", "backends", "profile")
#: The reference-data line: the entity timed, and what it softly links to (synced first, untimed).
REFERENCE_ENTITY = "products"
REFERENCE_BEFORE = ("measure_units", "product_groups")
#: The daily-sales line: the entity timed, and what it links to (restaurants hard, products softly, and what
#: products link to), synced first, untimed.
SALES_ENTITY = "sales_daily"
SALES_BEFORE = ("restaurants", "measure_units", "product_groups", "products")


def log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------- processes

class Emulator:
    """An emulator in its own process; stopped by its own pid."""

    def __init__(self, scale: str, today: date, history_days: int, tmp: Path, tag: str = "") -> None:
        self.log_path = tmp / f"emulator-{scale}{tag}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "emulator_proc.py"), "--scale", scale, "--today", today.isoformat(),
             "--history-days", str(history_days)],
            cwd=REPO_DIR, stdout=subprocess.PIPE, stderr=self._log, text=True)
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"emulator did not start: {line!r} (see {self.log_path})")
        self.url = line.removeprefix("listening on ")
        self.control = EmulatorControl(self.url)
        self.scale = scale

    def cpu(self) -> float | None:
        return proc_cpu_seconds(self.proc.pid)

    def rss(self) -> float | None:
        return proc_rss_mb(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="iiko_bench_", dir=args.tmp_dir))
        self.token = uuid.uuid4().hex[:8]
        self.databases: list[str] = []
        self.today = date.fromisoformat(args.today) if args.today else date.today()
        self.counter = 0
        from iiko_pipeline.warehouse.crypto import generate_key

        self.key = generate_key()

    # --------------------------------------------------------------------------------------------- databases

    def new_db(self, backend: str, purpose: str) -> dict[str, str]:
        """A fresh, empty warehouse database for one phase."""
        name = f"bench_{self.token}_{purpose}"
        if backend == "sqlite":
            path = self.tmp / f"{name}.db"
            return {"backend": backend, "name": name, "url": f"sqlite:///{path}", "path": str(path)}
        import sqlalchemy as sa

        admin = sa.create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self.databases.append(name)
        return {"backend": backend, "name": name, "url": f"{PG_BASE}/{name}", "dsn": f"{PG_DSN_BASE}/{name}"}

    def drop_db(self, db: dict[str, str]) -> None:
        if db["backend"] == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(db["path"] + suffix).unlink(missing_ok=True)
            return
        import sqlalchemy as sa

        if self.args.keep_dbs:
            return
        admin = sa.create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                         {"n": db["name"]})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db["name"]}"'))
        admin.dispose()
        if db["name"] in self.databases:
            self.databases.remove(db["name"])

    def drop_all(self) -> None:
        for name in list(self.databases):
            self.drop_db({"backend": "postgresql", "name": name})

    def db_size_mb(self, db: dict[str, str]) -> float:
        if db["backend"] == "sqlite":
            return round(sum(Path(db["path"] + s).stat().st_size for s in ("", "-wal")
                             if Path(db["path"] + s).exists()) / 2**20, 1)
        import sqlalchemy as sa

        engine = sa.create_engine(db["url"], poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
        engine.dispose()
        return round(size / 2**20, 1)

    def table_counts(self, db: dict[str, str]) -> dict[str, int]:
        import sqlalchemy as sa

        engine = sa.create_engine(db["url"], poolclass=sa.pool.NullPool)
        out = {}
        with engine.connect() as conn:
            for table in ("invoices", "invoice_items"):
                out[table] = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
        engine.dispose()
        return out

    def write_counters(self, db: dict[str, str]) -> Any:
        return pg_write_counters(db["url"]) if db["backend"] == "postgresql" else sqlite_snapshot(db["path"])

    @staticmethod
    def rows_written(db: dict[str, str], before: Any, after: Any) -> dict[str, Any]:
        if db["backend"] == "postgresql":
            return pg_rows_written(before, after)
        return sqlite_rows_written(before, after)

    # --------------------------------------------------------------------------------------------- children

    def child(self, label: str, spec: dict[str, Any], emulator: Emulator | None) -> dict[str, Any]:
        """Run one task in a fresh process, watching its RSS (killed above --rss-cap-mb) and its time."""
        self.counter += 1
        stem = f"{self.counter:02d}-" + "".join(c if c.isalnum() else "_" for c in label)
        spec_path, out_path = self.tmp / f"{stem}.spec.json", self.tmp / f"{stem}.out.json"
        spec_path.write_text(json.dumps(spec, default=str))
        stderr_path = self.tmp / f"{stem}.stderr"
        if emulator is not None:
            emulator.control.clear_log()
        emu_cpu0 = emulator.cpu() if emulator else None
        head = code_version()
        log(f"{label}: start")
        started = time.perf_counter()
        timeline: list[list[float]] = []  # [epoch, RSS MB] about once a second
        with stderr_path.open("w") as err:
            proc = subprocess.Popen([sys.executable, str(BENCH_DIR / "worker.py"), str(spec_path), str(out_path)],
                                    cwd=REPO_DIR, stderr=err, stdout=err)
            try:
                self._watch(proc, started, timeline)
            except BaseException:  # interrupted: never leave a measured child behind
                proc.kill()
                proc.wait()
                raise
            sampled, killed = self._sampled, self._killed
        wall = time.perf_counter() - started

        if out_path.exists() and not killed:
            result = json.loads(out_path.read_text())
        else:
            tail = stderr_path.read_text()[-3000:] if stderr_path.exists() else ""
            result = {"ok": False, "error": killed or f"child exited with {proc.returncode}", "stderr_tail": tail,
                      "peak_rss_mb": round(sampled, 1), "killed_after_s": round(wall, 1)}
        result["parent_wall_s"] = round(wall, 3)
        result["rss_timeline"] = timeline
        result["account_id"] = spec.get("account_id")
        result["code_version"] = head  # others commit during a long run: each phase says what it ran
        result["sampled_peak_rss_mb"] = round(sampled, 1)
        result["sampled_peak_tree_pss_mb"] = round(self._tree, 1)
        if emulator is not None:
            emu_cpu1 = emulator.cpu()
            result["emulator_cpu_s"] = round(emu_cpu1 - emu_cpu0, 2) if emu_cpu0 is not None and emu_cpu1 else None
            result["iiko"] = request_summary(emulator.control.log())
            if not result.get("ok"):
                emulator.control.restart()  # a killed child never logged out: free its licence seat
        status = "ok" if result.get("ok") else f"FAILED: {result.get('error')}"
        log(f"{label}: {status} in {wall:.1f} s, peak RSS {result.get('peak_rss_mb')} MB")
        return result

    def _watch(self, proc: subprocess.Popen, started: float, timeline: list[list[float]]) -> None:
        """Sample the child's RSS every 0.2 s until it exits; kill it above the RSS cap or the time limit."""
        self._sampled, self._killed, self._tree = 0.0, None, 0.0
        last_point = 0.0
        while proc.poll() is None:
            rss = proc_rss_mb(proc.pid) or 0.0
            self._sampled = max(self._sampled, rss)
            self._tree = max(self._tree, proc_tree_pss_mb(proc.pid) or 0.0)
            now = time.time()
            if now - last_point >= 1.0:
                timeline.append([round(now, 2), round(rss, 1)])
                last_point = now
            if rss > self.args.rss_cap_mb:
                self._killed = f"killed by the harness: RSS {rss:.0f} MB above the {self.args.rss_cap_mb} MB cap"
            elif time.perf_counter() - started > self.args.child_timeout_s:
                self._killed = f"killed by the harness: still running after {self.args.child_timeout_s} s"
            if self._killed:
                proc.kill()
                proc.wait()
                return
            time.sleep(0.2)

    def base_spec(self, task: str, db: dict[str, str], emulator: Emulator, **extra: Any) -> dict[str, Any]:
        spec = {"task": task, "db_url": db["url"], "emu_url": emulator.url, "account_id": str(uuid.uuid4()),
                "encryption_key": self.key}
        if "dsn" in db:
            spec["pg_dsn"] = db["dsn"]
        spec.update(extra)
        return spec

    def dagster_home(self, purpose: str) -> str:
        home = self.tmp / f"dagster_home_{purpose}"
        home.mkdir(exist_ok=True)
        return str(home)


# ------------------------------------------------------------------------------------------------- phases

def iso_windows(start: date, end: date, days: int = 7, anchor: date | None = None) -> list[tuple[str, str]]:
    """The client's export windows (`iiko_pipeline.iiko.split_windows`, on `anchor`'s grid if given), as ISO
    pairs."""
    from iiko_pipeline.iiko import split_windows

    return [(a.isoformat(), b.isoformat()) for a, b in split_windows(start, end, days, anchor)]


def window_alignment(today: date, days: int) -> dict[str, Any]:
    """Are the hourly run's windows (watermark - lookback .. today) exactly windows that onboarding committed?
    Only then can a skip keyed by window bounds (the pipeline's fingerprints) recognise them as unchanged. The
    hourly range is cut as the pipeline cuts it (`core.steps.incremental_grid`): on the grid of the last
    committed window when it is longer than one window."""
    onboarding = iso_windows(today - timedelta(days=days - 1), today)
    start = today - timedelta(days=LOOKBACK_DAYS)
    anchor = date.fromisoformat(onboarding[-1][0]) if LOOKBACK_DAYS >= 7 else None
    hourly = iso_windows(start, today, anchor=anchor)
    return {"hourly_windows": hourly, "committed_by_onboarding": [w in set(onboarding) for w in hourly],
            "aligned": all(w in set(onboarding) for w in hourly)}


def window(today: date, days: int) -> tuple[str, str]:
    return (today - timedelta(days=days - 1)).isoformat(), today.isoformat()


def run_backend(bench: Bench, backend: str, emu: Emulator) -> dict[str, Any]:
    """Every invoice phase of one backend against `emu` (one scale). Labels and database names carry the scale:
    the scales run one after the other in the same run, and `--keep-dbs` must not make their names clash."""
    args, today = bench.args, bench.today
    date_from, date_to = window(today, args.days)
    out: dict[str, Any] = {"backend": backend, "scale": emu.scale,
                           "window_alignment": window_alignment(today, args.days)}
    emu.control.reset()  # drop edits made for the other backend: every backend sees the same data
    label, tag = f"{backend}/{emu.scale}", f"{backend[:2]}_{emu.scale}"

    # --- baseline: the floor ---------------------------------------------------------------------------
    db = bench.new_db(backend, f"{tag}_floor")
    out["floor"] = bench.child(f"{label} floor", bench.base_spec("floor", db, emu, date_from=date_from,
                                                                   date_to=date_to), emu)
    out["floor"]["db_size_mb"] = bench.db_size_mb(db)
    bench.drop_db(db)

    # --- baseline: the hand-written batched loader (the floor's windows, keyed typed tables, upserts) ---
    db = bench.new_db(backend, f"{tag}_handwritten")
    out["handwritten"] = bench.child(f"{label} hand-written loader", bench.base_spec(
        "handwritten", db, emu, date_from=date_from, date_to=date_to), emu)
    out["handwritten"]["db_size_mb"] = bench.db_size_mb(db)
    bench.drop_db(db)

    # --- baseline: the naive path on a sample of the first window --------------------------------------
    db = bench.new_db(backend, f"{tag}_naive")
    first_to = min(date.fromisoformat(date_from) + timedelta(days=6), today).isoformat()
    out["naive"] = bench.child(f"{label} naive", bench.base_spec(
        "naive", db, emu, date_from=date_from, date_to=first_to, sample_items=args.naive_sample), emu)
    bench.drop_db(db)

    # --- the layer functions, called directly (the fetch / parse / upsert split) -----------------------
    db_layered = bench.new_db(backend, f"{tag}_layered")
    out["layered"] = bench.child(f"{label} layered {args.days}d", bench.base_spec(
        "layered", db_layered, emu, date_from=date_from, date_to=date_to), emu)
    out["layered"]["db_size_mb"] = bench.db_size_mb(db_layered)

    # --- the Dagster path: full sync over a short history (for the flatness ratio), then the real one --
    if args.flat_days:
        db = bench.new_db(backend, f"{tag}_flat")
        out["full_flat"] = dagster_full(bench, db, emu, args.flat_days, "flat")
        bench.drop_db(db)
    db_full = bench.new_db(backend, f"{tag}_full")
    out["full"] = dagster_full(bench, db_full, emu, args.days, "full")

    # --- incremental: the hourly run right after onboarding -------------------------------------------
    if out["full"].get("ok") and out["full"].get("success"):
        target, home, account = db_full, out["full"]["dagster_home"], out["full"]["account_id"]
        bench.drop_db(db_layered)
    else:  # onboarding through Dagster failed: continue from the directly loaded warehouse (said in the report)
        target, home, account = db_layered, bench.dagster_home(f"{tag}_fallback"), out["layered"].get("account_id")
        out["incremental_base"] = "layered (the Dagster onboarding did not complete)"
        bench.drop_db(db_full)
    connect = target is db_layered
    out["incremental_unchanged"] = incremental(bench, target, emu, home, account, "unchanged", connect=connect)

    # --- the same window, the first time (fresh warehouse with reference data) -------------------------
    db = bench.new_db(backend, f"{tag}_window")
    out["window_first"] = window_first(bench, db, emu)
    bench.drop_db(db)

    # --- 1% of the window's documents edited through the control API, then the hourly run again -------
    out["edits"] = edit_documents(bench, target, emu)
    out["incremental_edited"] = incremental(bench, target, emu, home, account, "edited", connect=False)
    out["db_size_mb"] = bench.db_size_mb(target)
    bench.drop_db(target)
    shutil.rmtree(home, ignore_errors=True)
    return out


def dagster_full(bench: Bench, db: dict[str, str], emu: Emulator, days: int, purpose: str) -> dict[str, Any]:
    date_from, date_to = window(bench.today, days)
    home = bench.dagster_home(f"{db['name']}")
    spec = bench.base_spec("dagster", db, emu, dagster_home=home, connect=True, run={
        "entities": ["restaurants", "stores", "suppliers", "invoices"],
        "config": {"mode": "incremental", "history_days": days, "date_to": date_to}})
    before = bench.write_counters(db) if db["backend"] == "postgresql" else None
    result = bench.child(f"{db['backend']}/{emu.scale} dagster full {days}d", spec, emu)
    result.update({"days": days, "date_from": date_from, "date_to": date_to, "dagster_home": home,
                   "account_id": spec["account_id"]})
    if not result.get("ok"):  # killed or failed: which step was it in? (the run's own event log says)
        post = bench.child(f"{db['backend']}/{emu.scale} postmortem {days}d",
                           {"task": "postmortem", "dagster_home": home}, None)
        result["steps_s"], result["steps_at"] = post.get("steps_s"), post.get("steps_at")
    if result.get("ok"):
        result["table_counts"] = bench.table_counts(db)
        if before is not None:
            result["rows_written"] = bench.rows_written(db, before, bench.write_counters(db))
        result["db_size_mb"] = bench.db_size_mb(db)
        result["raw_store_mb"] = round(sum(f.stat().st_size for f in Path(home).rglob("*") if f.is_file()) / 2**20, 1)
    if purpose != "full":
        shutil.rmtree(home, ignore_errors=True)
    return result


def incremental(bench: Bench, db: dict[str, str], emu: Emulator, home: str, account: str, label: str,
                *, connect: bool) -> dict[str, Any]:
    spec = bench.base_spec("dagster", db, emu, dagster_home=home, connect=connect, run={
        "entities": ["invoices"], "config": {"mode": "incremental", "date_to": bench.today.isoformat()}})
    spec["account_id"] = account
    before = bench.write_counters(db)
    result = bench.child(f"{db['backend']}/{emu.scale} incremental {label}", spec, emu)
    if result.get("ok"):
        result["rows_written"] = bench.rows_written(db, before, bench.write_counters(db))
    return result


def window_first(bench: Bench, db: dict[str, str], emu: Emulator) -> dict[str, Any]:
    """The incremental run's window (watermark - lookback .. today) synced into an empty invoice table."""
    home = bench.dagster_home(f"{db['name']}")
    spec = bench.base_spec("dagster", db, emu, dagster_home=home, connect=True, pre_runs=[
        {"entities": ["restaurants", "stores", "suppliers"], "config": {}}], run={
        "entities": ["invoices"], "config": {"mode": "incremental", "history_days": LOOKBACK_DAYS + 1,
                                             "date_to": bench.today.isoformat()}})
    result = bench.child(f"{db['backend']}/{emu.scale} window first time", spec, emu)
    shutil.rmtree(home, ignore_errors=True)
    return result


def edit_documents(bench: Bench, db: dict[str, str], emu: Emulator) -> dict[str, Any]:
    """Edit 1% of the documents dated in the incremental window: half the comment only, half a line too."""
    import sqlalchemy as sa

    start = bench.today - timedelta(days=LOOKBACK_DAYS)
    engine = sa.create_engine(db["url"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        ids = sorted(conn.execute(sa.text(
            "SELECT external_id FROM invoices WHERE document_date >= :a AND document_date <= :b"),
            {"a": start, "b": bench.today}).scalars())
    engine.dispose()
    count = max(1, math.ceil(len(ids) / 100))
    step = max(1, len(ids) // count)
    chosen = ids[::step][:count]
    comment_only = lines = 0
    started = time.perf_counter()
    for n, doc_id in enumerate(chosen):
        changes: dict[str, Any] = {"comment": f"bench edit {n}"}
        if n % 2:
            items = emu.control.document(doc_id)["items"]
            first = dict(items[0])
            amount = Decimal(first["amount"]) + 1
            first.update(amount=str(amount), actual_amount=str(amount))
            for money in ("sum", "vat_sum", "price_without_vat"):
                first.pop(money, None)  # recomputed by the emulator from amount x price
            changes["items"] = [first, *items[1:]]
            lines += 1
        else:
            comment_only += 1
        emu.control.edit_document(doc_id, changes)
    return {"window_documents": len(ids), "edited": len(chosen), "comment_only": comment_only,
            "with_line_change": lines, "seconds": round(time.perf_counter() - started, 2),
            "window": [start.isoformat(), bench.today.isoformat()]}


def run_reference(bench: Bench) -> dict[str, Any]:
    """Products (reference data) at each `--reference-scales` scale, on each backend: the floor, the first sync
    into an empty table and an unchanged second sync, `--reference-repeats` times each, interleaved (floor,
    first, second, floor, ...) so that drift on a shared machine hits all three alike. Every measurement is a
    child of its own; the emulator is one per scale (its own process)."""
    args = bench.args
    out: dict[str, Any] = {"entity": REFERENCE_ENTITY, "before": list(REFERENCE_BEFORE),
                           "repeats": args.reference_repeats, "profile": args.reference_profile,
                           "profile_below": report.REFERENCE_PROFILE_BELOW, "scales": {}}
    for scale in args.reference_scales.split(","):
        emu = Emulator(scale, bench.today, 30, bench.tmp)  # no invoices are read: a short history will do
        try:
            out["scales"][scale] = {backend: reference_backend(bench, backend, emu, scale)
                                    for backend in args.backends.split(",")}
        finally:
            emu.stop()
    return out


def reference_backend(bench: Bench, backend: str, emu: Emulator, scale: str) -> dict[str, Any]:
    args = bench.args
    res: dict[str, Any] = {"floor": [], "first": [], "second": []}
    tag = f"{backend[:2]}_ref_{scale}"
    for n in range(1, args.reference_repeats + 1):
        db = bench.new_db(backend, f"{tag}_floor{n}")
        res["floor"].append(bench.child(f"{backend}/reference {scale} floor #{n}", bench.base_spec(
            "reference_floor", db, emu, entity=REFERENCE_ENTITY), emu))
        bench.drop_db(db)
        db = bench.new_db(backend, f"{tag}_sync{n}")
        first, second = reference_pair(bench, db, emu, f"{backend}/reference {scale}", f"#{n}")
        res["first"].append(first)
        res["second"].append(second)
        bench.drop_db(db)
    # cProfile of the write step, in extra children (the profiler slows them): where a sync is slower than
    # the threshold share of the floor (`--reference-profile auto`), or always.
    derived = report.derive_reference_backend(res)
    for kind in ("first", "second"):
        share = derived.get(f"{kind}_vs_floor")
        wanted = args.reference_profile == "always" or (
            args.reference_profile == "auto" and share is not None and share < report.REFERENCE_PROFILE_BELOW)
        if not wanted:
            continue
        db = bench.new_db(backend, f"{tag}_prof_{kind}")
        first, second = reference_pair(bench, db, emu, f"{backend}/reference {scale}",
                                       "profiled" if kind == "first" else "(before the profiled one)",
                                       profile=kind, second=kind == "second")
        res[f"profile_{kind}"] = first if kind == "first" else second
        bench.drop_db(db)
    return res


def reference_pair(bench: Bench, db: dict[str, str], emu: Emulator, label: str, suffix: str, *,
                   profile: str | None = None, second: bool = True) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The first sync of the entity into an empty warehouse, then (same account, same database, a new process)
    the second, with nothing changed at the source; the second's writes are counted by the database."""
    spec = bench.base_spec("reference_sync", db, emu, entity=REFERENCE_ENTITY, before=list(REFERENCE_BEFORE),
                           label="first", profile_write=profile == "first")
    first = bench.child(f"{label} first sync {suffix}", spec, emu)
    if profile == "second":
        suffix = "profiled"
    if not second:
        return first, None
    if not first.get("ok"):
        return first, {"ok": False, "error": "the first sync failed: no second sync"}
    before = bench.write_counters(db)
    result = bench.child(f"{label} unchanged sync {suffix}",
                         {**spec, "label": "second", "profile_write": profile == "second"}, emu)
    if result.get("ok"):
        result["rows_written"] = bench.rows_written(db, before, bench.write_counters(db))
    return first, result


def run_sales(bench: Bench, out: dict[str, Any]) -> None:
    """A year (`--sales-days`) of daily sales at each `--sales-scales` scale, on each backend: the floor, the
    first sync (backfill of the span into an empty table) and the unchanged re-run of the same span,
    `--sales-repeats` times each, interleaved. One emulator per scale (its own process), kept for every
    measurement of that scale: the orders it generates are the same for all of them. Fills `out` as it goes,
    so an interrupted run keeps every measurement that finished."""
    args = bench.args
    date_from, date_to = window(bench.today, args.sales_days)
    out.update({"entity": SALES_ENTITY, "before": list(SALES_BEFORE), "days": args.sales_days,
                "date_from": date_from, "date_to": date_to, "repeats": args.sales_repeats,
                "profile": args.sales_profile, "profile_days": args.sales_profile_days,
                "profile_below": report.SALES_PROFILE_BELOW, "scales": {}})
    for scale in args.sales_scales.split(","):
        emu = Emulator(scale, bench.today, args.sales_days + 30, bench.tmp, tag="-sales")
        per: dict[str, Any] = out["scales"].setdefault(scale, {})
        try:
            for backend in args.backends.split(","):
                sales_backend(bench, backend, emu, scale, date_from, date_to, per.setdefault(backend, {}))
            out.setdefault("emulator_rss_mb", {})[scale] = emu.rss()
        finally:
            emu.stop()


def sales_backend(bench: Bench, backend: str, emu: Emulator, scale: str, date_from: str, date_to: str,
                  res: dict[str, Any]) -> None:
    """One scale on one backend; fills `res` (floor / first / second lists, and the profiled child)."""
    args = bench.args
    res.update({"days": args.sales_days, "date_from": date_from, "date_to": date_to, "floor": [], "first": [],
                "second": []})
    tag = f"{backend[:2]}_sales_{scale}"
    label = f"{backend}/sales {scale} {args.sales_days}d"
    for n in range(1, args.sales_repeats + 1):
        db = bench.new_db(backend, f"{tag}_floor{n}")
        floor = bench.child(f"{label} floor #{n}", bench.base_spec(
            "sales_floor", db, emu, date_from=date_from, date_to=date_to), emu)
        if floor.get("ok"):
            floor["db_size_mb"] = bench.db_size_mb(db)
        res["floor"].append(floor)
        bench.drop_db(db)
        db = bench.new_db(backend, f"{tag}_sync{n}")
        sales_pair(bench, db, emu, label, f"#{n}", date_from, date_to, res)
        bench.drop_db(db)
    # cProfile of the first sync's write (and frame) step, in an extra child over a shorter span (the profiler
    # slows it down): where the first sync is slower than the threshold share of the floor, or always.
    share = report.derive_sales_backend(res).get("first_vs_floor")
    if args.sales_profile == "always" or (
            args.sales_profile == "auto" and share is not None and share < report.SALES_PROFILE_BELOW):
        days = args.sales_profile_days or args.sales_days
        p_from, p_to = window(bench.today, days)
        db = bench.new_db(backend, f"{tag}_prof")
        spec = bench.base_spec("sales_sync", db, emu, entity=SALES_ENTITY, before=list(SALES_BEFORE),
                               label="profiled", date_from=p_from, date_to=p_to, work_root=str(bench.tmp),
                               profile_write=True)
        res["profile_first"] = bench.child(f"{label} first sync profiled ({days} d)", spec, emu)
        res["profile_first"]["days"] = days
        bench.drop_db(db)


def sales_pair(bench: Bench, db: dict[str, str], emu: Emulator, label: str, suffix: str, date_from: str,
               date_to: str, res: dict[str, Any]) -> None:
    """The first sync of the span into an empty warehouse, then (same account, same database, a new process)
    the same span again with nothing changed at the source; the re-run's writes are counted by the database.
    Each result is appended to `res["first"]` / `res["second"]` as soon as it is complete."""
    spec = bench.base_spec("sales_sync", db, emu, entity=SALES_ENTITY, before=list(SALES_BEFORE), label="first",
                           date_from=date_from, date_to=date_to, work_root=str(bench.tmp))
    first = bench.child(f"{label} first sync {suffix}", spec, emu)
    if first.get("ok"):
        first["db_size_mb"] = bench.db_size_mb(db)
    res["first"].append(first)
    if not first.get("ok"):
        res["second"].append({"ok": False, "error": "the first sync failed: no re-run"})
        return
    before = bench.write_counters(db)
    second = bench.child(f"{label} unchanged re-run {suffix}", {**spec, "label": "second"}, emu)
    if second.get("ok"):
        second["rows_written"] = bench.rows_written(db, before, bench.write_counters(db))
    res["second"].append(second)


def run_invoices(bench: Bench, data: dict[str, Any], *, backends: bool, profile: bool) -> None:
    """The invoice phases (section `backends`) at each `--invoice-scales` scale, on each backend, and the cProfile
    runs (section `profile`) at the first scale only. Like the sales line, one emulator process per scale, started
    for that scale and stopped before the next: only one is resident at a time, and a scale's data never depends
    on what ran before it. Fills `data["invoices"]["scales"][scale][backend]` as backends finish, so an
    interrupted run keeps what was measured."""
    args = bench.args
    scales = [s.strip() for s in args.invoice_scales.split(",") if s.strip()]
    out: dict[str, Any] = data.setdefault("invoices", {"scales": {}, "emulator_rss_mb": {}})
    for n, scale in enumerate(scales if backends else scales[:1]):
        emu = Emulator(scale, bench.today, max(400, args.days + LOOKBACK_DAYS + 30), bench.tmp, tag="-invoices")
        try:
            if backends:
                per: dict[str, Any] = out["scales"].setdefault(scale, {})
                for backend in args.backends.split(","):
                    per[backend] = run_backend(bench, backend, emu)
                out["emulator_rss_mb"][scale] = emu.rss()
            if profile and n == 0:
                data["profiles"] = run_profiles(bench, emu)
        finally:
            emu.stop()


def run_overhead(bench: Bench, backend: str, emu: Emulator) -> dict[str, Any]:
    """A tiny account: K syncs through Dagster vs the same syncs through the layer functions."""
    out: dict[str, Any] = {}
    for mode in ("direct", "dagster"):
        db = bench.new_db(backend, f"{backend[:2]}_ovh_{mode}")
        home = bench.dagster_home(db["name"])
        spec = bench.base_spec("overhead", db, emu, mode=mode, dagster_home=home, runs=bench.args.overhead_runs,
                               history_days=30, date_to=bench.today.isoformat())
        # the schemas exist and the account is connected before the measured process starts, as a deployed run
        # worker finds them
        bench.child(f"{backend}/overhead {mode} schemas", {**spec, "task": "overhead_prepare"}, emu)
        out[mode] = bench.child(f"{backend}/overhead {mode}", spec, emu)
        bench.drop_db(db)
        shutil.rmtree(home, ignore_errors=True)
    return out


def run_profiles(bench: Bench, emu: Emulator) -> dict[str, Any]:
    """cProfile of the Dagster path and of the direct layered path over the same short history (PostgreSQL), at
    the scale of `emu` (the first of `--invoice-scales`)."""
    date_from, date_to = window(bench.today, bench.args.profile_days)
    out: dict[str, Any] = {"days": bench.args.profile_days, "scale": emu.scale}
    db = bench.new_db("postgresql", "pg_prof_dagster")
    home = bench.dagster_home(db["name"])
    out["dagster"] = bench.child(f"postgresql/{emu.scale} profile dagster", bench.base_spec(
        "dagster", db, emu, dagster_home=home, connect=True, profile=True, run={
            "entities": ["restaurants", "stores", "suppliers", "invoices"],
            "config": {"mode": "incremental", "history_days": bench.args.profile_days, "date_to": date_to}}), emu)
    bench.drop_db(db)
    shutil.rmtree(home, ignore_errors=True)
    db = bench.new_db("postgresql", "pg_prof_layered")
    out["layered"] = bench.child(f"postgresql/{emu.scale} profile layered", bench.base_spec(
        "layered", db, emu, date_from=date_from, date_to=date_to, profile=True), emu)
    bench.drop_db(db)
    return out


# ------------------------------------------------------------------------------------------------- machine

def machine_info(bench: Bench) -> dict[str, Any]:
    import dagster
    import lxml.etree as etree
    import pandas
    import psycopg2
    import pyarrow
    import sqlalchemy as sa

    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal")))
    engine = sa.create_engine(f"{PG_BASE}/postgres", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        pg = {"version": conn.execute(sa.text("SHOW server_version")).scalar_one()}
        for name in ("shared_buffers", "synchronous_commit", "fsync", "wal_level", "max_wal_size", "work_mem"):
            pg[name] = conn.execute(sa.text(f"SHOW {name}")).scalar_one()
    engine.dispose()
    import sqlite3

    commit = _read_only_git(["git", "rev-parse", "--short", "HEAD"])
    dirty = _read_only_git(["git", "status", "--porcelain"])
    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(mem_kb / 2**20, 1), "kernel": platform.release(),
        "loadavg_start": list(os.getloadavg()), "python": platform.python_version(),
        "lxml": ".".join(map(str, etree.LXML_VERSION)), "libxml2": ".".join(map(str, etree.LIBXML_VERSION)),
        "sqlalchemy": sa.__version__, "psycopg2": psycopg2.__version__.split()[0], "dagster": dagster.__version__,
        "pandas": pandas.__version__, "pyarrow": pyarrow.__version__, "sqlite": sqlite3.sqlite_version,
        "postgresql": pg, "git_commit": commit,
        "git_uncommitted_files": len(dirty.splitlines()) if dirty is not None else None,
    }


def code_version() -> str | None:
    """HEAD plus a marker when pipeline files differ from it (read-only git calls)."""
    head = _read_only_git(["git", "rev-parse", "--short", "HEAD"])
    dirty = _read_only_git(["git", "status", "--porcelain", "--", "iiko_pipeline"])
    return f"{head}+uncommitted" if head and dirty else head


def _read_only_git(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, cwd=REPO_DIR, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


# ------------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="30 days of history (flatness against 7): a harness check")
    p.add_argument("--days", type=int, help="days of invoice history for the full sync (default 365, quick 30)")
    p.add_argument("--flat-days", type=int, help="the short history the peak RSS is compared with (30; quick 7; 0=off)")
    p.add_argument("--backends", default="postgresql,sqlite", help="comma-separated: postgresql, sqlite")
    p.add_argument("--invoice-scales",
                   help="emulator scales of the invoice phases, one emulator each (default large,seed; quick large)")
    p.add_argument("--naive-sample", type=int, default=5000, help="line items the naive path writes")
    p.add_argument("--overhead-runs", type=int, default=4, help="syncs per process for the Dagster overhead")
    p.add_argument("--profile-days", type=int, default=14, help="history profiled with cProfile (0 = no profile)")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: " + ", ".join(SECTIONS))
    p.add_argument("--only", default="", help="comma-separated sections to run, no other (e.g. `reference`)")
    p.add_argument("--reference-scales", default="large,seed", help="emulator scales of the reference-data line")
    p.add_argument("--reference-repeats", type=int, default=5,
                   help="children per reference measurement (floor, first, second), medians reported")
    p.add_argument("--reference-profile", choices=("auto", "always", "never"), default="auto",
                   help="cProfile the reference sync's write step: auto = where it is below "
                        "25%% of the floor's throughput")
    p.add_argument("--sales-scales", default="large,seed", help="emulator scales of the daily-sales line")
    p.add_argument("--sales-days", type=int,
                   help="business days of sales synced (default 365, quick 28), ending on `today`")
    p.add_argument("--sales-repeats", type=int, default=1,
                   help="children per sales measurement (floor, first sync, re-run), medians reported")
    p.add_argument("--sales-profile", choices=("auto", "always", "never"), default="auto",
                   help="cProfile the first sales sync's write and frame steps in an extra child: auto = where it "
                        "is below 50%% of the floor's throughput")
    p.add_argument("--sales-profile-days", type=int, default=28,
                   help="the span of the profiled sales sync (0 = --sales-days)")
    p.add_argument("--rss-cap-mb", type=int, default=8000, help="kill a child whose RSS exceeds this")
    p.add_argument("--child-timeout-s", type=int, default=5400, help="kill a child running longer than this")
    p.add_argument("--today", help="pin the emulator's and the syncs' today (YYYY-MM-DD)")
    p.add_argument("--tmp-dir", default=None, help="where SQLite files and Dagster homes go (default: system tmp)")
    p.add_argument("--results-dir", default=str(RESULTS_DIR))
    p.add_argument("--keep-dbs", action="store_true", help="do not drop the PostgreSQL scratch databases")
    args = p.parse_args(argv)
    if args.days is None:
        args.days = 30 if args.quick else 365
    if args.flat_days is None:
        args.flat_days = 7 if args.quick else 30
    if args.sales_days is None:
        args.sales_days = 28 if args.quick else 365
    if args.invoice_scales is None:  # quick stays quick: one scale
        args.invoice_scales = "large" if args.quick else "large,seed"
    args.mode = "quick" if args.quick else ("full" if args.days == 365 else f"{args.days}d")
    named = {s.strip() for s in f"{args.skip},{args.only}".split(",") if s.strip()}
    if named - set(SECTIONS):
        p.error(f"unknown section(s) {', '.join(sorted(named - set(SECTIONS)))}; choose from {', '.join(SECTIONS)}")
    if args.only:
        only = {s.strip() for s in args.only.split(",") if s.strip()}
        args.skip = ",".join(sorted({s.strip() for s in args.skip.split(",") if s.strip()} | (set(SECTIONS) - only)))
        args.mode = "+".join(s for s in SECTIONS if s in only)
        if only & {"backends", "profile"}:  # invoice sections: the history length still tells the runs apart
            args.mode += "-quick" if args.quick else ("" if args.days == 365 else f"-{args.days}d")
        elif "sales" in only:  # the sales span tells its runs apart (`latest-sales.md` is the year)
            args.mode += "-quick" if args.quick else ("" if args.sales_days == 365 else f"-{args.sales_days}d")
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    # Background shells start us with SIGINT ignored: make SIGINT and SIGTERM stop the run cleanly (children
    # killed, emulators stopped, scratch databases dropped, partial results written).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    args = parse_args(argv)
    bench = Bench(args)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    started = datetime.now(UTC)
    # The invoice phases land in data["invoices"]["scales"][scale][backend]; results written before
    # `--invoice-scales` had one scale (`large`) in data["backends"][backend] (report.invoice_runs reads both).
    data: dict[str, Any] = {"mode": args.mode, "started_at": started.isoformat(), "today": bench.today.isoformat(),
                            "days": args.days, "flat_days": args.flat_days, "lookback_days": LOOKBACK_DAYS,
                            "sales_days": args.sales_days,
                            "args": {k: v for k, v in vars(args).items()}, "machine": machine_info(bench)}
    sections = [s for s in SECTIONS if s not in skip]
    log(f"mode {args.mode}: {', '.join(sections) or 'nothing'} ({args.days} days of invoices at "
        f"{args.invoice_scales}, {args.sales_days} of sales), scratch {bench.tmp}")
    tiny = None
    try:
        if "reference" not in skip:
            try:
                data["reference"] = run_reference(bench)
            except Exception as exc:  # a harness error here must not cost the invoice sections
                data["reference"] = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"reference section failed: {data['reference']['error']}")
        if "sales" not in skip:
            data["sales"] = {}  # filled as measurements finish: an interrupted run keeps them
            try:
                run_sales(bench, data["sales"])
            except Exception as exc:  # a harness error here must not cost the other sections
                data["sales"]["error"] = f"{type(exc).__name__}: {exc}"
                log(f"sales section failed: {data['sales']['error']}")
        if "overhead" not in skip:
            tiny = Emulator("tiny", bench.today, 400, bench.tmp)
            data["overhead"] = {b: run_overhead(bench, b, tiny) for b in args.backends.split(",")}
            tiny.stop()
            tiny = None
        profile = bool(args.profile_days) and "profile" not in skip
        if "backends" not in skip or profile:
            run_invoices(bench, data, backends="backends" not in skip, profile=profile)
    except KeyboardInterrupt as exc:
        data["interrupted"] = str(exc) or "interrupted"
        log(f"interrupted ({data['interrupted']}): cleaning up and writing what was measured")
    finally:
        if tiny is not None:
            tiny.stop()
        bench.drop_all()
        data["finished_at"] = datetime.now(UTC).isoformat()
        data["machine"]["loadavg_end"] = list(os.getloadavg())
        data["derived"] = report.derive(data)
        out_dir = Path(args.results_dir)
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        json_path = out_dir / f"bench-{stamp}-{args.mode}.json"
        md_path = out_dir / f"bench-{stamp}-{args.mode}.md"
        write_json(json_path, data)
        md_path.write_text(report.markdown(data, json_path.name))
        latest = "latest.md" if args.mode == "full" else f"latest-{args.mode}.md"
        (out_dir / latest).write_text(report.markdown(data, json_path.name))
        write_json(out_dir / latest.replace(".md", ".json"), data)
        log(f"results: {md_path} (and {out_dir / latest})")
        shutil.rmtree(bench.tmp, ignore_errors=True)
    return 130 if "interrupted" in data else 0


if __name__ == "__main__":
    raise SystemExit(main())
