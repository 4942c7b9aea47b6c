"""One measured job in its own process: `python bench/worker.py SPEC.json OUT.json`.

The parent (`run.py`) starts one child per measurement, so each peak RSS (`ru_maxrss`) belongs to the work
being measured and nothing else. Tasks:

- `floor`: the least work any loader must do: fetch the same windows, a plain hardened lxml parse, each line
  item's leaf texts in document order as a text tuple, COPY (PostgreSQL) / executemany (SQLite) into an
  unindexed table;
- `naive`: the brief's recursive `xml_to_dict` plus a per-row SELECT, then INSERT or UPDATE, a commit per row,
  on a sample of line items;
- `handwritten`: the batched loader a competent team writes in an afternoon: the floor's windows, lxml into a dict
  per document, `INSERT ... ON CONFLICT DO UPDATE` in pages of 500 rows into its own keyed, typed tables, one
  commit per window;
- `layered`: the pipeline's own layer functions called directly, streaming window by window (client -> parser
  -> adapter -> `commit_window`), timed per layer: this is where the fetch / parse / upsert split comes from;
- `dagster`: `run_account_sync` (the Dagster path users get), timed per step from the run's event log;
- `overhead`: a small account synced K times in one process, either through Dagster or directly;
- `reference_floor`: the least work any loader of a reference list must do: one GET of the products list through
  the client (which decodes it with `json.loads(parse_float=Decimal)`), each product's top-level scalar values as
  text, COPY (PostgreSQL) / executemany (SQLite) into a keyed table, one commit;
- `reference_sync`: the sync core's steps for one reference entity (products), after an untimed sync of what it
  links to (measure units, product groups): `fetch_raw` -> `frames` spooled through `framestore` -> `write`
  (merge, soft-link resolution, relink). Run twice on one warehouse: the first sync and an unchanged one;
- `sales_floor`: the least work any loader of daily sales must do: the same OLAP requests (one per 7-day window,
  through the client, which decodes each with `json.loads(parse_float=Decimal)`), each row's values as text,
  COPY (PostgreSQL) / executemany (SQLite) into a table keyed by the grouping values, one commit per window;
- `sales_sync`: the sync core's steps for `sales_daily` over a span with the backfill policy, after an untimed
  sync of what sales link to (restaurants, measure units, product groups, products). Run twice on one warehouse:
  the first sync and the unchanged re-run of the same span.

Every task may run under cProfile (`"profile": true`); the top functions are returned with the result.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import EMU_LOGIN, EMU_PASSWORD, Timer, cpu_seconds, own_peak_rss_mb, peak_rss_mb

PROCESS_STARTED = time.perf_counter()

FLOOR_COLUMNS = 16  # the document id + at most 15 leaves per <item>


def _client(spec: dict[str, Any]):
    from iiko_pipeline.iiko import ClientSettings, IikoClient

    settings = ClientSettings(read_timeout=600.0, invoice_window_days=spec.get("window_days", 7))
    return IikoClient(spec["emu_url"], EMU_LOGIN, EMU_PASSWORD, settings=settings)


def _dates(spec: dict[str, Any]) -> tuple[date, date]:
    return date.fromisoformat(spec["date_from"]), date.fromisoformat(spec["date_to"])


# ---------------------------------------------------------------------------------------------------- floor

def floor_rows(body: bytes) -> list[tuple]:
    """Each line item's leaf texts in document order, prefixed with its document's id, as a tuple."""
    from lxml import etree

    from iiko_pipeline.iiko.xml import HARDENED_OPTIONS

    rows: list[tuple] = []
    append = rows.append
    pad = (None,) * FLOOR_COLUMNS
    for _event, doc in etree.iterparse(io.BytesIO(body), events=("end",), tag="document", **HARDENED_OPTIONS):
        doc_id = doc.findtext("id")
        for item in doc.iterfind("items/item"):
            row = (doc_id, *[leaf.text for leaf in item])
            append(row + pad[len(row):])
        doc.clear(keep_tail=False)
        parent = doc.getparent()
        while doc.getprevious() is not None:
            del parent[0]
    return rows


def task_floor(spec: dict[str, Any]) -> dict[str, Any]:
    t = Timer()
    date_from, date_to = _dates(spec)
    cols = ", ".join(f"c{i} text" for i in range(FLOOR_COLUMNS))
    postgres = spec["db_url"].startswith("postgresql")
    if postgres:
        import psycopg2

        conn = psycopg2.connect(spec["pg_dsn"])
        cur = conn.cursor()
        cur.execute(f"DROP TABLE IF EXISTS floor_items; CREATE TABLE floor_items ({cols})")
        conn.commit()

        def load(rows: list[tuple]) -> None:
            buffer = io.StringIO()
            csv.writer(buffer).writerows(rows)  # None -> unquoted empty field -> NULL in CSV COPY
            buffer.seek(0)
            cur.copy_expert("COPY floor_items FROM STDIN WITH (FORMAT csv)", buffer)
            conn.commit()
    else:
        import sqlite3

        conn = sqlite3.connect(spec["db_url"].removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("DROP TABLE IF EXISTS floor_items")
        conn.execute(f"CREATE TABLE floor_items ({cols})")
        insert = f"INSERT INTO floor_items VALUES ({', '.join('?' * FLOOR_COLUMNS)})"  # noqa: S608 - constant

        def load(rows: list[tuple]) -> None:
            conn.execute("BEGIN")
            conn.executemany(insert, rows)
            conn.execute("COMMIT")

    counts = {"items": 0}

    def tally(rows: list[tuple]) -> None:
        counts["items"] += len(rows)

    started = time.perf_counter()
    seen = load_windows(spec, date_from, date_to, t, floor_rows, load, tally)
    wall = time.perf_counter() - started
    conn.close()
    return {"wall_s": wall, **counts, **seen, "split_s": t.totals}


def load_windows(spec: dict[str, Any], date_from: date, date_to: date, t: Timer, parse: Callable[[bytes], Any],
                 load: Callable[[Any], None], tally: Callable[[Any], None]) -> dict[str, int]:
    """Fetch, parse and load the invoice windows of `date_from..date_to` one at a time, timed as `fetch` /
    `parse` / `load` (the floor's and the hand-written loader's shared loop); `tally` counts what `parse` made of
    a window once it is loaded. A window's body and parse are dropped before the next is fetched: one window in
    memory. Returns the windows and their bytes."""
    seen = {"windows": 0, "xml_bytes": 0}
    with _client(spec) as client:
        stream = iter(client.incoming_invoice_windows(date_from, date_to))
        while True:
            with t("fetch"):
                window = next(stream, None)
            if window is None:
                return seen
            body = window.response.body
            seen["windows"] += 1
            seen["xml_bytes"] += len(body)
            with t("parse"):
                parsed = parse(body)
            del body, window
            with t("load"):
                load(parsed)
            tally(parsed)
            del parsed


# ---------------------------------------------------------------------------------------------------- naive

def task_naive(spec: dict[str, Any]) -> dict[str, Any]:
    """The brief's recursive xml_to_dict, then per row: SELECT, INSERT or UPDATE, COMMIT."""
    import uuid

    import sqlalchemy as sa
    from lxml import etree

    from iiko_pipeline.iiko.xml import hardened_parser, xml_to_dict
    from iiko_pipeline.warehouse import schema
    from iiko_pipeline.warehouse.engine import make_engine
    from iiko_pipeline.warehouse.migrate import migrate

    t = Timer()
    date_from, date_to = _dates(spec)
    with _client(spec) as client:  # the login stays out of the fetch time
        fetch_started = time.perf_counter()
        body = client.incoming_invoices_window(date_from, date_to).body
        t.add("fetch", time.perf_counter() - fetch_started)
    with t("parse"):
        data = xml_to_dict(etree.fromstring(body, hardened_parser()))
    docs = data.get("document") or []
    docs = docs if isinstance(docs, list) else [docs]
    window_items = sum(_naive_items_count(d) for d in docs)

    engine = make_engine(spec["db_url"])
    migrate(engine)
    account = uuid.UUID(spec["account_id"])
    inv, itm = schema.invoices, schema.invoice_items

    def dec(value: Any) -> Decimal | None:
        return Decimal(value) if isinstance(value, str) else None

    sample = spec.get("sample_items", 5000)
    done_items = done_docs = 0
    with engine.connect() as conn, t("rows"):
        for doc in docs:
            if done_items >= sample:
                break
            ext = doc["id"].lower()
            when = datetime.fromisoformat(doc["dateIncoming"][:19]) if doc.get("dateIncoming") else None
            values = {"account_id": account, "external_system": "iiko", "external_id": ext,
                      "document_number": doc.get("documentNumber"), "status": doc.get("status"),
                      "date_incoming": when, "document_date": when.date() if when else date_from,
                      "supplier_external_id": doc.get("supplier"), "comment": doc.get("comment"),
                      "default_store_external_id": doc.get("defaultStore")}
            found = conn.execute(sa.select(inv.c.id).where(
                inv.c.account_id == account, inv.c.external_system == "iiko", inv.c.external_id == ext)).first()
            if found is None:
                invoice_id = conn.execute(inv.insert().values(**values).returning(inv.c.id)).scalar_one()
            else:
                invoice_id = found[0]
                conn.execute(inv.update().where(inv.c.id == invoice_id).values(**values))
            conn.commit()
            done_docs += 1
            items = (doc.get("items") or {}).get("item") or []
            for item in items if isinstance(items, list) else [items]:
                num = int(item["num"])
                row = {"account_id": account, "invoice_id": invoice_id, "line_number": num,
                       "product_external_id": item.get("product"), "product_article": item.get("productArticle"),
                       "product_code": item.get("code"), "amount": dec(item.get("amount")),
                       "actual_amount": dec(item.get("actualAmount")),
                       "amount_unit_external_id": item.get("amountUnit"),
                       "price": dec(item.get("price")), "price_without_vat": dec(item.get("priceWithoutVat")),
                       "sum": dec(item.get("sum")), "vat_percent": dec(item.get("vatPercent")),
                       "vat_sum": dec(item.get("vatSum")), "discount_sum": dec(item.get("discountSum")),
                       "store_external_id": item.get("store"),
                       "is_additional_expense": item.get("isAdditionalExpense") == "true"}
                hit = conn.execute(sa.select(itm.c.id).where(itm.c.invoice_id == invoice_id,
                                                             itm.c.line_number == num)).first()
                if hit is None:
                    conn.execute(itm.insert().values(**row))
                else:
                    conn.execute(itm.update().where(itm.c.id == hit[0]).values(**row))
                conn.commit()
                done_items += 1
    engine.dispose()
    parse_share = t.totals["parse"] * done_items / max(window_items, 1)
    per_items_s = t.totals["rows"] + parse_share
    return {"sample_items": done_items, "sample_documents": done_docs, "window_items": window_items,
            "xml_bytes": len(body), "split_s": t.totals, "parse_share_s": parse_share,
            "items_per_s": done_items / per_items_s if per_items_s else None}


