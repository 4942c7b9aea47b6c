"""Helpers shared by the benchmark's parent (`run.py`) and its child processes (`worker.py`).

Nothing here imports the pipeline at module level: the parent stays small, and a child's peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import resource
import time
from array import array
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

EMU_LOGIN = "bench"
EMU_PASSWORD = "bench#пароль1"  # non-ASCII on purpose, like the tests

#: Tables the pipeline writes data into; every other table (sync_runs, sync_state, sync_windows, credentials,
#: the Alembic version) counts as bookkeeping and is reported apart: an unchanged run still logs itself.
DATA_TABLES = ("restaurants", "stores", "suppliers", "measure_units", "product_groups", "products", "employees",
               "invoices", "invoice_items", "sales_daily", "sales_day_totals", "cash_shifts", "stock_balances")


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def own_peak_rss_mb() -> float | None:
    """This process's own peak resident set size since it started (`VmHWM` of its address space).

    Not the same as `peak_rss_mb()` in a child: Linux carries the parent's high-water mark over fork/vfork +
    exec into the child's `ru_maxrss`, so a child of a 200 MB parent never reports less than 200 MB. The
    reference-data line (children of 50-150 MB) reports this one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timer:
    """Accumulates wall time per named bucket: `with t("fetch"): ...`."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - start

    def add(self, name: str, seconds: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + seconds


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of another process (e.g. the emulator), from /proc; None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def proc_tree_pss_mb(pid: int) -> float | None:
    """The proportional set size of a process and all its descendants (e.g. a run and its frame workers), from
    /proc: pages a forked worker shares with its parent count once, so the sum is what the run holds. None if the
    process is gone."""
    total, found, todo = 0.0, False, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024.0
                    found = True
                    break
        except OSError:
            continue
        todo.extend(_children(current))
    return total if found else None


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------- emulator control

class EmulatorControl:
    """The emulator's JSON control API (`/_emulator/`), over plain HTTP."""

    def __init__(self, url: str) -> None:
        import requests

        self.url = url.rstrip("/")
        self.http = requests.Session()

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 120.0) -> Any:
        response = self.http.request(method, f"{self.url}/_emulator/{path}", json=body, timeout=timeout)
        response.raise_for_status()
        return response.json() if response.content else None

    def log(self) -> dict[str, Any]:
        return self._call("GET", "log")

    def clear_log(self) -> None:
        self._call("DELETE", "log")

    def restart(self) -> None:
        """Invalidate every token (frees the licence seat of a child that was killed before logging out)."""
        self._call("POST", "restart")

    def reset(self) -> None:
        self._call("POST", "reset")

    def document(self, doc_id: str) -> dict[str, Any]:
        return self._call("GET", f"documents/{doc_id}")

    def edit_document(self, doc_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", f"documents/{doc_id}", changes)

    def config(self) -> dict[str, Any]:
        return self._call("GET", "config")


def request_summary(log: dict[str, Any]) -> dict[str, Any]:
    """What a sync asked of the iiko server: counts by endpoint, logins/logouts and bytes served."""
    agg = log.get("aggregates", {})
    requests_ = log.get("requests", [])
    by_endpoint_s: dict[str, float] = {}
    for r in requests_:
        name = str(r.get("endpoint"))
        by_endpoint_s[name] = by_endpoint_s.get(name, 0.0) + float(r.get("duration") or 0.0)
    return {
        "requests": agg.get("requests", len(requests_)),
        "logins": agg.get("logins"),
        "logouts": agg.get("logouts"),
        "failed_logins": agg.get("failed_logins"),
        "by_endpoint": agg.get("by_endpoint"),
        "bytes_sent": sum(int(r.get("bytes_sent") or 0) for r in requests_),
        "server_seconds": round(sum(float(r.get("duration") or 0.0) for r in requests_), 3),
        "server_seconds_by_endpoint": {k: round(v, 3) for k, v in by_endpoint_s.items()},
    }


# ---------------------------------------------------------------------------------------------- databases

#: The server the standalone benches (fanout, indexes, load) create their scratch databases on.
BENCH_PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_databases(bench: str, *names: str, admin_url: str = BENCH_PG_ADMIN_URL):
    """PostgreSQL databases `bench_<bench>_<random>_<name>` for the block, dropped after (WITH FORCE: a child
    process may still hold a connection); yields their URLs in the order of `names`."""
    import uuid

    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    suffix = uuid.uuid4().hex[:8]
    databases = [f"bench_{bench}_{suffix}_{name}" for name in names]
    created: list[str] = []
    try:
        with admin.connect() as conn:
            for db in databases:
                conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
                created.append(db)
        base = admin_url.rsplit("/", 1)[0]
        yield [f"{base}/{db}" for db in databases]
    finally:
        with admin.connect() as conn:
            for db in created:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def write_results(name: str, stamp: str, lines: list[str], data: Any) -> str:
    """`results/<name>-<stamp>.md` from `lines` and `.json` from `data`; prints the markdown and returns it."""
    text = "\n".join(lines) + "\n"
    (RESULTS_DIR / f"{name}-{stamp}.md").write_text(text)
    write_json(RESULTS_DIR / f"{name}-{stamp}.json", data)
    print(text)
    return text


def pg_admin_url(dsn_base: str) -> str:
    return f"{dsn_base}/postgres"


def pg_write_counters(url: str) -> dict[str, dict[str, int]]:
    """Per-table n_tup_ins / n_tup_upd / n_tup_del from PostgreSQL's own statistics (public schema only:
    the stage tables are temporary and vanish with their counters)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            # Counters of other backends are flushed when they end (the child is gone by now); give the
            # stats system a moment and drop this backend's cached snapshot before reading.
            time.sleep(1.0)
            conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            rows = conn.execute(sa.text(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd FROM pg_stat_user_tables"
                " WHERE schemaname = 'public'")).all()
    finally:
        engine.dispose()
    return {r[0]: {"ins": int(r[1]), "upd": int(r[2]), "del": int(r[3]), "hot_upd": int(r[4])} for r in rows}


def pg_rows_written(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, Any]:
    per_table: dict[str, dict[str, int]] = {}
    for table, counters in after.items():
        prev = before.get(table, {"ins": 0, "upd": 0, "del": 0, "hot_upd": 0})
        delta = {k: counters[k] - prev.get(k, 0) for k in ("ins", "upd", "del")}
        if any(delta.values()):
            per_table[table] = delta
    return _rows_summary(per_table, "pg_stat_user_tables n_tup_ins+n_tup_upd+n_tup_del deltas")


def sqlite_snapshot(path: str) -> dict[str, tuple[array, array]]:
    """{table: (rowids, row hashes)} in rowid order, for every table we write (bookkeeping included).

    Two machine-word arrays per table (16 bytes a row), so a 4.5M-line warehouse costs ~70 MB, not gigabytes.
    """
    import sqlite3

    out: dict[str, tuple[array, array]] = {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                             " AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            try:
                cursor = conn.execute(f'SELECT rowid, * FROM "{table}" ORDER BY rowid')  # noqa: S608 - our names
            except sqlite3.OperationalError:
                continue
            ids, hashes = array("q"), array("q")
            for row in cursor:
                ids.append(row[0])
                hashes.append(hash(row[1:]))
            out[table] = (ids, hashes)
    finally:
        conn.close()
    return out


def sqlite_rows_written(before: dict[str, tuple[array, array]], after: dict[str, tuple[array, array]]
                        ) -> dict[str, Any]:
    """Rows inserted, updated and deleted, by comparing every row's content hash before and after.

    SQLite's total_changes() is per connection (the child's connections are gone), so the count is derived from
    the data itself: a rowid only after = inserted, only before = deleted, in both with other values = updated.
    """
    empty = (array("q"), array("q"))
    per_table: dict[str, dict[str, int]] = {}
    for table in sorted(set(before) | set(after)):
        (bi, bh), (ai, ah) = before.get(table, empty), after.get(table, empty)
        i = j = ins = upd = dele = 0
        while i < len(bi) and j < len(ai):
            if bi[i] == ai[j]:
                upd += bh[i] != ah[j]
                i += 1
                j += 1
            elif bi[i] < ai[j]:
                dele += 1
                i += 1
            else:
                ins += 1
                j += 1
        dele += len(bi) - i
        ins += len(ai) - j
        if ins or upd or dele:
            per_table[table] = {"ins": ins, "upd": upd, "del": dele}
    return _rows_summary(per_table, "row-by-row content diff of every table (rowid + hash of all columns)")


def _rows_summary(per_table: dict[str, dict[str, int]], method: str) -> dict[str, Any]:
    data = sum(sum(v.values()) for t, v in per_table.items() if t in DATA_TABLES)
    other = sum(sum(v.values()) for t, v in per_table.items() if t not in DATA_TABLES)
    return {"data_rows": data, "bookkeeping_rows": other, "per_table": per_table, "method": method}
