"""Bench: the invoice-line INSERT with the table's secondary indexes and foreign keys kept, against dropping them
for the load and building them after (issue 16, item 6).

    .venv/bin/python bench/indexes.py                      # 400k lines, PostgreSQL, 3 rounds
    .venv/bin/python bench/indexes.py --lines 1000000 --rounds 2

Each variant loads the same lines into a freshly migrated PostgreSQL database (the shipped schema: the unique
(invoice_id, line_number), indexes on account_id, store_id and product_id, two partial "unlinked" indexes, and
foreign keys to invoices, stores, products and measure units), in window-sized transactions of `--batch` lines
with COPY, as a bulk loader would:
- `kept`: everything in place while loading (what the pipeline does);
- `indexes_after`: the five secondary indexes dropped before, created after (the time includes creating them);
- `links_after`: only the foreign keys to stores, products and units dropped and re-added (the invoice key and
  the indexes kept);
- `indexes_and_fks_after`: the indexes and all four foreign keys built after (re-added and validated).
Reported: seconds per variant (best of the rounds) and the ratio to `kept`, measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import scratch_databases, write_results

FK_COLUMNS = ("invoice_id", "store_id", "product_id", "amount_unit_id")
COLUMNS = ("account_id", "invoice_id", "line_number", "product_id", "product_external_id", "amount",
           "amount_unit_id", "amount_unit_external_id", "price", "sum", "vat_percent", "vat_sum", "store_id",
           "store_external_id", "is_additional_expense")


def _parents(conn, account: uuid.UUID, invoices: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """Stores, products, units and invoices for the lines to point at (one account)."""
    import sqlalchemy as sa

    from iiko_pipeline.warehouse import schema

    def ids(table: sa.Table, rows: list[dict]) -> list[int]:
        return list(conn.execute(sa.insert(table).returning(table.c.id), rows).scalars())

    base = {"account_id": account, "external_system": "iiko"}
    stores = ids(schema.stores, [{**base, "external_id": str(uuid.uuid4()), "name": f"s{i}"} for i in range(20)])
    units = ids(schema.measure_units, [{**base, "external_id": str(uuid.uuid4()), "name": f"u{i}"} for i in range(8)])
    products = ids(schema.products, [{**base, "external_id": str(uuid.uuid4()), "name": f"p{i}"} for i in range(3000)])
    start = date(2025, 1, 1)
    docs = ids(schema.invoices, [{**base, "external_id": str(uuid.uuid4()), "document_date": start + timedelta(i % 365)}
                                 for i in range(invoices)])
    return stores, units, products, docs


def _batches(account: uuid.UUID, parents, lines: int, batch: int, seed: int = 1):
    stores, units, products, docs = parents
    rng = random.Random(seed)
    per_doc = max(1, lines // len(docs))
    rows = []
    for n in range(lines):
        doc, line = docs[n // per_doc % len(docs)], n % per_doc + 1
        rows.append("\t".join(map(str, (
            account, doc, line, rng.choice(products), uuid.uuid4(), f"{rng.random() * 50:.3f}", rng.choice(units),
            uuid.uuid4(), f"{rng.random() * 900:.2f}", f"{rng.random() * 9000:.2f}", "20", f"{rng.random() * 900:.2f}",
            rng.choice(stores), uuid.uuid4(), "false"))))
        if len(rows) == batch:
            yield "\n".join(rows) + "\n"
            rows = []
    if rows:
        yield "\n".join(rows) + "\n"


def _secondary_indexes(cursor) -> list[tuple[str, str]]:
    cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'invoice_items' AND indexname NOT IN "
                   "(SELECT conname FROM pg_constraint WHERE conrelid = 'invoice_items'::regclass)")
    return cursor.fetchall()


def _foreign_keys(cursor) -> list[tuple[str, str]]:
    cursor.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE conrelid = 'invoice_items'::regclass AND contype = 'f'")
    return cursor.fetchall()


def run_variant(variant: str, lines: int, batch: int) -> dict:
    from iiko_pipeline.warehouse.migrate import migrated_engine

    with scratch_databases("indexes", "lines") as (url,):
        engine = migrated_engine(url)
        account = uuid.uuid4()
        with engine.begin() as conn:
            parents = _parents(conn, account, invoices=max(1, lines // 25))
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            indexes = _secondary_indexes(cursor)
            fks = _foreign_keys(cursor) if variant == "indexes_and_fks_after" else []
            if variant == "links_after":  # only the links to reference rows; the line -> invoice key stays
                fks = [fk for fk in _foreign_keys(cursor) if "(invoice_id)" not in fk[1]]
            started = time.perf_counter()
            if variant == "links_after":
                indexes = []
            if variant != "kept":
                for name, _ in indexes:
                    cursor.execute(f'DROP INDEX "{name}"')
                for name, _ in fks:
                    cursor.execute(f'ALTER TABLE invoice_items DROP CONSTRAINT "{name}"')
                raw.commit()
            for chunk in _batches(account, parents, lines, batch):
                cursor.copy_expert(f"COPY invoice_items ({', '.join(COLUMNS)}) FROM STDIN", io.StringIO(chunk))
                raw.commit()  # one transaction per window, as the pipeline commits
            loaded = time.perf_counter() - started
            for _, definition in indexes if variant != "kept" else []:
                cursor.execute(definition)
            for name, definition in fks:
                cursor.execute(f'ALTER TABLE invoice_items ADD CONSTRAINT "{name}" {definition}')
            raw.commit()
            total = time.perf_counter() - started
            cursor.execute("SELECT count(*) FROM invoice_items")
            assert cursor.fetchone()[0] == lines
        finally:
            raw.close()
            engine.dispose()
        return {"variant": variant, "load_s": loaded, "total_s": total, "indexes": len(indexes), "fks": len(fks)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=400_000)
    p.add_argument("--batch", type=int, default=20_000, help="lines per transaction (about one 7-day window)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    variants = ("kept", "indexes_after", "links_after", "indexes_and_fks_after")
    runs = [run_variant(v, args.lines, args.batch) for _ in range(args.rounds) for v in variants]  # interleaved
    best = {v: min((r for r in runs if r["variant"] == v), key=lambda r: r["total_s"]) for v in variants}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = ["# Invoice-line INSERT: indexes and foreign keys kept or built after (`bench/indexes.py`)", "",
             f"{stamp}, {os.cpu_count()} cores, PostgreSQL, {args.lines} lines in transactions of {args.batch}, "
             f"COPY; best of {args.rounds} interleaved rounds.", "",
             "| variant | load (s) | total with building after (s) | total / kept |", "|---|---|---|---|"]
    for v in variants:
        r = best[v]
        lines.append(f"| {v} | {r['load_s']:.1f} | {r['total_s']:.1f} | {r['total_s'] / best['kept']['total_s']:.2f} |")
    write_results("indexes", stamp, lines, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