def _naive_items_count(doc: dict[str, Any]) -> int:
    items = (doc.get("items") or {}).get("item") or []
    return len(items) if isinstance(items, list) else 1


# ---------------------------------------------------------------------------------------------------- handwritten

#: Rows per INSERT statement (and per `execute_values` page) of the hand-written loader.
HANDWRITTEN_PAGE = 500
#: (XML tag, column) of a document's fields the hand-written loader keeps; `document_date` is derived.
HW_INVOICE_FIELDS = (("documentNumber", "document_number"), ("incomingDocumentNumber", "incoming_document_number"),
                     ("invoice", "invoice_number"), ("dateIncoming", "date_incoming"),
                     ("incomingDate", "incoming_date"), ("dueDate", "due_date"), ("status", "status"),
                     ("comment", "comment"), ("supplier", "supplier_id"), ("defaultStore", "default_store_id"),
                     ("conception", "conception_id"))
#: (XML tag, column) of a line item's fields; `isAdditionalExpense` is made a bool, the rest stay text.
HW_LINE_FIELDS = (("product", "product_id"), ("productArticle", "product_article"), ("code", "product_code"),
                  ("amount", "amount"), ("actualAmount", "actual_amount"), ("amountUnit", "amount_unit_id"),
                  ("price", "price"), ("priceWithoutVat", "price_without_vat"), ("sum", "sum"),
                  ("vatPercent", "vat_percent"), ("vatSum", "vat_sum"), ("discountSum", "discount_sum"),
                  ("store", "store_id"))


