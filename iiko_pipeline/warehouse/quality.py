"""Data-quality queries behind the Dagster asset checks, per account. Each names the failing rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.entities import child_tables, parent_refs, soft_refs
from iiko_pipeline.warehouse.upsert import ParentRef, id_chunks

SAMPLE = 20
KNOWN_INVOICE_STATUSES = ("NEW", "PROCESSED", "DELETED")


@dataclass
class CheckOutcome:
    passed: bool
    failing: int = 0
    sample: list[Any] = field(default_factory=list)
    detail: str = ""

    def metadata(self) -> dict[str, Any]:
        return {"failing_count": self.failing, "failing_sample": [str(s) for s in self.sample[:SAMPLE]],
                "detail": self.detail}


def outcome(rows: list[Any], what: str) -> CheckOutcome:
    return CheckOutcome(passed=not rows, failing=len(rows), sample=rows[:SAMPLE],
                        detail=f"{len(rows)} {what}" if rows else f"no {what}")


def duplicate_external_ids(engine: Engine, table: sa.Table, account_id: uuid.UUID) -> CheckOutcome:
    stmt = (sa.select(table.c.external_system, table.c.external_id, sa.func.count())
            .where(table.c.account_id == account_id)
            .group_by(table.c.external_system, table.c.external_id).having(sa.func.count() > 1))
    with engine.connect() as conn:
        rows = [f"{r[0]}:{r[1]} x{r[2]}" for r in conn.execute(stmt)]
    return outcome(rows, "duplicated external ids")


def dangling_references(engine: Engine, table_name: str, account_id: uuid.UUID, *,
                        scan_children: bool = True) -> CheckOutcome:
    """Rows that name a parent by external id but are not linked to it (the parent is missing), and child
    rows (an invoice's lines) with the same problem or without their parent row.

    The orphan scan reads all the account's child rows (seconds at a year of invoices), so a run that wrote
    none passes `scan_children=False` and the detail says they were not re-read."""
    table = schema.metadata.tables[table_name]
    failing: list[str] = []
    children = child_tables(table)
    with engine.connect() as conn:
        for current in [table, *(child for child, _ in children)]:
            for ref in parent_refs(current):
                what = ref.label if current is table else f"line's {ref.label}"
                stmt = unlinked_parents(current, ref, account_id)
                failing += [f"{r[0]}: {what} {r[1]} missing" for r in conn.execute(stmt)]
        for child, key in children if scan_children else ():  # every child row belongs to a row of this account
            orphan = (sa.select(child.c.id).where(child.c.account_id == account_id)
                      .where(~sa.exists().where(table.c.id == child.c[key], table.c.account_id == account_id)))
            failing += [f"{child.name} id {r[0]}: its {table_name} row is missing" for r in conn.execute(orphan)]
    found = outcome(failing, "dangling references")
    if children and not scan_children:
        found.detail += " (child rows not re-read: this run wrote none)"
    return found


def unlinked_parents(table: sa.Table, ref: ParentRef, account_id: uuid.UUID) -> sa.Select:
    """The account's rows that name a parent by `ref` without being linked to it: the terms of the table's
    partial index for the link (`schema._unlinked_index`), so the query reads only such rows, not the account's."""
    ident = table.c.external_id if "external_id" in table.c else table.c.id
    return sa.select(ident, table.c[ref.external_column]).where(
        table.c.account_id == account_id, table.c[ref.fk_column].is_(None), table.c[ref.external_column].is_not(None))


def unlinked_rows(engine: Engine, tables: Iterable[sa.Table], account_id: uuid.UUID) -> CheckOutcome:
    """Rows stored without a soft link (`schema.SOFT_LINK`): they name a row we do not hold (a product an
    invoice line buys, a group a product sits in). They are kept and linked when that row syncs; until then a
    reader joining on the link misses them, so this warns with the missing ids and how many rows wait for each.
    The query matches the partial indexes on invoice lines, so it reads only the waiting rows."""
    failing: list[str] = []
    total = 0
    with engine.connect() as conn:
        for table in tables:
            for ref in soft_refs(table):
                ext = table.c[ref.external_column]
                stmt = (sa.select(ext, sa.func.count()).where(
                    table.c.account_id == account_id, table.c[ref.fk_column].is_(None), ext.is_not(None))
                    .group_by(ext).order_by(sa.func.count().desc(), ext))
                for missing, count in conn.execute(stmt):
                    total += count
                    failing.append(f"{table.name}: {count} rows name {ref.label} {missing}, not in {ref.parent.name}")
    found = outcome(failing, "missing rows that stored rows link to")
    if failing:
        found.detail = (f"{total} rows link to {len(failing)} rows that are not held (kept unlinked until those "
                        "sync)")
    return found


LOOKUP_CHUNK = 1000  # ids per key lookup of the checks


def count_rows(engine: Engine, table: sa.Table, account_id: uuid.UUID, external_ids: Iterable[str],
               external_system: str = "iiko") -> int:
    """How many of these documents are stored. The full unique key (with `external_system`) keeps each chunk an
    index lookup: without it the account's whole index range is scanned per chunk (quadratic over a backfill)."""
    total = 0
    with engine.connect() as conn:
        for chunk in id_chunks(external_ids, LOOKUP_CHUNK):
            total += conn.execute(sa.select(sa.func.count()).select_from(table).where(
                table.c.account_id == account_id, table.c.external_system == external_system,
                table.c.external_id.in_(chunk))).scalar_one()
    return total


def unknown_statuses(engine: Engine, account_id: uuid.UUID) -> CheckOutcome:
    inv = schema.invoices
    stmt = (sa.select(inv.c.external_id, inv.c.status).where(
        inv.c.account_id == account_id, sa.or_(inv.c.status.is_(None), inv.c.status.not_in(KNOWN_INVOICE_STATUSES))))
    with engine.connect() as conn:
        rows = [f"{r[0]}: {r[1]!r}" for r in conn.execute(stmt)]
    return outcome(rows, "invoices with an unknown status")


def line_totals(engine: Engine, account_id: uuid.UUID, external_ids: Iterable[str],
                external_system: str = "iiko") -> dict[str, tuple[int, Decimal]]:
    """Per invoice external id: (number of lines, sum of line sums) as stored.

    PostgreSQL aggregates exactly (NUMERIC); SQLite stores decimals as text, so its lines are summed here."""
    inv, items = schema.invoices, schema.invoice_items
    out: dict[str, tuple[int, Decimal]] = {}
    joined = inv.join(items, items.c.invoice_id == inv.c.id, isouter=True)
    aggregate = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        for chunk in id_chunks(external_ids, LOOKUP_CHUNK):
            where = (inv.c.account_id == account_id, inv.c.external_system == external_system,
                     inv.c.external_id.in_(chunk))
            if aggregate:
                stmt = (sa.select(inv.c.external_id, sa.func.count(items.c.id), sa.func.sum(items.c.sum))
                        .select_from(joined).where(*where).group_by(inv.c.external_id))
                for ext, count, total in conn.execute(stmt):
                    out[ext] = (count, Decimal(total if total is not None else 0))
                continue
            stmt = sa.select(inv.c.external_id, items.c.id, items.c.sum).select_from(joined).where(*where)
            for ext, line_id, line_sum in conn.execute(stmt):
                count, total = out.get(ext, (0, Decimal(0)))
                out[ext] = (count + 1, total + (line_sum or 0)) if line_id is not None else (count, total)
    return out


DEFAULT_MAX_REJECTED_SHARE = 0.5


def rejections_within_limit(result: Any, max_share: float = DEFAULT_MAX_REJECTED_SHARE) -> CheckOutcome:
    """Did the step store what iiko returned? Fails when every record, or more than `max_share` of them, was
    rejected: a run that stored nothing must not look green. The detail says why, in words a person can act on
    (a missing parent means the reference data must sync first)."""
    total, errors = result.total, result.errors
    if not errors:
        return CheckOutcome(True, detail=f"all {total} {result.entity} stored" if total else "nothing returned")
    share = errors / total if total else 1.0
    passed = errors < total and share <= max_share
    parts = []
    by_parent: dict[str, int] = {}
    for parent in result.reference_rejections.values():
        by_parent[parent] = by_parent.get(parent, 0) + 1
    if by_parent:
        named = " / ".join(sorted(by_parent))
        parts.append(f"{sum(by_parent.values())} reference {named} we do not hold: sync reference data first")
    refused = errors - sum(by_parent.values())
    if refused:
        parts.append(f"{refused} refused by the adapter (bad data from iiko; see error_details)")
    limit = "every record" if not passed and errors == total else f"more than {max_share:.0%}"
    verdict = "" if passed else f" ({limit} rejected: failing)"
    detail = f"{errors} of {total} {result.entity} not stored{verdict}: " + "; ".join(parts)
    sample = [f"{d.get('external_id')}: {d.get('reason')}" for d in result.error_details[:SAMPLE]]
    return CheckOutcome(passed, failing=errors, sample=sample, detail=detail)


def pending_documents(rows: list[dict[str, Any]], entity: str) -> CheckOutcome:
    """Documents iiko returned that are not stored yet (they are retried; see `pending`)."""
    sample = [f"{r['external_id']} ({r['date_from']}, {r['attempts']} attempts): {r['reason']}" for r in rows[:SAMPLE]]
    detail = (f"{len(rows)} {entity} returned by iiko but not stored yet; retried by later runs"
              if rows else f"no {entity} waiting to be stored")
    return CheckOutcome(not rows, failing=len(rows), sample=sample, detail=detail)


def _detail_sums(conn: sa.Connection, account_id: uuid.UUID, date_from: date,
                 date_to: date) -> dict[tuple[str, date], tuple[Decimal, Decimal]]:
    """Detailed sales summed per restaurant and business day: by PostgreSQL (exact NUMERIC sums; a year of rows
    is not shipped to Python), in Python on SQLite, whose decimal columns are text (see `ExactDecimal`)."""
    detail = schema.sales_daily
    key = (detail.c.restaurant_external_id, detail.c.business_date)
    inside = (detail.c.account_id == account_id, detail.c.business_date.between(date_from, date_to))
    if conn.dialect.name == "postgresql":
        stmt = sa.select(*key, sa.func.sum(detail.c.dish_sum), sa.func.sum(detail.c.revenue)).where(
            *inside).group_by(*key)
        return {(r, d): (a or Decimal(0), b or Decimal(0)) for r, d, a, b in conn.execute(stmt)}
    sums: dict[tuple[str, date], tuple[Decimal, Decimal]] = {}
    for restaurant, day, dish_sum, revenue in conn.execute(sa.select(*key, detail.c.dish_sum, detail.c.revenue)
                                                           .where(*inside)):
        a, b = sums.get((restaurant, day), (Decimal(0), Decimal(0)))
        sums[(restaurant, day)] = (a + (dish_sum or 0), b + (revenue or 0))
    return sums


def sales_against_totals(engine: Engine, account_id: uuid.UUID, date_from: date, date_to: date) -> CheckOutcome:
    """The detailed sales of each restaurant and business day add up to that day's totals (a second, coarser
    OLAP query), and a day with sales has orders: a wrong grouping or a lost row shows here. Days held on one side
    only are named in the detail but do not fail (the other entity may not have synced those days yet)."""
    totals = schema.sales_day_totals
    with engine.connect() as conn:
        sums = _detail_sums(conn, account_id, date_from, date_to)
        held = {(r, d): (orders, s or Decimal(0), ds or Decimal(0)) for r, d, orders, s, ds in conn.execute(
            sa.select(totals.c.restaurant_external_id, totals.c.business_date, totals.c.orders, totals.c.dish_sum,
                      totals.c.revenue).where(totals.c.account_id == account_id,
                                                   totals.c.business_date.between(date_from, date_to)))}
    failing = []
    for day_key in sorted(set(sums) & set(held)):
        (dish_sum, revenue), (orders, total_sum, total_revenue) = sums[day_key], held[day_key]
        if (dish_sum, revenue) != (total_sum, total_revenue):
            failing.append(f"{day_key[0]} {day_key[1]}: detail {dish_sum} before / {revenue} after discount, "
                           f"totals {total_sum} / {total_revenue}")
        elif total_sum and not orders:
            failing.append(f"{day_key[0]} {day_key[1]}: sales of {total_sum} without a single order")
    one_side = len(set(sums) ^ set(held))
    found = outcome(failing, "restaurant days whose detailed sales differ from their totals")
    if one_side:
        found.detail += f" ({one_side} restaurant days held on one side only, not compared)"
    return found
