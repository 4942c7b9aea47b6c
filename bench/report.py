"""Derived figures (ratios to the baselines, targets met or missed) and the markdown table."""

from __future__ import annotations

import statistics
from typing import Any

BACKEND_NAMES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
#: The reference-data line profiles a sync's write step when its throughput is below this share of the floor's.
REFERENCE_PROFILE_BELOW = 0.25
#: The daily-sales line profiles the first sync's write step when its throughput is below this share of the floor's.
SALES_PROFILE_BELOW = 0.5
#: The full sync's throughput target as a multiple of the hand-written batched loader's (the issue's).
HANDWRITTEN_TARGET = 1.5
#: The rest of the performance round's targets (issue 16).
FLOOR_SHARE_TARGET = {"postgresql": 0.75, "sqlite": 0.6}
NAIVE_TARGET = 25
RSS_TARGET_MB = 350
UNCHANGED_TARGET = 0.15
EDITED_TARGET = 0.30
OVERHEAD_TARGET_S = 3.0
#: The OLAP endpoint's name in the emulator's request log (the sales line's server time).
OLAP_ENDPOINT = "v2/reports/olap"


def _get(d: Any, *path: Any, default: Any = None) -> Any:
    for key in path:
        found = (isinstance(d, dict) and key in d) or (
            isinstance(d, list) and isinstance(key, int) and -len(d) <= key < len(d))
        if found:
            d = d[key]
        else:
            return default
    return d


def _div(a: Any, b: Any) -> float | None:
    try:
        return a / b if a is not None and b else None
    except TypeError:
        return None


def _ok(r: Any) -> bool:
    return bool(isinstance(r, dict) and r.get("ok") and r.get("success", True))