def handwritten_ddl(postgres: bool) -> list[str]:
    """The hand-written loader's own keyed, typed tables. SQLite has no uuid/timestamp types: text there."""
    uuid_t, ts, day, pk = ("uuid", "timestamp", "date", "bigserial PRIMARY KEY") if postgres else (
        "text", "text", "text", "integer PRIMARY KEY")
    return [
        f"""CREATE TABLE IF NOT EXISTS hw_invoices (
            id {pk}, account_id {uuid_t} NOT NULL, external_id {uuid_t} NOT NULL,
            document_number text, incoming_document_number text, invoice_number text, date_incoming {ts},
            incoming_date {day}, due_date {ts}, status text, comment text, supplier_id {uuid_t},
            default_store_id {uuid_t}, conception_id {uuid_t}, document_date {day} NOT NULL,
            UNIQUE (account_id, external_id))""",
        f"""CREATE TABLE IF NOT EXISTS hw_invoice_lines (
            invoice_id bigint NOT NULL REFERENCES hw_invoices (id) ON DELETE CASCADE, line_number integer NOT NULL,
            product_id {uuid_t}, product_article text, product_code text, amount numeric, actual_amount numeric,
            amount_unit_id {uuid_t}, price numeric, price_without_vat numeric, sum numeric, vat_percent numeric,
            vat_sum numeric, discount_sum numeric, store_id {uuid_t}, is_additional_expense boolean,
            PRIMARY KEY (invoice_id, line_number))""",
    ]


def _upsert_sql(table: str, columns: list[str], key: tuple[str, ...], returning: str = "") -> str:
    """`INSERT INTO table (...) VALUES %s ON CONFLICT (key) DO UPDATE SET <every other column>`."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES %s "  # noqa: S608 - our own constant names
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}{returning}")


HW_INVOICE_UPSERT = _upsert_sql("hw_invoices", ["account_id", "external_id", *(c for _, c in HW_INVOICE_FIELDS),
                                                "document_date"], ("account_id", "external_id"),
                                " RETURNING id, external_id")
HW_LINE_UPSERT = _upsert_sql("hw_invoice_lines", ["invoice_id", "line_number", *(c for _, c in HW_LINE_FIELDS),
                                                  "is_additional_expense"], ("invoice_id", "line_number"))


def handwritten_documents(body: bytes) -> list[dict[str, Any]]:
    """One dict per `<document>` (leaf tag -> text) with its line items as a list of dicts under "items"."""
    from lxml import etree

    from iiko_pipeline.iiko.xml import HARDENED_OPTIONS

    docs: list[dict[str, Any]] = []
    for _event, el in etree.iterparse(io.BytesIO(body), events=("end",), tag="document", **HARDENED_OPTIONS):
        doc: dict[str, Any] = {child.tag: child.text for child in el if child.tag != "items"}
        doc["items"] = [{leaf.tag: leaf.text for leaf in item} for item in el.iterfind("items/item")]
        docs.append(doc)
        el.clear(keep_tail=False)  # keep the parsed tree small, as the floor does
        while el.getprevious() is not None:
            del el.getparent()[0]
    return docs


def _sqlite_values(conn: Any, sql: str, rows: list[tuple], page_size: int) -> list[tuple]:
    """SQLite's stand-in for psycopg2's `execute_values`: one multi-row `VALUES` statement per page, its
    RETURNING rows collected (`executemany` would drop them, and the lines need the invoices' ids)."""
    out: list[tuple] = []
    for start in range(0, len(rows), page_size):
        page = rows[start:start + page_size]
        marks = ", ".join(["(" + ", ".join("?" * len(page[0])) + ")"] * len(page))
        out += conn.execute(sql.replace("%s", marks, 1), [v for row in page for v in row]).fetchall()
    return out


def task_handwritten(spec: dict[str, Any]) -> dict[str, Any]:
    """The loader a competent team writes in an afternoon, to measure the pipeline against something real rather
    than only the floor (no keys, no types) and the naive path (a round trip per row): the floor's windows, lxml
    into one dict per document, batched `INSERT ... ON CONFLICT DO UPDATE` (500 rows a statement) into keyed,
    typed tables, one commit per window. No raw copy, no checks, no reconciliation, no reference data.

    Values go to the database as the XML's text (PostgreSQL's numeric/uuid/date/timestamp columns parse and
    validate them), as a team using `execute_values` would pass them; only the line's bool and the document's
    accounting date (the date part of `dateIncoming`) are made in Python."""
    t = Timer()
    date_from, date_to = _dates(spec)
    account = spec["account_id"]
    postgres = spec["db_url"].startswith("postgresql")
    if postgres:
        import psycopg2
        from psycopg2.extras import execute_values

        conn = psycopg2.connect(spec["pg_dsn"])
        cur = conn.cursor()

        def upsert(sql: str, rows: list[tuple], fetch: bool = False) -> list[tuple]:
            return execute_values(cur, sql, rows, page_size=HANDWRITTEN_PAGE, fetch=fetch) or []
    else:
        import sqlite3

        conn = sqlite3.connect(spec["db_url"].removeprefix("sqlite:///"))  # implicit transaction per window
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        cur = conn.cursor()

        def upsert(sql: str, rows: list[tuple], fetch: bool = False) -> list[tuple]:
            return _sqlite_values(cur, sql, rows, HANDWRITTEN_PAGE)
    for ddl in handwritten_ddl(postgres):
        cur.execute(ddl)
    conn.commit()

    def load(docs: list[dict[str, Any]]) -> None:
        """One window: the documents' upsert returns their ids, the lines' upsert uses them, then one commit."""
        if docs:
            rows = [(account, d["id"].lower(), *[d.get(tag) for tag, _ in HW_INVOICE_FIELDS],
                     (d.get("dateIncoming") or d.get("incomingDate") or "")[:10]) for d in docs]
            ids = {str(ext): key for key, ext in upsert(HW_INVOICE_UPSERT, rows, fetch=True)}
            lines = [(ids[d["id"].lower()], int(item["num"]), *[item.get(tag) for tag, _ in HW_LINE_FIELDS],
                      item.get("isAdditionalExpense") == "true") for d in docs for item in d["items"]]
            if lines:
                upsert(HW_LINE_UPSERT, lines)
        conn.commit()

    counts = {"documents": 0, "items": 0}

    def tally(docs: list[dict[str, Any]]) -> None:
        counts["documents"] += len(docs)
        counts["items"] += sum(len(d["items"]) for d in docs)

    started = time.perf_counter()
    seen = load_windows(spec, date_from, date_to, t, handwritten_documents, load, tally)
    wall = time.perf_counter() - started
    stored = {}  # untimed: what the tables hold, so a run that lost rows shows it
    for table in ("hw_invoices", "hw_invoice_lines"):
        cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - constant names
        stored[table] = cur.fetchone()[0]
    conn.close()
    return {"wall_s": wall, **counts, **seen, "stored": stored,
            "page_size": HANDWRITTEN_PAGE, "split_s": t.totals}


# ---------------------------------------------------------------------------------------------------- layered

def _timed_parser(parse: Callable, t: Timer) -> Callable:
    """The spec's parser, with the time spent producing records counted as `parse`."""
    def parser(source):
        records = iter(parse(source))
        while True:
            with t("parse"):
                record = next(records, None)
            if record is None:
                return
            yield record
    return parser


def _timed_adapter(adapt: Callable, t: Timer) -> Callable:
    def adapter(records):
        with t("adapt"):
            return adapt(records)
    return adapter


def direct_sync(spec: dict[str, Any], engine, t: Timer, date_from: date | None, date_to: date,
                entities: tuple[str, ...] | None = None, history_days: int | None = None,
                lookback_days: int | None = None) -> dict[str, Any]:
    """The sync core's own steps, called directly without Dagster: fetch raw -> frames (spooled to Parquet, as
    the Dagster path does) -> write, entity by entity. Parser and adapter are timed inside the frame step;
    `upsert` is the write step minus the parse/adapt it pulls. A None `date_from` means incremental from the
    watermark (the hourly run)."""
    from iiko_pipeline.core import steps
    from iiko_pipeline.core.policy import WindowPolicy, WritePolicy
    from iiko_pipeline.core.specs import REGISTRY
    from iiko_pipeline.framestore import read_frames, write_frames
    from iiko_pipeline.iiko import ClientSettings, IikoClient

    account = spec["account_id"]
    work = Path(spec["work_dir"]) if spec.get("work_dir") else Path(tempfile.mkdtemp(prefix="bench-direct-"))
    counts = {"documents": 0, "items": 0, "windows": 0, "xml_bytes": 0, "errors": 0, "created": 0, "updated": 0,
              "unchanged": 0, "deleted": 0, "items_written": 0}
    window = {"mode": "incremental", "date_to": date_to.isoformat()}
    if date_from is not None:
        window["date_from"] = date_from.isoformat()
    if history_days is not None:
        window["history_days"] = history_days
    if lookback_days is not None:
        window["lookback_days"] = lookback_days
    with IikoClient(spec["emu_url"], EMU_LOGIN, EMU_PASSWORD, settings=ClientSettings()) as client:
        for entity in REGISTRY:
            if entities is not None and entity.name not in entities:
                continue
            prefix = "" if entity.windowed else "dims_"
            policy = WindowPolicy(**window) if entity.windowed else None
            with t(f"{prefix}fetch"):
                raw = steps.fetch_raw(entity, lambda: client, engine, account, work / "raw", policy)
            before = t.totals.get("parse", 0.0) + t.totals.get("adapt", 0.0)
            started = time.perf_counter()
            lazy = steps.frames(entity, raw, engine, account, parse=_timed_parser(entity.parse, t),
                                adapt=_timed_adapter(getattr(steps.ADAPTER, entity.adapt), t))
            folder = work / "frames" / entity.name / account
            write_frames(lazy, folder)
            written = steps.write(entity, engine, account_uuid(account), read_frames(folder), raw, WritePolicy(), None)
            inside = t.totals.get("parse", 0.0) + t.totals.get("adapt", 0.0) - before
            t.add(f"{prefix}upsert", time.perf_counter() - started - inside)
            if not entity.windowed:
                continue
            r = written.result
            counts["windows"] += len(raw.capture.parts)
            counts["xml_bytes"] += raw.capture.size
            counts["documents"] += lazy.row_count
            counts["items"] += sum(c["children"] for c in lazy.chunk_summaries)
            counts["errors"] += r.errors
            for key in ("created", "updated", "unchanged", "deleted", "items_written"):
                counts[key] += getattr(r, key)
    if not spec.get("work_dir"):
        shutil.rmtree(work, ignore_errors=True)
    return counts


def account_uuid(account: str):
    import uuid

    return uuid.UUID(account)


#: What the invoice measurements sync, on every path (the Dagster runs name the same entities).
INVOICE_LINE = ("restaurants", "stores", "suppliers", "invoices")


def task_layered(spec: dict[str, Any]) -> dict[str, Any]:
    from iiko_pipeline.warehouse.engine import make_engine
    from iiko_pipeline.warehouse.migrate import migrate

    engine = make_engine(spec["db_url"])
    migrate(engine)
    t = Timer()
    date_from, date_to = _dates(spec)
    started = time.perf_counter()
    counts = direct_sync(spec, engine, t, date_from, date_to, entities=INVOICE_LINE)  # not sales, shifts...
    wall = time.perf_counter() - started
    engine.dispose()
    return {"wall_s": wall, **counts, "split_s": t.totals}


# ---------------------------------------------------------------------------------------------------- reference data

#: Columns of the reference floor's table: the product id (the key) + at most this many other scalar values.
REFERENCE_FLOOR_VALUES = 24
_COPY_NULL = "\\N"


def reference_floor_rows(items, null: str | None, width: int = REFERENCE_FLOOR_VALUES) -> list[tuple]:
    """Each object's top-level scalar values as text, in the answer's order, keyed by its id: nested objects and
    lists (colours, containers, barcodes, modifiers) are left out. `null` is what a JSON null becomes."""
    rows: list[tuple] = []
    append = rows.append
    pad = (null,) * width
    for item in items:
        values = [null if v is None else str(v) for k, v in item.items()
                  if k != "id" and not isinstance(v, (dict, list))]
        if len(values) > width:
            raise ValueError(f"an object has {len(values)} scalar values; the floor table has {width} columns")
        append((item["id"], *values, *pad[len(values):]))
    return rows


def floor_table(spec: dict[str, Any], table: str, definition: str, width: int
                ) -> tuple[Any, str | None, Callable[[list[tuple]], None], Callable[[], int]]:
    """A plain floor table, created afresh, and how a floor loads it: COPY (csv) on PostgreSQL, one executemany
    per call on SQLite (WAL, as the warehouse's engine sets), one commit per call. Returns the connection (close it),
    what a JSON null is written as, `load(rows)` and `count()`."""
    if spec["db_url"].startswith("postgresql"):
        import psycopg2

        conn = psycopg2.connect(spec["pg_dsn"])
        cur = conn.cursor()
        cur.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({definition})")
        conn.commit()

        def load(rows: list[tuple]) -> None:
            buffer = io.StringIO()
            csv.writer(buffer).writerows(rows)
            buffer.seek(0)
            cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv, NULL '{_COPY_NULL}')", buffer)
            conn.commit()

        def count() -> int:
            cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - our own name
            return cur.fetchone()[0]

        return conn, _COPY_NULL, load, count
    import sqlite3

    lite = sqlite3.connect(spec["db_url"].removeprefix("sqlite:///"), isolation_level=None)
    lite.execute("PRAGMA journal_mode=WAL")  # what the warehouse's engine sets (warehouse.engine)
    lite.execute("PRAGMA synchronous=NORMAL")
    lite.execute(f"DROP TABLE IF EXISTS {table}")
    lite.execute(f"CREATE TABLE {table} ({definition})")
    insert = f"INSERT INTO {table} VALUES ({', '.join('?' * width)})"  # noqa: S608 - our own name

    def load_lite(rows: list[tuple]) -> None:
        lite.execute("BEGIN")
        lite.executemany(insert, rows)
        lite.execute("COMMIT")

    def count_lite() -> int:
        return lite.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - our own name

    return lite, None, load_lite, count_lite