def invoice_runs(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The invoice phases' raw results as {scale: {backend: result}}. Runs since `--invoice-scales` keep them in
    `data["invoices"]["scales"]`; older results have one scale, always `large`, in `data["backends"]`, and are
    read as that scale so that their JSON still renders."""
    scales = _get(data, "invoices", "scales")
    if scales is not None:
        return scales
    return {"large": data["backends"]} if data.get("backends") else {}


def invoice_columns(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The (scale, backend) pairs of the invoice tables, in run order: every scale's backends side by side."""
    return [(scale, backend) for scale, per in invoice_runs(data).items() for backend in per]


def column_name(scale: str, backend: str) -> str:
    return f"{scale} · {BACKEND_NAMES.get(backend, backend)}"


# ------------------------------------------------------------------------------------------------- derive

def derive(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"invoices": {}, "overhead": {}, "targets": []}
    for scale, per in invoice_runs(data).items():
        out["invoices"][scale] = {backend: _derive_backend(r) for backend, r in per.items()}
    for backend, r in (data.get("overhead") or {}).items():
        out["overhead"][backend] = _derive_overhead(r)
    if data.get("reference"):
        out["reference"] = {scale: {backend: derive_reference_backend(r) for backend, r in per.items()}
                            for scale, per in (data["reference"].get("scales") or {}).items()}
    if data.get("sales"):
        out["sales"] = {scale: {backend: derive_sales_backend(r) for backend, r in per.items()}
                        for scale, per in (data["sales"].get("scales") or {}).items()}
    out["targets"] = _targets(data, out)
    return out


def _derive_backend(r: dict[str, Any]) -> dict[str, Any]:
    floor, naive, lay, full, flat = (r.get(k) or {} for k in ("floor", "naive", "layered", "full", "full_flat"))
    d: dict[str, Any] = {}
    items = _get(full, "table_counts", "invoice_items") or lay.get("items") or floor.get("items")
    d["items"] = items
    d["documents"] = _get(full, "table_counts", "invoices") or lay.get("documents")
    d["xml_bytes"] = floor.get("xml_bytes") or lay.get("xml_bytes")
    # the floor
    fs = floor.get("split_s") or {}
    own = (fs.get("parse") or 0) + (fs.get("load") or 0)
    d["floor_items_per_s"] = _div(floor.get("items"), floor.get("wall_s")) if floor.get("ok") else None
    d["floor_own_items_per_s"] = _div(floor.get("items"), own) if floor.get("ok") else None
    d["floor_fetch_s"] = fs.get("fetch")
    # the naive path, extrapolated: the same fetch, then the sample's per-item cost for every item
    rate = naive.get("items_per_s") if naive.get("ok") else None
    if rate and items:
        d["naive_items_per_s"] = rate
        d["naive_full_s"] = (d["floor_fetch_s"] or 0) + items / rate
        d["naive_full_items_per_s"] = items / d["naive_full_s"]
        d["floor_vs_naive"] = _div(d["floor_items_per_s"], d["naive_full_items_per_s"])
    # the hand-written batched loader: the same windows and fetch, keyed typed tables, batched upserts
    hand = r.get("handwritten") or {}
    if hand.get("ok"):
        d["handwritten_s"] = hand["wall_s"]
        d["handwritten_items_per_s"] = _div(hand.get("items"), hand["wall_s"])
        d["handwritten_vs_floor"] = _div(d["handwritten_items_per_s"], d["floor_items_per_s"])
        d["handwritten_vs_naive"] = _div(d["handwritten_items_per_s"], d.get("naive_full_items_per_s"))
    # the Dagster path
    if _ok(full) and items:
        d["full_s"] = full["wall_s"]
        d["full_items_per_s"] = items / full["wall_s"]
        d["full_vs_floor"] = _div(d["full_items_per_s"], d["floor_items_per_s"])
        d["full_vs_naive"] = _div(d["full_items_per_s"], d.get("naive_full_items_per_s"))
        d["full_vs_handwritten"] = _div(d["full_items_per_s"], d.get("handwritten_items_per_s"))
        d["full_steps"] = _step_split(full)
    d["full_peak_rss_mb"] = full.get("peak_rss_mb")
    d["full_peak_tree_pss_mb"] = full.get("sampled_peak_tree_pss_mb")  # the run and its frame workers
    d["flat_peak_tree_pss_mb"] = flat.get("sampled_peak_tree_pss_mb") if flat else None
    d["full_rss_by_step"] = rss_by_step(full)
    d["full_running_step"] = None if _ok(full) else running_step(full)
    d["full_completed"] = _ok(full)
    d["flat_peak_rss_mb"] = flat.get("peak_rss_mb") if flat else None
    d["flat_completed"] = _ok(flat) if flat else None
    d["rss_growth"] = _div(d["full_peak_rss_mb"], d["flat_peak_rss_mb"])
    # the layer functions called directly
    if lay.get("ok"):
        d["layered_s"] = lay["wall_s"]
        d["layered_items_per_s"] = _div(lay.get("items"), lay["wall_s"])
        d["layered_vs_floor"] = _div(d["layered_items_per_s"], d["floor_items_per_s"])
        d["layered_vs_naive"] = _div(d["layered_items_per_s"], d.get("naive_full_items_per_s"))
        d["layered_vs_handwritten"] = _div(d["layered_items_per_s"], d.get("handwritten_items_per_s"))
        d["layered_peak_rss_mb"] = lay.get("peak_rss_mb")
    # incremental
    first = r.get("window_first") or {}
    for key in ("incremental_unchanged", "incremental_edited"):
        inc = r.get(key) or {}
        d[key] = {
            "ok": _ok(inc), "wall_s": inc.get("wall_s"), "data_rows": _get(inc, "rows_written", "data_rows"),
            "bookkeeping_rows": _get(inc, "rows_written", "bookkeeping_rows"),
            "requests": _get(inc, "iiko", "requests"), "peak_rss_mb": inc.get("peak_rss_mb"),
            "vs_first": _div(inc.get("wall_s"), first.get("wall_s")) if _ok(first) else None,
            "steps_s": inc.get("steps_s") or {}, "server_s": _get(inc, "iiko", "server_seconds"),
        }
    d["window_first_s"] = first.get("wall_s") if _ok(first) else None
    d["window_first_steps_s"] = first.get("steps_s") or {}
    return d


def derive_reference_backend(r: dict[str, Any]) -> dict[str, Any]:
    """Medians over the repeats of the floor, the first sync and the unchanged second sync of one scale and
    backend; throughput = the answer's products / the median wall time."""
    runs = {kind: [x for x in r.get(kind) or [] if _ok(x)] for kind in ("floor", "first", "second")}
    rows = next((x.get("rows") for kind in ("floor", "first") for x in runs[kind] if x.get("rows")), None)
    d: dict[str, Any] = {"products": rows}
    for kind, done in runs.items():
        walls = sorted(x["wall_s"] for x in done)
        splits = {k for x in done for k in (x.get("split_s") or {})}
        d[kind] = {
            "runs": len(done), "of": len(r.get(kind) or []),
            "wall_s": statistics.median(walls) if walls else None,
            "min_s": walls[0] if walls else None, "max_s": walls[-1] if walls else None,
            "rows_per_s": _div(rows, statistics.median(walls)) if walls else None,
            # the child's own high-water mark (ru_maxrss would include the parent's: see common.own_peak_rss_mb)
            "peak_rss_mb": max((x.get("own_peak_rss_mb") or x.get("peak_rss_mb") or 0 for x in done),
                               default=None) or None,
            "split_s": {k: statistics.median([(x.get("split_s") or {}).get(k, 0.0) for x in done]) for k in splits},
            "errors": [x.get("error") for x in r.get(kind) or [] if not _ok(x)][:3],
        }
    floor, first, second = d["floor"], d["first"], d["second"]
    d["first_vs_floor"] = _div(first["rows_per_s"], floor["rows_per_s"])
    d["second_vs_floor"] = _div(second["rows_per_s"], floor["rows_per_s"])
    d["second_vs_first"] = _div(second["wall_s"], first["wall_s"])
    last_first = runs["first"][-1] if runs["first"] else {}
    last_second = runs["second"][-1] if runs["second"] else {}
    d["answer_bytes"] = last_first.get("answer_bytes") or _get(runs, "floor", 0, "answer_bytes")
    d["stored"] = last_first.get("stored")
    d["first_result"] = last_first.get("result")
    d["second_result"] = last_second.get("result")
    d["links_resolved"], d["links_named"] = last_first.get("links_resolved"), last_first.get("links_named")
    written = [x.get("rows_written") or {} for x in runs["second"]]
    if written and all(written):
        entity = r.get("entity") or "products"
        d["second_entity_rows_written"] = max(sum((w.get("per_table") or {}).get(entity, {}).values())
                                              for w in written)
        d["second_data_rows_written"] = max(w.get("data_rows") or 0 for w in written)
        d["second_bookkeeping_rows_written"] = max(w.get("bookkeeping_rows") or 0 for w in written)
    d["floor_decode_alone_s"] = _median([x.get("decode_alone_s") for x in runs["floor"]])
    d["floor_nested_as_json_s"] = _median([x.get("nested_as_json_s") for x in runs["floor"]])
    d["profiled"] = [k for k in ("first", "second") if r.get(f"profile_{k}")]
    return d


def derive_sales_backend(r: dict[str, Any]) -> dict[str, Any]:
    """Medians over the repeats of the floor, the first sync and the unchanged re-run of one scale and backend;
    throughput = the OLAP rows in the answers / the median wall time."""
    runs = {kind: [x for x in r.get(kind) or [] if _ok(x)] for kind in ("floor", "first", "second")}
    rows = next((x.get("rows") for kind in ("floor", "first") for x in runs[kind] if x.get("rows")), None)
    d: dict[str, Any] = {"rows": rows, "days": r.get("days"), "date_from": r.get("date_from"),
                         "date_to": r.get("date_to")}
    for kind, done in runs.items():
        walls = sorted(x["wall_s"] for x in done)
        splits = {k for x in done for k in (x.get("split_s") or {})}
        d[kind] = {
            "runs": len(done), "of": len(r.get(kind) or []),
            "wall_s": statistics.median(walls) if walls else None,
            "min_s": walls[0] if walls else None, "max_s": walls[-1] if walls else None,
            "rows_per_s": _div(rows, statistics.median(walls)) if walls else None,
            "peak_rss_mb": max((x.get("own_peak_rss_mb") or x.get("peak_rss_mb") or 0 for x in done),
                               default=None) or None,
            "split_s": {k: statistics.median([(x.get("split_s") or {}).get(k, 0.0) for x in done]) for k in splits},
            # the emulator's own time answering the OLAP requests (generating the orders, grouping, rendering)
            "server_s": _median([_get(x, "iiko", "server_seconds_by_endpoint", OLAP_ENDPOINT) for x in done]),
            "olap_requests": _get(done, -1, "iiko", "by_endpoint", OLAP_ENDPOINT),
            "errors": [x.get("error") for x in r.get(kind) or [] if not _ok(x)][:3],
        }
    floor, first, second = d["floor"], d["first"], d["second"]
    d["first_vs_floor"] = _div(first["rows_per_s"], floor["rows_per_s"])
    d["second_vs_first"] = _div(second["wall_s"], first["wall_s"])
    # The same ratio with the iiko server's (the emulator's) time taken out of both walls: what the share would be
    # against a server that answered at once. The pipeline's prefetch overlaps part of the server's time with its
    # own work, so this slightly flatters the pipeline.
    for x in (floor, first):
        own = (x["wall_s"] - x["server_s"]) if x.get("wall_s") and x.get("server_s") is not None else None
        x["rows_per_s_without_server"] = _div(rows, own) if own and own > 0 else None
    d["first_vs_floor_without_server"] = _div(first["rows_per_s_without_server"], floor["rows_per_s_without_server"])
    last_floor = runs["floor"][-1] if runs["floor"] else {}
    last_first = runs["first"][-1] if runs["first"] else {}
    last_second = runs["second"][-1] if runs["second"] else {}
    d["windows"] = last_first.get("windows") or last_floor.get("windows")
    d["answer_bytes"] = last_first.get("answer_bytes") or last_floor.get("answer_bytes")
    d["floor_stored"] = last_floor.get("stored")
    d["floor_db_size_mb"] = last_floor.get("db_size_mb")
    d["stored"] = last_first.get("stored")
    d["first_result"] = last_first.get("result")
    d["first_windows_committed"] = last_first.get("windows_committed")
    d["first_work_dir_mb"] = last_first.get("work_dir_mb")
    d["first_db_size_mb"] = last_first.get("db_size_mb")
    d["links_resolved"], d["links_named"] = last_first.get("links_resolved"), last_first.get("links_named")
    d["second_result"] = last_second.get("result")
    d["second_windows_unchanged"] = last_second.get("windows_unchanged")
    d["second_windows"] = last_second.get("windows")
    written = [x.get("rows_written") or {} for x in runs["second"]]
    if written and all(written):
        entity = r.get("entity") or "sales_daily"
        d["second_entity_rows_written"] = max(sum((w.get("per_table") or {}).get(entity, {}).values())
                                              for w in written)
        d["second_data_rows_written"] = max(w.get("data_rows") or 0 for w in written)
        d["second_bookkeeping_rows_written"] = max(w.get("bookkeeping_rows") or 0 for w in written)
        d["second_rows_written_by_table"] = written[-1].get("per_table")
    d["profiled"] = _ok(r.get("profile_first"))
    return d


def _median(values: list[Any]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def rss_by_step(result: dict[str, Any]) -> dict[str, float]:
    """Peak sampled RSS (MB) while each step ran, from the parent's ~1 s samples and the run's step spans."""
    out: dict[str, float] = {}
    timeline = result.get("rss_timeline") or []
    for step, span in (result.get("steps_at") or {}).items():
        start, end = span[0], span[1] if len(span) > 1 else float("inf")
        if end - start < 1.0:
            continue  # shorter than the sampling interval: a sample would belong to a neighbour
        inside = [rss for at, rss in timeline if start <= at <= end]
        if inside:
            out[step] = max(inside)
    return out


def running_step(result: dict[str, Any]) -> str | None:
    """The step that had started but not finished (for a run the harness killed)."""
    open_steps = [k for k, v in (result.get("steps_at") or {}).items() if len(v) == 1]
    return open_steps[-1] if open_steps else None


def _step_split(full: dict[str, Any]) -> dict[str, float]:
    """Seconds per part of the Dagster run: server time from the emulator's log, the rest per step."""
    steps = full.get("steps_s") or {}
    split = {name: steps.get(name, 0.0) for name in ("raw_invoices", "invoices_frame", "invoices")}
    split["reference data (3 entities, all steps)"] = sum(v for k, v in steps.items() if k not in split)
    split["outside steps (run start, event log, instance)"] = max(0.0, full["wall_s"] - sum(steps.values()))
    split["of which iiko server time (emulator log)"] = _get(full, "iiko", "server_seconds") or 0.0
    return split


def _derive_overhead(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("direct", "dagster"):
        m = r.get(mode) or {}
        runs = m.get("runs_s") or []
        if not m.get("ok") or not runs:
            continue
        out[mode] = {
            # the first run in a fresh process: interpreter start + imports + instance + onboarding sync
            "cold_first_s": m["parent_wall_s"] - sum(runs[1:]),
            "first_run_s": runs[0],
            "warm_median_s": statistics.median(runs[1:]) if len(runs) > 1 else None,
            "import_s": m.get("import_s"), "peak_rss_mb": m.get("peak_rss_mb"),
            "failures": m.get("failures"),
        }
    if "direct" in out and "dagster" in out:
        out["overhead_cold_s"] = out["dagster"]["cold_first_s"] - out["direct"]["cold_first_s"]
        w1, w2 = out["dagster"]["warm_median_s"], out["direct"]["warm_median_s"]
        out["overhead_warm_s"] = w1 - w2 if w1 is not None and w2 is not None else None
    return out


def _targets(data: dict[str, Any], derived: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(name: str, scale: str, backend: str, value: Any, limit: float, better: str, fmt: str) -> None:
        if value is None:
            status, gap = "not measured", None
        elif better == "higher":
            status = "met" if value >= limit else "missed"
            gap = None if status == "met" else f"{value / limit:.0%} of the target" if limit else None
        else:
            status = "met" if value <= limit else "missed"
            gap = None if status == "met" else (f"{value / limit:.1f}x the limit" if limit else f"{value} > 0")
        rows.append({"target": name, "scale": scale, "backend": backend, "value": value, "limit": limit,
                     "better": better, "status": status, "gap": gap, "fmt": fmt})

    # The performance round's targets (issue 16): ratios to baselines measured in the same run.
    for scale, per in derived["invoices"].items():
        for backend, d in per.items():
            full_missing = not d.get("full_completed")
            floor_share = FLOOR_SHARE_TARGET.get(backend, FLOOR_SHARE_TARGET["postgresql"])
            add(f"full sync throughput >= {floor_share:.0%} of the floor's", scale, backend,
                d.get("full_vs_floor"), floor_share, "higher", "{:.0%}")
            if backend == "postgresql":
                add(f"full sync throughput >= {NAIVE_TARGET}x the naive path", scale, backend, d.get("full_vs_naive"),
                    NAIVE_TARGET, "higher", "{:.0f}x")
            add(f"full sync throughput >= {HANDWRITTEN_TARGET}x the hand-written loader's", scale, backend,
                d.get("full_vs_handwritten"), HANDWRITTEN_TARGET, "higher", "{:.2f}x")
            rss = d.get("full_peak_rss_mb")
            add(f"full sync peak RSS <= {RSS_TARGET_MB} MB" + (" (run killed / failed)" if full_missing else ""),
                scale, backend, rss, RSS_TARGET_MB, "lower", "{:.0f} MB")
            # the same limit for what the run holds with its frame workers (PSS: shared pages counted once)
            add(f"full sync peak PSS of the run with its frame workers <= {RSS_TARGET_MB} MB", scale, backend,
                d.get("full_peak_tree_pss_mb"), RSS_TARGET_MB, "lower", "{:.0f} MB")
            add(f"peak RSS {data.get('days')} d within 1.2x of {data.get('flat_days')} d", scale, backend,
                d.get("rss_growth"), 1.2, "lower", "{:.2f}x")
            inc = d.get("incremental_unchanged") or {}
            add("unchanged incremental run writes 0 rows", scale, backend, inc.get("data_rows"), 0, "lower", "{}")
            add(f"unchanged incremental run <= {UNCHANGED_TARGET:.0%} of the window's first sync", scale, backend,
                inc.get("vs_first"), UNCHANGED_TARGET, "lower", "{:.0%}")
            edited = d.get("incremental_edited") or {}
            add(f"incremental run after 1% edited <= {EDITED_TARGET:.0%} of the window's first sync", scale,
                backend, edited.get("vs_first"), EDITED_TARGET, "lower", "{:.0%}")
    for backend, o in derived["overhead"].items():
        add(f"Dagster per-run overhead (tiny account, fresh run process) <= {OVERHEAD_TARGET_S:.0f} s", "tiny",
            backend, o.get("overhead_cold_s"), OVERHEAD_TARGET_S, "lower", "{:.1f} s")
        add(f"Dagster per-run overhead (tiny account, warm process) <= {OVERHEAD_TARGET_S:.0f} s", "tiny", backend,
            o.get("overhead_warm_s"), OVERHEAD_TARGET_S, "lower", "{:.1f} s")
    return rows


# ------------------------------------------------------------------------------------------------- markdown

def _f(value: Any, fmt: str = "{:,.1f}") -> str:
    if value is None:
        return "–"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _rate(value: Any) -> str:
    return _f(value, "{:,.0f}") + "/s" if value is not None else "–"


def _x(value: Any, fmt: str = "{:.2f}x") -> str:
    return _f(value, fmt)


def markdown(data: dict[str, Any], json_name: str) -> str:
    m = data.get("machine", {})
    der = data.get("derived") or {}
    if "invoices" not in der:  # none stored, or derived by a report.py older than `--invoice-scales`
        der = derive(data)
    runs = invoice_runs(data)
    cols = invoice_columns(data)
    lines: list[str] = []
    w = lines.append
    if runs or data.get("overhead") or data.get("profiles"):
        scales = ", ".join(f"`{s}`" for s in runs or [_get(data, "profiles", "scale", default="large")])
        w(f"# Sync benchmark: {data.get('mode')} ({data.get('days')} days of invoices, "
          f"scale{'s' if len(runs) > 1 else ''} {scales})")
    else:
        titles = []
        if data.get("reference"):
            scales = ", ".join(f"`{s}`" for s in _get(data, "reference", "scales", default={}))
            titles.append(f"reference data ({_get(data, 'reference', 'entity', default='products')} at scales "
                          f"{scales})")
        if data.get("sales"):
            scales = ", ".join(f"`{s}`" for s in _get(data, "sales", "scales", default={}))
            spans = sorted({v.get("days") for per in (_get(data, "sales", "scales", default={}) or {}).values()
                            for v in per.values() if isinstance(v, dict) and v.get("days")}) \
                or [_get(data, "sales", "days")]
            titles.append(f"daily sales ({' / '.join(str(x) for x in spans)} days at scales {scales})")
        w(f"# Sync benchmark: {'; '.join(titles) or data.get('mode')}")
    w("")
    if data.get("interrupted"):
        w(f"**This run was interrupted ({data['interrupted']}): the figures below are partial.**")
        w("")
    w(f"Run {data.get('started_at', '')[:19]}Z → {str(data.get('finished_at', ''))[:19]}Z, emulator today "
      f"{data.get('today')}; raw data: [`{json_name}`]({json_name}). How to read it: [bench/README.md](../README.md).")
    w("")
    w(f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram_gb')} GB RAM, Linux {m.get('kernel')}, load "
      f"average {_loads(m.get('loadavg_start'))} at start, {_loads(m.get('loadavg_end'))} at the end (shared, noisy: "
      "compare the ratios, not the absolute seconds).  ")
    pg = m.get("postgresql") or {}
    w(f"Versions: Python {m.get('python')}, lxml {m.get('lxml')} (libxml2 {m.get('libxml2')}), SQLAlchemy "
      f"{m.get('sqlalchemy')}, psycopg2 {m.get('psycopg2')}, Dagster {m.get('dagster')}, pandas {m.get('pandas')}, "
      f"pyarrow {m.get('pyarrow')}, SQLite {m.get('sqlite')}, PostgreSQL {pg.get('version')} (shared_buffers "
      f"{pg.get('shared_buffers')}, synchronous_commit {pg.get('synchronous_commit')}, local TCP); code at "
      f"{m.get('git_commit')} with {m.get('git_uncommitted_files')} uncommitted files.")
    w("")
    if cols:
        for scale, per in runs.items():
            if not per:
                continue
            backend = next(iter(per))
            first = der["invoices"][scale][backend]
            w(f"Data at `{scale}`: {_f(first.get('documents'), '{:,}')} documents, "
              f"**{_f(first.get('items'), '{:,}')} line items**, {_f((first.get('xml_bytes') or 0) / 1e9, '{:.2f}')} "
              f"GB of XML over {_get(per, backend, 'floor', 'windows')} export windows of 7 days.  ")
        w("")
        lines += _targets_table(der, data)
        lines += _full_table(data, der, cols)
        lines += _incremental_table(data, der, cols)
        lines += _baseline_table(data, der, cols)
    if der.get("overhead"):
        lines += _overhead_table(der)
    if data.get("reference"):
        lines += _reference_section(data, der)
    if data.get("sales"):
        lines += _sales_section(data, der)
    lines += _sql_section(data, cols)
    if data.get("profiles"):
        lines += _profile_section(data["profiles"])
    lines += _code_versions(data)
    lines += _notes(data)
    return "\n".join(lines) + "\n"


def _loads(values: Any) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "?"


def _targets_table(der: dict[str, Any], data: dict[str, Any]) -> list[str]:
    out = ["## Targets", "", "| target | scale | backend | measured | status |", "|---|---|---|---|---|"]
    for t in der.get("targets", []):
        status = {"met": "met", "missed": f"**missed** ({t['gap']})", "not measured": "not measured"}[t["status"]]
        out.append(f"| {t['target']} | {t.get('scale', 'large')} | {BACKEND_NAMES.get(t['backend'], t['backend'])} "
                   f"| {_f(t['value'], t['fmt'])} | {status} |")
    return [*out, ""]


def _row(label: str, values: list[str]) -> str:
    return f"| {label} | " + " | ".join(values) + " |"


def _invoice_table_head(title: str, data: dict[str, Any], der: dict[str, Any], cols: list[tuple[str, str]]
                        ) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """An invoice table's heading and header row (a column per scale and backend), with the columns' derived
    figures and raw results, in the same order."""
    runs = invoice_runs(data)
    head = [title, "", "| figure | " + " | ".join(column_name(s, b) for s, b in cols) + " |",
            "|---|" + "---|" * len(cols)]
    return head, [der["invoices"][s][b] for s, b in cols], [runs[s][b] for s, b in cols]


def _full_table(data: dict[str, Any], der: dict[str, Any], cols: list[tuple[str, str]]) -> list[str]:
    out, d, r = _invoice_table_head(f"## 1. Full sync (onboarding, {data.get('days')} days)", data, der, cols)

    def full_status(x: dict[str, Any]) -> str:
        full = x.get("full") or {}
        if _ok(full):
            return "completed"
        step = running_step(full)
        where = f" during step `{step}`" if step else ""
        return (f"**did not complete**{where}: {full.get('error') or '; '.join(full.get('failures') or [])}")[:300]

    out.append(_row("Dagster run (`run_account_sync`, all 4 entities)", [full_status(x) for x in r]))
    out.append(_row("wall time", [_f(x.get("full_s"), "{:,.1f} s") for x in d]))
    out.append(_row("line items per second", [_rate(x.get("full_items_per_s")) for x in d]))
    out.append(_row("… as a share of the floor's throughput", [_f(x.get("full_vs_floor"), "{:.0%}") for x in d]))
    out.append(_row("… as a multiple of the naive path's", [_x(x.get("full_vs_naive"), "{:,.0f}x") for x in d]))
    out.append(_row("**… vs hand-written loader**", [_x(x.get("full_vs_handwritten")) for x in d]))
    out.append(_row("peak RSS of the run process", [_f(x.get("full_peak_rss_mb"), "{:,.0f} MB") for x in d]))
    out.append(_row("… peak RSS by step, MB (sampled each second)", [_top_steps(x.get("full_rss_by_step")) for x in d]))
    out.append(_row("peak PSS of the run and its frame workers (sampled)",
                    [f"{_f(x.get('full_peak_tree_pss_mb'), '{:,.0f} MB')} ({data.get('flat_days')} days: "
                     f"{_f(x.get('flat_peak_tree_pss_mb'), '{:,.0f} MB')})" for x in d]))
    out.append(_row(f"peak RSS with {data.get('flat_days')} days (ratio)",
                    [f"{_f(x.get('flat_peak_rss_mb'), '{:,.0f} MB')} ({_x(x.get('rss_growth'))})" for x in d]))
    out.append(_row("iiko requests (logins / logouts)", [
        f"{_get(x, 'full', 'iiko', 'requests', default='–')} ({_get(x, 'full', 'iiko', 'logins', default='–')} / "
        f"{_get(x, 'full', 'iiko', 'logouts', default='–')})" for x in r]))
    out.append(_row("time per step: `raw_invoices` (fetch + count + gzip to disk)",
                    [_f(_get(x, "full_steps", "raw_invoices"), "{:,.1f} s") for x in d]))
    out.append(_row("… of which iiko server time (emulator log: generation + render + send)",
                    [_f(_get(x, "full_steps", "of which iiko server time (emulator log)"), "{:,.1f} s") for x in d]))
    out.append(_row("`invoices_frame` (parse + adapt + Arrow + Parquet)",
                    [_f(_get(x, "full_steps", "invoices_frame"), "{:,.1f} s") for x in d]))
    out.append(_row("`invoices` (Parquet read + upsert per window + checks)",
                    [_f(_get(x, "full_steps", "invoices"), "{:,.1f} s") for x in d]))
    out.append(_row("reference data (restaurants, stores, suppliers)",
                    [_f(_get(x, "full_steps", "reference data (3 entities, all steps)"), "{:,.1f} s") for x in d]))
    out.append(_row("outside steps (run start/end, event log)",
                    [_f(_get(x, "full_steps", "outside steps (run start, event log, instance)"), "{:,.1f} s")
                     for x in d]))
    out.append(_row("rows written (database counters)", [
        _f(_get(x, "full", "rows_written", "data_rows"), "{:,}") for x in r]))
    out.append(_row("warehouse size after / raw + frames on disk", [
        f"{_f(_get(x, 'full', 'db_size_mb'), '{:,.0f} MB')} / {_f(_get(x, 'full', 'raw_store_mb'), '{:,.0f} MB')}"
        for x in r]))
    out.append(_row("**Layer functions called directly, window by window**", ["" for _ in r]))
    out.append(_row("wall time", [_f(x.get("layered_s"), "{:,.1f} s") for x in d]))
    out.append(_row("line items per second", [_rate(x.get("layered_items_per_s")) for x in d]))
    out.append(_row("… share of the floor / multiple of naive", [
        f"{_f(x.get('layered_vs_floor'), '{:.0%}')} / {_x(x.get('layered_vs_naive'), '{:,.0f}x')}" for x in d]))
    out.append(_row("**… vs hand-written loader**", [_x(x.get("layered_vs_handwritten")) for x in d]))
    out.append(_row("peak RSS", [_f(x.get("layered_peak_rss_mb"), "{:,.0f} MB") for x in d]))
    for part, label in (("fetch", "fetch (iiko server + HTTP + gunzip)"), ("parse", "parse (`iter_invoice_documents`)"),
                        ("adapt", "adapt (`IIKO_ADAPTER.invoices`: typing, hashes)"),
                        ("upsert", "upsert (`commit_window`: stage + merge + lines + reconcile)")):
        vals = []
        for x in r:
            split = _get(x, "layered", "split_s") or {}
            wall = _get(x, "layered", "wall_s")
            vals.append(f"{_f(split.get(part), '{:,.1f} s')} ({_f(_div(split.get(part), wall), '{:.0%}')})"
                        if split else "–")
        out.append(_row(label, vals))
    return [*out, ""]


def _top_steps(by_step: dict[str, float] | None, n: int = 4) -> str:
    ranked = sorted((by_step or {}).items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"`{k}` {v:,.0f}" for k, v in ranked) or "–"


def _incremental_table(data: dict[str, Any], der: dict[str, Any], cols: list[tuple[str, str]]) -> list[str]:
    out, d, r = _invoice_table_head(
        f"## 2. Incremental sync (hourly run: watermark - {data.get('lookback_days')} days .. today)", data, der, cols)
    out.append(_row("the same window synced the first time (baseline)", [_f(x.get("window_first_s"), "{:,.1f} s")
                                                                          for x in d]))
    out.append(_row("… steps: raw / frame / table (iiko server)", [
        _steps3(y.get("window_first_steps_s"), _get(x, "window_first", "iiko", "server_seconds"))
        for x, y in zip(r, d, strict=True)]))
    for key, label in (("incremental_unchanged", "nothing changed"), ("incremental_edited", "after 1% edited")):
        out.append(_row(f"**{label}**: wall time", [_f(_get(x, key, "wall_s"), "{:,.1f} s") for x in d]))
        out.append(_row("… vs the first time", [_f(_get(x, key, "vs_first"), "{:.0%}") for x in d]))
        out.append(_row("… steps: raw / frame / table (iiko server)", [_steps3(_get(x, key, "steps_s"),
                                                                              _get(x, key, "server_s")) for x in d]))
        out.append(_row("… data rows written (bookkeeping rows)", [
            f"{_f(_get(x, key, 'data_rows'), '{:,}')} ({_f(_get(x, key, 'bookkeeping_rows'), '{:,}')})" for x in d]))
        out.append(_row("… per table (ins/upd/del)",
                        [_per_table(_get(x, key, "rows_written", "per_table")) for x in r]))
        out.append(_row("… iiko requests", [_f(_get(x, key, "requests"), "{}") for x in d]))
        out.append(_row("… peak RSS", [_f(_get(x, key, "peak_rss_mb"), "{:,.0f} MB") for x in d]))
    out.append(_row("documents edited (of the window's) / with a changed line", [
        f"{_get(x, 'edits', 'edited', default='–')} of {_get(x, 'edits', 'window_documents', default='–')} / "
        f"{_get(x, 'edits', 'with_line_change', default='–')}" for x in r]))
    out.append(_row("hourly windows = windows onboarding committed (bounds-keyed skip can apply)", [
        "–" if not x.get("window_alignment") else
        ("yes" if _get(x, "window_alignment", "aligned") else "**no**: " + ", ".join(
            f"{a}..{b}" for (a, b), ok in zip(_get(x, "window_alignment", "hourly_windows", default=[]),
                                              _get(x, "window_alignment", "committed_by_onboarding", default=[]),
                                              strict=False) if not ok) + " are new windows")
        for x in r]))
    out.append(_row("rows counted by", [
        "pg_stat_user_tables deltas" if b == "postgresql" else "content diff (rowid + row hash)" for _, b in cols]))
    if any("incremental_base" in x for x in r):
        out.append(_row("incremental runs started from", [x.get("incremental_base", "the Dagster onboarding")
                                                          for x in r]))
    return [*out, ""]


def _steps3(steps: dict[str, float] | None, server: Any) -> str:
    if not steps:
        return "–"
    parts = [_f(steps.get(k), "{:.1f}") for k in ("raw_invoices", "invoices_frame", "invoices")]
    return " / ".join(parts) + f" s ({_f(server, '{:.1f}')} s)"


def _per_table(per: Any) -> str:
    if not per:
        return "–"
    return ", ".join(f"{t} {v.get('ins', 0)}/{v.get('upd', 0)}/{v.get('del', 0)}" for t, v in per.items())


def _baseline_table(data: dict[str, Any], der: dict[str, Any], cols: list[tuple[str, str]]) -> list[str]:
    out, d, r = _invoice_table_head("## 3. Baselines (same run, same data)", data, der, cols)
    out.append(_row("**floor**: fetch + lxml leaf tuples + COPY (SQLite: executemany) into an unindexed table",
                    ["" for _ in r]))
    out.append(_row("wall time / line items per second", [
        f"{_f(_get(x, 'floor', 'wall_s'), '{:,.1f} s')} / {_rate(y.get('floor_items_per_s'))}" for x, y in zip(r, d,
                                                                                                                 strict=True)]))
    for part in ("fetch", "parse", "load"):
        out.append(_row(f"… {part}", [_f(_get(x, "floor", "split_s", part), "{:,.1f} s") for x in r]))
    out.append(_row("… line items per second without the fetch", [_rate(x.get("floor_own_items_per_s")) for x in d]))
    out.append(_row("… the floor as a multiple of the naive path",
                    [_x(x.get("floor_vs_naive"), "{:,.0f}x") for x in d]))
    out.append(_row("… peak RSS", [_f(_get(x, "floor", "peak_rss_mb"), "{:,.0f} MB") for x in r]))
    out.append(_row("**hand-written loader**: fetch + lxml dict per document + `INSERT ... ON CONFLICT DO UPDATE` in "
                    "pages of 500 rows into keyed, typed tables, a commit per window", ["" for _ in r]))
    out.append(_row("wall time / line items per second", [
        f"{_f(_get(x, 'handwritten', 'wall_s'), '{:,.1f} s')} / {_rate(y.get('handwritten_items_per_s'))}"
        if _ok(x.get("handwritten")) else _failed(x.get("handwritten")) for x, y in zip(r, d, strict=True)]))
    for part in ("fetch", "parse", "load"):
        out.append(_row(f"… {part}", [_f(_get(x, "handwritten", "split_s", part), "{:,.1f} s") for x in r]))
    out.append(_row("… share of the floor's throughput / multiple of the naive path", [
        f"{_f(x.get('handwritten_vs_floor'), '{:.0%}')} / {_x(x.get('handwritten_vs_naive'), '{:,.0f}x')}"
        for x in d]))
    out.append(_row("… rows stored: invoices / lines; database size after", [
        f"{_f(_get(x, 'handwritten', 'stored', 'hw_invoices'), '{:,}')} / "
        f"{_f(_get(x, 'handwritten', 'stored', 'hw_invoice_lines'), '{:,}')}; "
        f"{_f(_get(x, 'handwritten', 'db_size_mb'), '{:,.0f} MB')}" for x in r]))
    out.append(_row("… peak RSS", [_f(_get(x, "handwritten", "peak_rss_mb"), "{:,.0f} MB") for x in r]))
    out.append(_row("**naive**: `xml_to_dict` + per-row SELECT, INSERT/UPDATE, COMMIT", ["" for _ in r]))
    out.append(_row("sample (line items / documents)", [
        f"{_f(_get(x, 'naive', 'sample_items'), '{:,}')} / {_f(_get(x, 'naive', 'sample_documents'), '{:,}')}"
        for x in r]))
    out.append(_row("line items per second (parse share + rows)", [_rate(x.get("naive_items_per_s")) for x in d]))
    out.append(_row("extrapolated full sync (same fetch + every item)", [
        f"{_f(x.get('naive_full_s'), '{:,.0f} s')} ({_f(_div(x.get('naive_full_s'), 3600), '{:.1f} h')})"
        for x in d]))
    return [*out, ""]


def _failed(result: Any) -> str:
    """A baseline's cell when its child did not run or failed."""
    if not result:
        return "not run"
    return f"**failed**: {str(result.get('error'))[:200]}"


def _overhead_table(der: dict[str, Any]) -> list[str]:
    ov = der["overhead"]
    backends = list(ov)
    out = ["## 4. Dagster overhead (`tiny` account: reference data + 30 days of invoices, then hourly runs)", "",
           "| figure | " + " | ".join(BACKEND_NAMES.get(b, b) for b in backends) + " |",
           "|---|" + "---|" * len(backends)]
    for mode, label in (("direct", "layer functions directly"), ("dagster", "`run_account_sync`")):
        out.append(_row(f"{label}: first sync in a fresh process (start + imports + onboarding)",
                        [_f(_get(ov[b], mode, "cold_first_s"), "{:.2f} s") for b in backends]))
        out.append(_row(f"{label}: later runs in the same process (median)",
                        [_f(_get(ov[b], mode, "warm_median_s"), "{:.2f} s") for b in backends]))
    out.append(_row("**overhead per run, fresh process**", [_f(ov[b].get("overhead_cold_s"), "{:.2f} s")
                                                            for b in backends]))
    out.append(_row("**overhead per run, warm process**", [_f(ov[b].get("overhead_warm_s"), "{:.2f} s")
                                                           for b in backends]))
    return [*out, ""]


def _reference_section(data: dict[str, Any], der: dict[str, Any]) -> list[str]:
    ref = data["reference"]
    out = ["## Reference data: products (floor, first sync, unchanged second sync)", ""]
    if ref.get("error"):
        return [*out, f"**The section failed in the harness:** {ref['error']}", ""]
    per = der.get("reference") or {}
    cols = [(scale, b) for scale, backends in per.items() for b in backends]
    out.append(f"{ref.get('entity')} synced after {' and '.join(ref.get('before') or [])} (untimed, they are what "
               f"it links to); every figure is the median of {ref.get('repeats')} children (each its own process), "
               "throughput = the answer's products / that wall time; fetch included everywhere.")
    out.append("")
    out.append("| figure | " + " | ".join(f"`{s}` {BACKEND_NAMES.get(b, b)}" for s, b in cols) + " |")
    out.append("|---|" + "---|" * len(cols))
    d = [per[s][b] for s, b in cols]
    r = [ref["scales"][s][b] for s, b in cols]

    def wall(x: dict[str, Any]) -> str:
        if not x.get("runs"):
            return "**failed**: " + "; ".join(str(e) for e in x.get("errors") or [])[:200]
        ok = "" if x["runs"] == x["of"] else f", {x['runs']} of {x['of']} ok"
        return f"{_f(x.get('wall_s'), '{:.3f} s')} ({_f(x.get('min_s'), '{:.3f}')}–{_f(x.get('max_s'), '{:.3f}')}){ok}"

    def split(x: dict[str, Any], parts: tuple[str, ...]) -> str:
        s = x.get("split_s") or {}
        return " / ".join(_f(s.get(k), "{:.3f}") for k in parts) + " s" if s else "–"

    out.append(_row("products in the answer (stored by the first sync) / answer size", [
        f"{_f(x.get('products'), '{:,}')} ({_f(x.get('stored'), '{:,}')}) / "
        f"{_f((x.get('answer_bytes') or 0) / 2**20, '{:.1f} MB')}" for x in d]))
    out.append(_row("**floor**: GET + `json.loads(parse_float=Decimal)` + scalar values as text + COPY / "
                    "executemany into a keyed table, one commit", ["" for _ in d]))
    out.append(_row("wall time, median (min–max)", [wall(x["floor"]) for x in d]))
    out.append(_row("**products per second**", [_rate(_get(x, "floor", "rows_per_s")) for x in d]))
    out.append(_row("… fetch (GET + checks + decode) / flatten / load", [
        split(x["floor"], ("fetch", "flatten", "load")) for x in d]))
    out.append(_row("… the decode alone, re-measured (inside fetch)", [
        _f(x.get("floor_decode_alone_s"), "{:.3f} s") for x in d]))
    out.append(_row("… nested values as JSON text too would add (not in the floor)", [
        _f(x.get("floor_nested_as_json_s"), "{:.3f} s") for x in d]))
    out.append(_row("… peak RSS", [_f(_get(x, "floor", "peak_rss_mb"), "{:,.0f} MB") for x in d]))
    out.append(_row("**pipeline, first sync** (empty table): `fetch_raw` → `frames` spooled → `write`",
                    ["" for _ in d]))
    out.append(_row("wall time, median (min–max)", [wall(x["first"]) for x in d]))
    out.append(_row("**products per second**", [_rate(_get(x, "first", "rows_per_s")) for x in d]))
    out.append(_row("**… share of the floor's throughput**", [_f(x.get("first_vs_floor"), "{:.0%}") for x in d]))
    out.append(_row("… fetch_raw / frames (parse + adapt + Parquet) / write (merge + links)", [
        split(x["first"], ("fetch_raw", "frames", "write")) for x in d]))
    out.append(_row("… created / errors; group and unit links resolved (of named)", [
        f"{_f(_get(x, 'first_result', 'created'), '{:,}')} / {_f(_get(x, 'first_result', 'errors'), '{:,}')}; "
        + ", ".join(f"{k} {_f(v, '{:,}')} ({_f(_get(x, 'links_named', k), '{:,}')})"
                    for k, v in (x.get("links_resolved") or {}).items()) for x in d]))
    out.append(_row("… peak RSS", [_f(_get(x, "first", "peak_rss_mb"), "{:,.0f} MB") for x in d]))
    out.append(_row("**pipeline, unchanged second sync** (same account, nothing changed)", ["" for _ in d]))
    out.append(_row("wall time, median (min–max)", [wall(x["second"]) for x in d]))
    out.append(_row("**products per second**", [_rate(_get(x, "second", "rows_per_s")) for x in d]))
    out.append(_row("… share of the floor's throughput", [_f(x.get("second_vs_floor"), "{:.0%}") for x in d]))
    out.append(_row("**… cost as a share of the first sync**", [_f(x.get("second_vs_first"), "{:.0%}") for x in d]))
    out.append(_row("… fetch_raw / frames / write", [split(x["second"], ("fetch_raw", "frames", "write"))
                                                     for x in d]))
    out.append(_row("… unchanged / updated (the sync's own count)", [
        f"{_f(_get(x, 'second_result', 'unchanged'), '{:,}')} / {_f(_get(x, 'second_result', 'updated'), '{:,}')}"
        for x in d]))
    out.append(_row("… rows written: products / all data tables (bookkeeping)", [
        f"{_f(x.get('second_entity_rows_written'), '{:,}')} / {_f(x.get('second_data_rows_written'), '{:,}')} "
        f"({_f(x.get('second_bookkeeping_rows_written'), '{:,}')})" for x in d]))
    out.append(_row("… peak RSS", [_f(_get(x, "second", "peak_rss_mb"), "{:,.0f} MB") for x in d]))
    out.append("")
    out.append(f"A sync below {REFERENCE_PROFILE_BELOW:.0%} of the floor's throughput gets its write step profiled "
               "(`--reference-profile auto`) in an extra child; the profiler's own overhead inflates those seconds.")
    out.append("")
    for (scale, backend), x in zip(cols, r, strict=True):
        for kind, label in (("first", "first sync"), ("second", "unchanged second sync")):
            prof = _get(x, f"profile_{kind}", "profile")
            if not prof:
                continue
            res = x[f"profile_{kind}"]
            out.append(f"Write step of the {label}, `{scale}` {BACKEND_NAMES.get(backend, backend)}: "
                       f"{_f(_get(res, 'split_s', 'write'), '{:.3f} s')} under the profiler (sync "
                       f"{_f(res.get('wall_s'), '{:.3f} s')}), {_f(prof.get('total_s'), '{:.3f} s')} profiled.")
            out.append("")
            out.append("| function | calls | own s | cumulative s |")
            out.append("|---|---|---|---|")
            for row in prof["by_tottime"][:10]:
                out.append(f"| `{row['function']}` | {row['calls']:,} | {row['tottime_s']:.3f} | "
                           f"{row['cumtime_s']:.3f} |")
            for row in (prof.get("by_cumtime_ours") or [])[:10]:
                out.append(f"| `{row['function']}` (ours, by cumulative) | {row['calls']:,} | "
                           f"{row['tottime_s']:.3f} | {row['cumtime_s']:.3f} |")
            out.append("")
            plain = [y for y in x.get(kind) or [] if _ok(y) and y.get("sql")]
            sql = plain[-1]["sql"] if plain else None
            if sql:
                out.append(f"SQL of the last unprofiled {label} (client side, SQLAlchemy events; the stage's COPY "
                           f"not included): {sql['statements']:,} statements, {sql['total_s']:.3f} s of "
                           f"{_f(plain[-1].get('wall_s'), '{:.3f}')} s.")
                out.append("")
                out.append("| seconds | calls | statement |")
                out.append("|---|---|---|")
                for row in sql["top"][:6]:
                    text = row["sql"].replace("|", "\\|")
                    out.append(f"| {row['seconds']:.3f} | {row['calls']:,} | `{text}` |")
                out.append("")
    return out


def _sales_section(data: dict[str, Any], der: dict[str, Any]) -> list[str]:
    sales = data["sales"]
    per = der.get("sales") or {}
    cols = [(scale, b) for scale, backends in per.items() for b in backends]
    spans = sorted({per[s][b].get("days") or sales.get("days") for s, b in cols} - {None}) or [sales.get("days")]
    days = " / ".join(str(x) for x in spans)
    out = [f"## Daily sales: {sales.get('entity')}, {days} days (floor, first sync, unchanged re-run)", ""]
    if sales.get("error"):
        out += [f"**The section failed in the harness:** {sales['error']}", ""]
    if not cols:
        return out
    if sales.get("merged_from"):
        out.append("Merged from runs one after the other, each with its own floor: "
                   + "; ".join(f"`{m['file']}` ({m['what']})" for m in sales["merged_from"]) + ".")
        out.append("")
    out.append(f"One OLAP v2 SALES detail request per 7-day window of business days ending {sales.get('date_to')}. "
               f"{sales.get('entity')} synced after {', '.join(sales.get('before') or [])} (untimed: "
               f"what sales link to); every figure is the median of {sales.get('repeats')} child(ren), each its own "
               "process; throughput = the OLAP rows in the answers / that wall time; fetch (and so the iiko server's "
               "time, here the emulator's) included everywhere.")
    out.append("")
    out.append("| figure | " + " | ".join(f"`{s}` {BACKEND_NAMES.get(b, b)}" for s, b in cols) + " |")
    out.append("|---|" + "---|" * len(cols))
    d = [per[s][b] for s, b in cols]
    r = [sales["scales"][s][b] for s, b in cols]

    def wall(x: dict[str, Any]) -> str:
        if not x.get("runs"):
            return "**failed**: " + "; ".join(str(e) for e in x.get("errors") or [])[:200]
        ok = "" if x["runs"] == x["of"] else f", {x['runs']} of {x['of']} ok"
        if x["runs"] == 1:
            return f"{_f(x.get('wall_s'), '{:,.1f} s')}{ok}"
        spread = f"{_f(x.get('min_s'), '{:,.1f}')}–{_f(x.get('max_s'), '{:,.1f}')}"
        return f"{_f(x.get('wall_s'), '{:,.1f} s')} ({spread}){ok}"

    def split(x: dict[str, Any], parts: tuple[str, ...]) -> str:
        s = x.get("split_s") or {}
        return " / ".join(_f(s.get(k), "{:,.1f}") for k in parts) + " s" if s else "–"

    def frames_split(x: dict[str, Any]) -> str:
        s = x.get("split_s") or {}
        if not s:
            return "–"
        rest = (s.get("frames") or 0) - (s.get("parse") or 0) - (s.get("adapt") or 0)
        return f"{_f(s.get('parse'), '{:,.1f}')} / {_f(s.get('adapt'), '{:,.1f}')} / {_f(rest, '{:,.1f}')} s"

    def server(x: dict[str, Any]) -> str:
        return (f"{_f(x.get('server_s'), '{:,.1f} s')} ({_f(_div(x.get('server_s'), x.get('wall_s')), '{:.0%}')} "
                f"of the wall), {_f(x.get('olap_requests'), '{}')} requests")

    out.append(_row("business days", [
        f"{x.get('days') or sales.get('days')} ({x.get('date_from') or sales.get('date_from')}"
        f" .. {x.get('date_to') or sales.get('date_to')})" for x in d]))
    out.append(_row("OLAP rows in the answers (floor table / `sales_daily` rows after the first sync) / answers, JSON",
                    [f"{_f(x.get('rows'), '{:,}')} ({_f(x.get('floor_stored'), '{:,}')} / "
                     f"{_f(x.get('stored'), '{:,}')}) / {_f((x.get('answer_bytes') or 0) / 2**20, '{:,.0f} MB')} "
                     f"in {_f(x.get('windows'), '{}')} windows" for x in d]))
    out.append(_row("**floor**: POST + `json.loads(parse_float=Decimal)` + values as text + COPY / executemany into "
                    "a table keyed by the grouping values, one commit per window", ["" for _ in d]))
    out.append(_row("wall time", [wall(x["floor"]) for x in d]))
    out.append(_row("**rows per second**", [_rate(_get(x, "floor", "rows_per_s")) for x in d]))
    out.append(_row("… fetch (POST + checks + decode) / flatten / load", [
        split(x["floor"], ("fetch", "flatten", "load")) for x in d]))
    out.append(_row("… of which iiko server time (emulator log)", [server(x["floor"]) for x in d]))
    out.append(_row("… table size after", [_f(x.get("floor_db_size_mb"), "{:,.0f} MB") for x in d]))
    out.append(_row("… peak RSS", [_f(_get(x, "floor", "peak_rss_mb"), "{:,.0f} MB") for x in d]))
    out.append(_row("**pipeline, first sync** (backfill into an empty table): `fetch_raw` → `frames` spooled → "
                    "`write`", ["" for _ in d]))
    out.append(_row("wall time", [wall(x["first"]) for x in d]))
    out.append(_row("**rows per second**", [_rate(_get(x, "first", "rows_per_s")) for x in d]))
    out.append(_row("**… share of the floor's throughput**", [_f(x.get("first_vs_floor"), "{:.0%}") for x in d]))
    out.append(_row("… the same share with the iiko server's time taken out of both walls (approx.)", [
        f"{_f(x.get('first_vs_floor_without_server'), '{:.0%}')} "
        f"({_rate(_get(x, 'first', 'rows_per_s_without_server'))} vs "
        f"{_rate(_get(x, 'floor', 'rows_per_s_without_server'))})" for x in d]))
    out.append(_row("… fetch_raw / frames / write", [split(x["first"], ("fetch_raw", "frames", "write")) for x in d]))
    out.append(_row("… frames: parse (decode) / adapt / the rest (Arrow, Parquet)", [frames_split(x["first"])
                                                                                     for x in d]))
    out.append(_row("… iiko server time (emulator log; overlaps the gzip through the prefetch)",
                    [server(x["first"]) for x in d]))
    out.append(_row("… created / errors; windows committed", [
        f"{_f(_get(x, 'first_result', 'created'), '{:,}')} / {_f(_get(x, 'first_result', 'errors'), '{:,}')}; "
        f"{_f(x.get('first_windows_committed'), '{}')}" for x in d]))
    out.append(_row("… restaurant and product links resolved (of named)", [
        ", ".join(f"{k} {_f(v, '{:,}')} ({_f(_get(x, 'links_named', k), '{:,}')})"
                  for k, v in (x.get("links_resolved") or {}).items()) or "–" for x in d]))
    out.append(_row("… raw answers + frames on disk / warehouse size after", [
        f"{_f(x.get('first_work_dir_mb'), '{:,.0f} MB')} / {_f(x.get('first_db_size_mb'), '{:,.0f} MB')}"
        for x in d]))
    out.append(_row("… peak RSS", [_f(_get(x, "first", "peak_rss_mb"), "{:,.0f} MB") for x in d]))
    out.append(_row("**pipeline, unchanged re-run** (same span, same account, nothing changed)", ["" for _ in d]))
    out.append(_row("wall time", [wall(x["second"]) for x in d]))
    out.append(_row("**… cost as a share of the first sync**", [_f(x.get("second_vs_first"), "{:.0%}") for x in d]))
    out.append(_row("… fetch_raw / frames / write", [split(x["second"], ("fetch_raw", "frames", "write"))
                                                     for x in d]))
    out.append(_row("… iiko server time (emulator log)", [server(x["second"]) for x in d]))
    out.append(_row("… windows skipped as unchanged (of)", [
        f"{_f(x.get('second_windows_unchanged'), '{}')} ({_f(x.get('second_windows'), '{}')})" for x in d]))
    out.append(_row("… **rows written**: sales_daily / all data tables (bookkeeping)", [
        f"{_f(x.get('second_entity_rows_written'), '{:,}')} / {_f(x.get('second_data_rows_written'), '{:,}')} "
        f"({_f(x.get('second_bookkeeping_rows_written'), '{:,}')})" for x in d]))
    out.append(_row("… per table (ins/upd/del)", [_per_table(x.get("second_rows_written_by_table")) for x in d]))
    out.append(_row("… peak RSS", [_f(_get(x, "second", "peak_rss_mb"), "{:,.0f} MB") for x in d]))
    out.append("")
    out.append(f"A first sync below {SALES_PROFILE_BELOW:.0%} of the floor's throughput gets its write and frame steps "
               "profiled (`--sales-profile auto`) in an extra child over the last "
               f"{sales.get('profile_days') or '(all)'} days of the span; the profiler's own overhead inflates those "
               "seconds.")
    out.append("")
    for (scale, backend), x in zip(cols, r, strict=True):
        res = x.get("profile_first") or {}
        name = f"`{scale}` {BACKEND_NAMES.get(backend, backend)}"
        if res and not _ok(res):
            out.append(f"The profiled child of {name} failed: {res.get('error')}")
            out.append("")
        for key, step in (("profile", "write"), ("profile_frames", "frames")):
            prof = res.get(key)
            if not prof:
                continue
            out.append(f"{step.capitalize()} step of the first sync, {name}, {res.get('days')} days "
                       f"({_f(res.get('rows'), '{:,}')} rows): {_f(_get(res, 'split_s', step), '{:,.1f} s')} under "
                       f"the profiler (sync {_f(res.get('wall_s'), '{:,.1f} s')}), "
                       f"{_f(prof.get('total_s'), '{:,.1f} s')} profiled.")
            out.append("")
            out.append("| function | calls | own s | cumulative s |")
            out.append("|---|---|---|---|")
            for row in prof["by_tottime"][:12]:
                out.append(f"| `{row['function']}` | {row['calls']:,} | {row['tottime_s']:.2f} | "
                           f"{row['cumtime_s']:.2f} |")
            for row in (prof.get("by_cumtime_ours") or [])[:12]:
                out.append(f"| `{row['function']}` (ours, by cumulative) | {row['calls']:,} | "
                           f"{row['tottime_s']:.2f} | {row['cumtime_s']:.2f} |")
            out.append("")
        plain = [y for y in x.get("first") or [] if _ok(y) and y.get("sql")]
        sql = plain[-1]["sql"] if plain else None
        if sql:
            out.append(f"SQL of the first sync, {name} (unprofiled; client side, SQLAlchemy events; the stage's COPY "
                       f"not included): {sql['statements']:,} statements, {sql['total_s']:,.1f} s of "
                       f"{_f(plain[-1].get('wall_s'), '{:,.1f}')} s.")
            out.append("")
            out.append("| seconds | calls | statement |")
            out.append("|---|---|---|")
            for row in sql["top"][:8]:
                text = row["sql"].replace("|", "\\|")
                out.append(f"| {row['seconds']:.2f} | {row['calls']:,} | `{text}` |")
            out.append("")
    return out


def _sql_section(data: dict[str, Any], cols: list[tuple[str, str]]) -> list[str]:
    """The heaviest SQL statements (by template) of the full sync and of the edited incremental run."""
    out: list[str] = []
    runs = invoice_runs(data)
    for scale, backend in cols:
        for key, label in (("full", "full sync"), ("incremental_unchanged", "incremental run, nothing changed"),
                           ("incremental_edited", "incremental run after 1% edited")):
            sql = _get(runs, scale, backend, key, "sql")
            if not sql:
                continue
            if not out:
                out += ["## SQL time by statement (client side, SQLAlchemy events; COPY not included)", ""]
            wall = _get(runs, scale, backend, key, "wall_s")
            out.append(f"{column_name(scale, backend)}, {label}: {sql['statements']:,} statements, "
                       f"{sql['total_s']:.1f} s of {_f(wall, '{:.1f}')} s wall.")
            out.append("")
            out.append("| seconds | calls | statement |")
            out.append("|---|---|---|")
            for row in sql["top"][:8]:
                text = row["sql"].replace("|", "\\|")
                out.append(f"| {row['seconds']:.2f} | {row['calls']:,} | `{text}` |")
            out.append("")
    return out


def _profile_section(profiles: dict[str, Any]) -> list[str]:
    out = [f"## 5. Where the time goes (cProfile, {profiles.get('days')} days at scale "
           f"`{profiles.get('scale', 'large')}` on PostgreSQL)", ""]
    for key, label in (("dagster", "Dagster path (`run_account_sync`)"), ("layered", "layer functions directly")):
        prof = _get(profiles, key, "profile")
        if not prof:
            continue
        out.append(f"{label}: {_f(_get(profiles, key, 'wall_s'), '{:.1f} s')} wall, "
                   f"{_f(prof.get('total_s'), '{:.1f} s')} profiled CPU in the main thread. Top functions by own time:")
        out.append("")
        out.append("| function | calls | own s | cumulative s |")
        out.append("|---|---|---|---|")
        for row in prof["by_tottime"][:15]:
            out.append(f"| `{row['function']}` | {row['calls']:,} | {row['tottime_s']:.2f} | {row['cumtime_s']:.2f} |")
        out.append("")
        out.append("Top functions by cumulative time (pipeline code only):")
        out.append("")
        out.append("| function | calls | own s | cumulative s |")
        out.append("|---|---|---|---|")
        for row in (prof.get("by_cumtime_ours") or [])[:15]:
            out.append(f"| `{row['function']}` | {row['calls']:,} | {row['tottime_s']:.2f} | {row['cumtime_s']:.2f} |")
        out.append("")
        callers = prof.get("callers_of_top") or {}
        if callers:
            out.append("Who calls the heaviest functions (cumulative seconds through each caller):")
            out.append("")
            for func, via in list(callers.items())[:8]:
                out.append(f"- `{func}` ← " + "; ".join(f"`{v}`" for v in via))
            out.append("")
    return out


def _code_versions(data: dict[str, Any]) -> list[str]:
    """Which commit each phase ran (the repository moves while a long run goes on)."""
    seen: dict[str, list[str]] = {}

    def visit(label: str, node: Any) -> None:
        if isinstance(node, dict):
            version = node.get("code_version")
            if version and "ok" in node:
                seen.setdefault(version, []).append(label)
            for key, value in node.items():
                if isinstance(value, dict) and key not in ("sql", "profile", "iiko", "results", "steps_s"):
                    visit(f"{label}/{key}" if label else key, value)
                elif isinstance(value, list):  # repeated measurements (reference data, sales)
                    for n, item in enumerate(value, start=1):
                        visit(f"{label}/{key}#{n}" if label else f"{key}#{n}", item)

    visit("", {k: data.get(k) for k in ("reference", "sales", "overhead", "invoices", "backends", "profiles")})
    if len(seen) <= 1:
        return []
    out = ["## Code versions", "", "Commits landed while this run was going; each phase ran the code at its start:", ""]
    out += [f"- `{version}`: {', '.join(labels)}" for version, labels in seen.items()]
    return [*out, ""]


def _notes(data: dict[str, Any]) -> list[str]:
    out = ["## Method notes", ""]
    if data.get("reference"):
        out += [
            "- Reference data: the floor and both syncs log in before the clock starts (the syncs through the "
            "untimed sync of what the entity links to); every timed part includes the iiko server's (the "
            "emulator's) time. The pipeline's sync is the core's steps without Dagster and without the checks "
            "(`fetch_raw` also asks `server_info` and stores the answer gzip'd; `frames` parses, adapts and spools "
            "Parquet; `write` reads it back, stages, merges, resolves and relinks soft links, soft-deletes what "
            "vanished and records the run). The floor carries each product's top-level scalar values only; the "
            "pipeline also stores the nested ones (containers, barcodes, the rest as JSON).",
            "- Reference data peak RSS is the child's own high-water mark (`VmHWM`): `ru_maxrss` in a child "
            "includes the parent's RSS at spawn (Linux keeps it over fork + exec), about 200 MB here.",
        ]
    if data.get("sales"):
        out += [
            "- Daily sales: the floor and both syncs log in before the clock starts; the same OLAP requests (one per "
            "7-day window, the same client settings) in all three. The emulator generates a day's orders on "
            "demand and keeps the last 16 days, so every pass over the year regenerates them: that is the iiko "
            "server's time, counted in the fetch of each measurement alike (shown apart, from the emulator's log). "
            "The pipeline's sync is the core's steps without Dagster and without the checks (`sales_match_totals` "
            "needs `sales_day_totals`, not synced here), with the backfill policy (`WindowPolicy(mode=\"backfill\")`: "
            "the watermark does not move). The re-run skips a window whose answer is byte-identical to the one "
            "committed (its fingerprint), so it still fetches, stores and fingerprints every answer.",
            "- Daily sales peak RSS is the child's own high-water mark (`VmHWM`), as for reference data. Rows written "
            "by the re-run: PostgreSQL `pg_stat_user_tables` deltas, SQLite a content diff of every table; the "
            "untimed reference syncs in the same child are included in \"all data tables\".",
        ]
    if not (invoice_runs(data) or data.get("overhead")):
        return out
    return [
        *out,
        "- Each figure comes from its own child process; peak RSS is that process's `ru_maxrss`. The emulator runs "
        "in a separate process and its time (generating, rendering, gzip) counts as fetch: it is the server.",
        "- Throughput = line items / wall time of the whole sync (fetch included) for the pipeline, the floor and "
        "the extrapolated naive path alike; the floor without fetch is shown for reference.",
        "- The hand-written loader is the batched loader a competent team writes in an afternoon: the floor's "
        "windows and fetch, lxml into one dict per document, `INSERT ... ON CONFLICT DO UPDATE` (psycopg2 "
        "`execute_values`, SQLite multi-row `VALUES`; 500 rows a statement) into its own keyed, typed tables "
        "(invoices by account + external id, lines by invoice id + line number, a foreign key between them), a "
        "commit per window; no raw copy, checks, reconciliation or reference data. \"vs hand-written loader\" = "
        "the sync's line items per second / the loader's.",
        "- The naive path writes a sample into the real schema (empty tables); its rate is the sample's items / "
        "(its row time + its share of the window's `xml_to_dict` time), and the full sync is extrapolated as the "
        "floor's fetch time + all items at that rate.",
        "- Rows written: PostgreSQL `pg_stat_user_tables` (n_tup_ins + n_tup_upd + n_tup_del deltas, public "
        "schema, read after the run's backends ended); SQLite: a full content diff (rowid + hash of every column) "
        "before and after. Bookkeeping rows (`sync_runs`, `sync_state`) are shown apart.",
        "- Dagster overhead = (Dagster sync) - (the same layer functions called directly) for the same tiny "
        "account; 'fresh process' includes interpreter start and imports, as a production run worker pays them.",
        "- Every Dagster run's instance has production's shape for its column: PostgreSQL storage (in the scratch "
        "database) for PostgreSQL, SQLite files for SQLite (results before 2026-12-02 used SQLite instances in "
        "both columns).",
    ]


def main(argv: list[str] | None = None) -> int:
    """Re-render the markdown of a results JSON (e.g. after changing this module): `report.py RESULTS.json`."""
    import json
    import sys
    from pathlib import Path

    args = argv if argv is not None else sys.argv[1:]
    for name in args:
        path = Path(name)
        data = json.loads(path.read_text())
        data["derived"] = derive(data)
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        target = path.with_suffix(".md")
        target.write_text(markdown(data, path.name if not path.name.startswith("latest") else
                                   str(data.get("source_json", path.name))))
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