def task_reference_floor(spec: dict[str, Any]) -> dict[str, Any]:
    t = Timer()
    entity = spec.get("entity", "products")
    cols = ", ".join(f"c{i} text" for i in range(1, REFERENCE_FLOOR_VALUES + 1))
    table = f"floor_{entity}"
    conn, null, load, count = floor_table(spec, table, f"id text PRIMARY KEY, {cols}", REFERENCE_FLOOR_VALUES + 1)
    with _client(spec) as client:
        client.login()  # the pipeline's timed sync runs on a client that is already logged in, too
        started = time.perf_counter()
        with t("fetch"):  # GET + the client's checks + json.loads(parse_float=Decimal)
            response = getattr(client, spec.get("fetch", entity))()
        with t("flatten"):
            rows = reference_floor_rows(response.items, null)
        with t("load"):
            load(rows)
        wall = time.perf_counter() - started
    stored = count()
    conn.close()
    # Not timed, for reading the figures: what the decode alone costs, and what carrying the nested values too
    # (as JSON text, as the pipeline stores them) would add to the floor.
    decode_started = time.perf_counter()
    json.loads(response.body, parse_float=Decimal)
    decode_s = time.perf_counter() - decode_started
    nested_started = time.perf_counter()
    for item in response.items:
        [json.dumps(v, ensure_ascii=False, default=str) for v in item.values() if isinstance(v, (dict, list))]
    nested_s = time.perf_counter() - nested_started
    return {"wall_s": wall, "rows": len(rows), "stored": stored, "answer_bytes": len(response.body),
            "split_s": t.totals, "decode_alone_s": decode_s, "nested_as_json_s": nested_s}


def _core_sync(entity_spec, client, engine, account: str, work: Path, run_id: str, t: Timer | None = None,
               profile: Any = None, policy: Any = None, frame_hooks: dict[str, Any] | None = None,
               profile_frames: Any = None) -> Any:
    """One entity through the core's steps, as `CoreSync.run` chains them (without the checks): fetch_raw ->
    frames spooled to Parquet and read back -> write. `t` times the three parts; `profile` (a cProfile.Profile)
    runs around the write step only, `profile_frames` around the frame step. `policy` is a dated entity's
    `WindowPolicy`; `frame_hooks` (`parse` / `adapt`) replace the spec's parser and adapter (timed wrappers)."""
    from contextlib import nullcontext

    from iiko_pipeline.core import steps
    from iiko_pipeline.core.policy import WritePolicy
    from iiko_pipeline.framestore import read_frames, write_frames

    timer = t or Timer()
    with timer("fetch_raw"):
        raw = steps.fetch_raw(entity_spec, lambda: client, engine, account, work / "raw",
                              policy if entity_spec.windowed else None)
    folder = work / "frames" / entity_spec.name / run_id
    with timer("frames"), (nullcontext() if profile_frames is None else profile_frames):
        # parse + adapt, spooled to Parquet (what the frame IO manager does)
        write_frames(steps.frames(entity_spec, raw, engine, account, **(frame_hooks or {})), folder)
    with timer("write"), (nullcontext() if profile is None else profile):
        frame = read_frames(folder)
        written = steps.write(entity_spec, engine, account_uuid(account), frame, raw, WritePolicy(), run_id)
    return raw, frame, written


def task_reference_sync(spec: dict[str, Any]) -> dict[str, Any]:
    """Untimed: migrate, then sync what the entity links to (`before`). Timed: the entity's sync. With
    `profile_write`, the write step runs under cProfile (a separate child: the profiler slows it down)."""
    import sqlalchemy as sa

    from iiko_pipeline.core.specs import spec as entity_spec
    from iiko_pipeline.iiko import ClientSettings, IikoClient
    from iiko_pipeline.warehouse import schema
    from iiko_pipeline.warehouse.engine import make_engine
    from iiko_pipeline.warehouse.migrate import migrate

    engine = make_engine(spec["db_url"])
    migrate(engine)
    account, label = spec["account_id"], spec.get("label", "sync")
    work = Path(tempfile.mkdtemp(prefix="bench-reference-"))
    entity = entity_spec(spec.get("entity", "products"))
    profiler = None
    if spec.get("profile_write"):
        import cProfile

        profiler = cProfile.Profile()
    t = Timer()
    with IikoClient(spec["emu_url"], EMU_LOGIN, EMU_PASSWORD, settings=ClientSettings()) as client:
        before = {}
        for name in spec.get("before", ()):  # what the entity links to, synced first (logs the client in)
            _raw, _frame, done = _core_sync(entity_spec(name), client, engine, account, work, f"{label}-{name}")
            before[name] = done.result.counts()
        _SQL_STATS.clear()  # only the timed sync's statements
        started = time.perf_counter()
        raw, frame, written = _core_sync(entity, client, engine, account, work, f"{label}-{entity.name}", t,
                                         profiler)
        wall = time.perf_counter() - started
    sql = sql_summary()  # the timed sync's statements only, not the counts below
    table = entity.table
    mine = table.c.account_id == account_uuid(account)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(table).where(mine)).scalar_one()
        links = {ref: conn.execute(sa.select(sa.func.count()).select_from(table).where(
            mine, table.c[f"{ref}_id"].is_not(None))).scalar_one()
            for ref in ("group", "main_unit") if f"{ref}_id" in table.c}
        named = {ref: conn.execute(sa.select(sa.func.count()).select_from(table).where(
            mine, table.c[f"{ref}_external_id"].is_not(None))).scalar_one()
            for ref in links}
        held = {name: conn.execute(sa.select(sa.func.count()).select_from(schema.metadata.tables[name])).scalar_one()
                for name in spec.get("before", ())}
    engine.dispose()
    shutil.rmtree(work, ignore_errors=True)
    r = written.result
    out = {"wall_s": wall, "label": label, "entity": entity.name, "rows": raw.capture.records,
           "frame_rows": frame.row_count, "stored": stored, "answer_bytes": raw.capture.size,
           "result": {**r.counts(), "warnings": len(r.warnings), "deletion_guard": r.deletion_guard},
           "links_resolved": links, "links_named": named, "before": before, "held_before": held,
           "split_s": t.totals}
    out["sql"] = sql
    _SQL_STATS.clear()
    if profiler is not None:
        out["profile"] = _profile_summary(profiler, top=30)
        out["profile"]["scope"] = "write step (read_frames + core.steps.write)"
    return out


# ---------------------------------------------------------------------------------------------------- daily sales

#: The entity of the sales line, and what it links to (synced first, untimed): restaurants (a hard link) and
#: products (a soft one), with what products link to.
SALES_ENTITY = "sales_daily"


def _sales_settings():
    from iiko_pipeline.iiko import ClientSettings

    return ClientSettings(read_timeout=600.0)  # the floor's and the pipeline's client alike (7-day OLAP windows)


def sales_floor_rows(items, null: str | None) -> list[tuple]:
    """Each OLAP detail row's values as text, in the request's field order: the five grouping values (the floor
    table's key), then the four sums. `null` is what a JSON null (or a field the row leaves out) becomes."""
    from operator import itemgetter

    from iiko_pipeline.iiko import olap

    fields = (*olap.SALES_DETAIL_GROUPS, *olap.SALES_DETAIL_AGGREGATES)
    values = itemgetter(*fields)
    rows: list[tuple] = []
    append = rows.append
    for item in items:
        try:
            row = values(item)
        except KeyError:  # a field left out of the row: as null
            row = tuple(item.get(f) for f in fields)
        append(tuple(null if v is None else str(v) for v in row))
    return rows


def task_sales_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """The least work any loader of a year of daily sales must do: the same OLAP requests (one per 7-day window,
    through the client: login, transport, its checks and `json.loads(parse_float=Decimal)`), each row's values
    as text, COPY (PostgreSQL) / executemany (SQLite) into a table keyed by the five grouping values, one commit
    per window."""
    from iiko_pipeline.iiko import IikoClient, olap

    t = Timer()
    date_from, date_to = _dates(spec)
    groups = [f"g{i}" for i in range(1, len(olap.SALES_DETAIL_GROUPS) + 1)]
    sums = [f"a{i}" for i in range(1, len(olap.SALES_DETAIL_AGGREGATES) + 1)]
    cols = ", ".join(f"{c} text" for c in (*groups, *sums))
    key = ", ".join(groups)
    table = "floor_sales"
    width = len(groups) + len(sums)
    conn, null, load, count = floor_table(spec, table, f"{cols}, PRIMARY KEY ({key})", width)

    rows_total = windows = answer_bytes = 0
    with IikoClient(spec["emu_url"], EMU_LOGIN, EMU_PASSWORD, settings=_sales_settings()) as client:
        client.login()  # the pipeline's timed sync runs on a client that is already logged in, too
        started = time.perf_counter()
        stream = iter(client.sales_windows(date_from, date_to))
        while True:
            with t("fetch"):  # POST + the client's checks + json.loads(parse_float=Decimal)
                window = next(stream, None)
            if window is None:
                break
            windows += 1
            answer_bytes += len(window.response.body)
            with t("flatten"):
                rows = sales_floor_rows(window.response.items, null)
            del window
            with t("load"):
                load(rows)
            rows_total += len(rows)
            del rows
        wall = time.perf_counter() - started
    stored = count()
    conn.close()
    return {"wall_s": wall, "rows": rows_total, "stored": stored, "windows": windows, "answer_bytes": answer_bytes,
            "split_s": t.totals}


def _window_parser(parse: Callable, t: Timer) -> Callable:
    """The spec's parser timed per call: `iter_olap_rows` decodes the whole answer when called, so this times the
    decode exactly, without a timer around each of millions of records."""
    def parser(source):
        with t("parse"):
            return iter(list(parse(source)))
    return parser


def task_sales_sync(spec: dict[str, Any]) -> dict[str, Any]:
    """Untimed: migrate, then sync what sales link to (`before`: restaurants, measure units, product groups,
    products). Timed: `sales_daily` through the core's steps over `date_from..date_to` with the backfill policy
    (`WindowPolicy(mode="backfill")`): `fetch_raw` (one OLAP request per 7-day window, gzip'd to disk) ->
    `frames` (parse, adapt, Parquet) -> `write` (one `commit_window` per window). Run again on the same
    warehouse and account (`label` "second"), it is the unchanged re-run of the same span. With `profile_write`,
    the write step runs under cProfile, and the frame step under a profiler of its own (an extra child)."""
    import sqlalchemy as sa

    from iiko_pipeline.core import steps
    from iiko_pipeline.core.policy import WindowPolicy
    from iiko_pipeline.core.specs import spec as entity_spec
    from iiko_pipeline.iiko import IikoClient
    from iiko_pipeline.warehouse.engine import make_engine
    from iiko_pipeline.warehouse.migrate import migrate

    engine = make_engine(spec["db_url"])
    migrate(engine)
    account, label = spec["account_id"], spec.get("label", "first")
    work = Path(tempfile.mkdtemp(prefix="bench-sales-", dir=spec.get("work_root")))
    entity = entity_spec(spec.get("entity", SALES_ENTITY))
    policy = WindowPolicy(mode="backfill", date_from=spec["date_from"], date_to=spec["date_to"])
    profiler = frames_profiler = None
    if spec.get("profile_write"):
        import cProfile

        profiler, frames_profiler = cProfile.Profile(), cProfile.Profile()
    t = Timer()
    hooks = {"parse": _window_parser(entity.parse, t), "adapt": _timed_adapter(getattr(steps.ADAPTER, entity.adapt), t)}
    try:
        with IikoClient(spec["emu_url"], EMU_LOGIN, EMU_PASSWORD, settings=_sales_settings()) as client:
            before = {}
            for name in spec.get("before", ()):  # what sales link to, synced first (logs the client in)
                _raw, _frame, done = _core_sync(entity_spec(name), client, engine, account, work, f"{label}-{name}")
                before[name] = done.result.counts()
            _SQL_STATS.clear()  # only the timed sync's statements
            started = time.perf_counter()
            raw, frame, written = _core_sync(entity, client, engine, account, work, f"{label}-{entity.name}", t,
                                             profiler, policy, hooks, frames_profiler)
            wall = time.perf_counter() - started
        work_mb = sum(f.stat().st_size for f in work.rglob("*") if f.is_file()) / 2**20
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sql = sql_summary()  # the timed sync's statements only, not the counts below
    table = entity.table
    mine = table.c.account_id == account_uuid(account)

    def counted(*where) -> int:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(mine, *where)).scalar_one()

    with engine.connect() as conn:
        stored = counted()
        links = {"restaurant": counted(table.c.restaurant_id.is_not(None)),
                 "product": counted(table.c.product_id.is_not(None))}
        named = {"restaurant": counted(table.c.restaurant_external_id.is_not(None)),
                 "product": counted(table.c.dish_external_id.is_not(None))}
    engine.dispose()
    r = written.result
    out = {"wall_s": wall, "label": label, "entity": entity.name, "rows": raw.capture.records,
           "frame_rows": frame.row_count, "windows": len(raw.capture.parts), "stored": stored,
           "answer_bytes": raw.capture.size, "work_dir_mb": round(work_mb, 1),
           "windows_committed": written.windows_committed,
           "windows_unchanged": sum(1 for a in frame.answers if a.get("unchanged")),
           "result": {**r.counts(), "warnings": len(r.warnings), "guards": written.guards[:5]},
           "links_resolved": links, "links_named": named, "before": before, "split_s": t.totals, "sql": sql}
    _SQL_STATS.clear()
    if profiler is not None:
        out["profile"] = _profile_summary(profiler, top=30)
        out["profile"]["scope"] = "write step (read_frames + core.steps.write)"
        out["profile_frames"] = _profile_summary(frames_profiler, top=30)
        out["profile_frames"]["scope"] = "frame step (core.steps.frames + framestore.write_frames)"
    return out


# ---------------------------------------------------------------------------------------------------- dagster

def _instance(spec: dict[str, Any]):
    """The Dagster instance in production's shape for the backend: on PostgreSQL (in the warehouse's scratch
    database, as `dagster.postgres.yaml` would put it) for the PostgreSQL column, SQLite files in the Dagster home
    (the embedded default) for the SQLite one. Its event writes are part of what a run costs."""
    import dagster as dg

    url = spec["db_url"]
    overrides = {"storage": {"postgres": {"postgres_url": url}}} if url.startswith("postgresql") else None
    return dg.instance_for_test(temp_dir=spec["dagster_home"], overrides=overrides)


def _dagster_env(spec: dict[str, Any]) -> None:
    os.environ["CREDENTIAL_ENCRYPTION_KEY"] = spec["encryption_key"]
    os.environ["DATABASE_URL"] = spec["db_url"]
    os.environ["DAGSTER_HOME"] = spec["dagster_home"]


def _connect(spec: dict[str, Any], instance) -> dict[str, Any]:
    from iiko_pipeline.services.connect import connect_account
    from iiko_pipeline.warehouse.crypto import KeyRing
    from iiko_pipeline.warehouse.engine import make_engine
    from iiko_pipeline.warehouse.migrate import migrate

    engine = make_engine(spec["db_url"])
    migrate(engine)
    result = connect_account(engine, KeyRing.from_env(), spec["account_id"], EMU_LOGIN, EMU_PASSWORD,
                             spec["emu_url"],
                             register_partition=lambda a: instance.add_dynamic_partitions("accounts", [a]))
    engine.dispose()
    if not result.is_connected:
        raise RuntimeError(f"connect failed: {result.connection_error}")
    return result.as_dict()


def _run_config(rc: dict[str, Any]) -> dict:
    from iiko_pipeline.services.run_config import invoice_run_config

    return invoice_run_config(rc.get("date_from"), rc.get("date_to"), mode=rc.get("mode"),
                              history_days=rc.get("history_days"), lookback_days=rc.get("lookback_days"))


def _step_times(instance, run_id: str) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Seconds per step (start -> success/failure) and each step's [start, end] epoch times, from the run's
    own event log (a step still running has no end)."""
    import dagster as dg

    types = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    spans: dict[str, list[float]] = {}
    for entry in instance.all_logs(run_id, of_type=types):
        if entry.step_key is None:
            continue
        if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            spans[entry.step_key] = [entry.timestamp]
        elif entry.step_key in spans:
            spans[entry.step_key] = [spans[entry.step_key][0], entry.timestamp]
    durations = {k: round(v[1] - v[0], 3) for k, v in spans.items() if len(v) == 2}
    return durations, spans


def _dagster_run(instance, spec: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    from iiko_pipeline.services.sync import run_account_sync

    started = time.perf_counter()
    outcome = run_account_sync(instance, spec["account_id"], run["entities"], run_config=_run_config(run["config"]),
                               log_level="WARNING")
    wall = time.perf_counter() - started
    durations, spans = _step_times(instance, outcome.run_id)
    return {"wall_s": wall, "success": outcome.success, "run_id": outcome.run_id,
            "results": outcome.results, "failures": outcome.failures[:20], "steps_s": durations, "steps_at": spans}


def task_dagster(spec: dict[str, Any]) -> dict[str, Any]:
    """Optional untimed pre-runs (e.g. reference data), then the measured `run_account_sync`."""

    _dagster_env(spec)
    with _instance(spec) as instance:
        connected = _connect(spec, instance) if spec.get("connect") else None
        pre = [_dagster_run(instance, spec, run) for run in spec.get("pre_runs", [])]
        main = _dagster_run(instance, spec, spec["run"])
    return {**main, "connected": connected, "pre_runs": pre}


def task_postmortem(spec: dict[str, Any]) -> dict[str, Any]:
    """The step spans of the newest run in a Dagster home (after the harness killed its process)."""

    os.environ["DAGSTER_HOME"] = spec["dagster_home"]
    with _instance(spec) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return {"run_id": None, "steps_s": {}, "steps_at": {}}
        durations, spans = _step_times(instance, runs[0].run_id)
        return {"run_id": runs[0].run_id, "steps_s": durations, "steps_at": spans}


# ---------------------------------------------------------------------------------------------------- overhead

def task_overhead_prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Untimed, in a child of its own before the measured one: the warehouse's schema and (for `mode` "dagster")
    the Dagster instance's with the account connected, as a production run worker finds them. Creating Dagster's
    PostgreSQL schema in a new database took seconds and was counted as per-run overhead, and so was the connect
    (a login to check the credentials, encryption, the partition) until 2026-12-03, which the direct mode never
    paid."""
    from iiko_pipeline.warehouse.engine import make_engine
    from iiko_pipeline.warehouse.migrate import migrate

    engine = make_engine(spec["db_url"])
    migrate(engine)
    engine.dispose()
    if spec["mode"] == "dagster":
        _dagster_env(spec)
        with _instance(spec) as instance:
            _connect(spec, instance)
    return {"prepared": spec["mode"]}


def task_overhead(spec: dict[str, Any]) -> dict[str, Any]:
    """K syncs of one small account in one process: the first onboards, the rest are hourly-style runs.

    `mode` "dagster": `run_account_sync` with every entity; "direct": the same steps through the layer functions.
    """
    from iiko_pipeline.warehouse.engine import make_engine
    from iiko_pipeline.warehouse.migrate import migrate

    imported = time.perf_counter()
    runs: list[float] = []
    date_to = date.fromisoformat(spec["date_to"])
    lookback, history = spec.get("lookback_days", 14), spec["history_days"]
    if spec["mode"] == "dagster":

        _dagster_env(spec)
        with _instance(spec) as instance:
            imported = time.perf_counter()
            failures: list[str] = []
            for _ in range(spec["runs"]):
                run = _dagster_run(instance, spec, {
                    "entities": list(INVOICE_LINE),
                    "config": {"mode": "incremental", "history_days": history, "lookback_days": lookback,
                               "date_to": spec["date_to"]}})
                runs.append(run["wall_s"])
                failures += run["failures"]
                if not run["success"]:
                    failures.append(f"run {run['run_id']} failed")
        return {"mode": "dagster", "import_s": imported - PROCESS_STARTED, "runs_s": runs, "failures": failures}
    engine = make_engine(spec["db_url"])
    migrate(engine)
    imported = time.perf_counter()
    for _ in range(spec["runs"]):
        started = time.perf_counter()
        direct_sync(spec, engine, Timer(), None, date_to, history_days=history, lookback_days=lookback)
        runs.append(time.perf_counter() - started)
    engine.dispose()
    return {"mode": "direct", "import_s": imported - PROCESS_STARTED, "runs_s": runs, "failures": []}


# ---------------------------------------------------------------------------------------------------- SQL timing

_SQL_STATS: dict[str, list[float]] = {}
_STAGE = re.compile(r"(stage_\w+?_|ix_stage_\w+?_)[0-9a-f]{8}")
_IN_LIST = re.compile(r"\((?:%\(\w+\)s|\?)(?:, (?:%\(\w+\)s|\?))+\)")


def _normalise_sql(statement: str) -> str:
    text = " ".join(statement.split())
    text = _IN_LIST.sub("(…)", _STAGE.sub(r"\1*", text))
    return text if len(text) <= 220 else text[:200] + " … " + text[-20:]


def install_sql_timer() -> None:
    """Time every statement SQLAlchemy sends (the warehouse's and Dagster's own storage alike), by template.
    COPY through the raw psycopg2 cursor bypasses this; it shows in the Python profile and the layer split."""
    import sqlalchemy as sa

    @sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    @sa.event.listens_for(sa.engine.Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        stack = conn.info.get("bench_started")
        if not stack:
            return
        entry = _SQL_STATS.setdefault(_normalise_sql(statement), [0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - stack.pop()

    @sa.event.listens_for(sa.engine.Engine, "handle_error")
    def _error(context):
        stack = context.connection.info.get("bench_started") if context.connection is not None else None
        if stack:
            stack.pop()


def sql_summary(top: int = 25) -> dict[str, Any]:
    ranked = sorted(_SQL_STATS.items(), key=lambda kv: -kv[1][1])
    return {"total_s": round(sum(v[1] for v in _SQL_STATS.values()), 3),
            "statements": sum(int(v[0]) for v in _SQL_STATS.values()),
            "top": [{"sql": k, "calls": int(v[0]), "seconds": round(v[1], 3)} for k, v in ranked[:top]]}


# ---------------------------------------------------------------------------------------------------- main

TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "floor": task_floor, "naive": task_naive, "handwritten": task_handwritten, "layered": task_layered,
    "dagster": task_dagster,
    "overhead": task_overhead, "overhead_prepare": task_overhead_prepare, "postmortem": task_postmortem,
    "reference_floor": task_reference_floor, "reference_sync": task_reference_sync,
    "sales_floor": task_sales_floor, "sales_sync": task_sales_sync,
}


def _profiled(fn: Callable[[], dict[str, Any]], top: int = 30) -> dict[str, Any]:
    import cProfile

    profiler = cProfile.Profile()
    result = profiler.runcall(fn)
    result["profile"] = _profile_summary(profiler, top)
    return result


def _profile_summary(profiler: Any, top: int = 30) -> dict[str, Any]:
    """The top functions of a finished cProfile.Profile, by own and cumulative time, and who calls them."""
    import pstats

    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _who) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{_short(filename)}:{line}({name})", "calls": ncalls,
                     "tottime_s": round(tottime, 3), "cumtime_s": round(cumtime, 3)})
    return {
        "total_s": round(total, 3),
        "by_tottime": sorted(rows, key=lambda r: -r["tottime_s"])[:top],
        "by_cumtime": sorted(rows, key=lambda r: -r["cumtime_s"])[:top],
        "by_cumtime_ours": sorted((r for r in rows if r["function"].startswith("iiko_pipeline/")),
                                  key=lambda r: -r["cumtime_s"])[:top],
        "callers_of_top": _callers(stats, rows, top=10),
    }


def _callers(stats, rows: list[dict[str, Any]], top: int) -> dict[str, list[str]]:
    """For the top functions by own time: their three heaviest callers (by cumulative time through them)."""
    wanted = {r["function"] for r in sorted(rows, key=lambda r: -r["tottime_s"])[:top]}
    out: dict[str, list[str]] = {}
    for (filename, line, name), (_cc, _n, _tt, _ct, callers) in stats.stats.items():
        key = f"{_short(filename)}:{line}({name})"
        if key not in wanted:
            continue
        ranked = sorted(callers.items(), key=lambda kv: -kv[1][3])[:3]
        out[key] = [f"{_short(f)}:{ln}({n}) {v[3]:.2f}s" for (f, ln, n), v in ranked]
    return out


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    cpu0 = cpu_seconds()
    try:
        task = TASKS[spec["task"]]
        if spec["task"] in ("layered", "dagster", "overhead", "reference_sync", "sales_sync"):
            install_sql_timer()
        result = _profiled(lambda: task(spec)) if spec.get("profile") else task(spec)
        result["ok"] = True
        if _SQL_STATS:
            result["sql"] = sql_summary()
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    own = own_peak_rss_mb()
    result["own_peak_rss_mb"] = round(own, 1) if own is not None else None
    result["cpu_s"] = round(cpu_seconds() - cpu0, 3)
    result["process_s"] = round(time.perf_counter() - PROCESS_STARTED, 3)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
