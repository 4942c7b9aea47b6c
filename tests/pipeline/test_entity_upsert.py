"""The set-based upsert engine on real SQLite and PostgreSQL: exact counts, no-op re-syncs, rejections."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa

from iiko_pipeline.adapters import IIKO_ADAPTER
from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.engine import make_engine
from iiko_pipeline.warehouse.entities import upsert_dimension, upsert_invoices
from iiko_pipeline.warehouse.migrate import migrate

ACCOUNT = uuid.UUID("11111111-2222-4333-8444-555555555555")
R1, R2 = "6f1c2b1e-0000-4000-8000-000000000101", "6f1c2b1e-0000-4000-8000-000000000102"
S1, S2 = "1239d270-0000-4000-8000-00000000a001", "1239d270-0000-4000-8000-00000000a002"
SUP = "3f08e41c-0000-4000-8000-00000000c001"


def _engine(url: str):
    engine = make_engine(url)
    migrate(engine)
    return engine


def _departments():
    return [
        {"id": R1.upper(), "type": "DEPARTMENT", "name": "Ресторан на Тверской", "code": "001"},
        {"id": R2, "type": "DEPARTMENT", "name": "Ресторан «Арбат»", "code": None},
        {"id": "6f1c2b1e-0000-4000-8000-000000000001", "type": "JURPERSON", "name": "ООО Ромашка"},
    ]


def _invoice(doc_id: str, lines: list[tuple[int, str, str]], status: str = "PROCESSED", store: str = S1):
    return {"id": doc_id, "documentNumber": "1568", "dateIncoming": "2024-03-01T10:15:00+03:00",
            "incomingDate": "2024-03-01", "status": status, "supplier": SUP, "defaultStore": store,
            "items": [{"num": str(n), "amount": amount, "price": "50.700000000", "sum": total, "store": store,
                       "product": "c1ebbf72-0000-4000-8000-00000000f001"} for n, amount, total in lines]}


def _seed_dimensions(engine):
    batch = IIKO_ADAPTER.restaurants(_departments())
    first = upsert_dimension(engine, "restaurants", ACCOUNT, batch.rows, batch.errors)
    stores = IIKO_ADAPTER.stores([{"id": S1, "parentId": R1, "name": "Основной склад", "type": "STORE"},
                                  {"id": S2, "parentId": R2, "name": "Бар", "code": None}])
    upsert_dimension(engine, "stores", ACCOUNT, stores.rows, stores.errors)
    suppliers = IIKO_ADAPTER.suppliers([{"id": SUP, "name": 'ООО "Овощебаза №1"', "deleted": "false"}])
    upsert_dimension(engine, "suppliers", ACCOUNT, suppliers.rows, suppliers.errors)
    return first


def test_first_sync_creates_and_resync_changes_nothing(db_url):
    engine = _engine(db_url)
    first = _seed_dimensions(engine)
    assert (first.total, first.created, first.updated, first.unchanged) == (2, 2, 0, 0)
    with engine.connect() as conn:
        ids = sorted(conn.execute(sa.select(schema.restaurants.c.external_id)).scalars())
        synced_before = conn.execute(sa.select(sa.func.max(schema.restaurants.c.synced_at))).scalar_one()
    assert ids == [R1, R2]  # GUIDs normalised to lower case
    again = IIKO_ADAPTER.restaurants(_departments())
    second = upsert_dimension(engine, "restaurants", ACCOUNT, again.rows, again.errors)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 2)
    with engine.connect() as conn:  # an unchanged re-sync writes no rows, not even synced_at
        assert conn.execute(sa.select(sa.func.max(schema.restaurants.c.synced_at))).scalar_one() == synced_before
    edited = _departments()
    edited[1]["name"] = "Ресторан «Арбат» (новый)"
    batch = IIKO_ADAPTER.restaurants(edited)
    third = upsert_dimension(engine, "restaurants", ACCOUNT, batch.rows, batch.errors)
    assert (third.created, third.updated, third.unchanged) == (0, 1, 1)


def test_dangling_store_reference_becomes_error_detail(db_url):
    engine = _engine(db_url)
    _seed_dimensions(engine)
    ghost = "6f1c2b1e-0000-4000-8000-0000000009ff"
    batch = IIKO_ADAPTER.stores([{"id": "1239d270-0000-4000-8000-00000000a0ff", "parentId": ghost, "name": "X"},
                                 {"id": S1, "parentId": R1, "name": "Основной склад"}])
    result = upsert_dimension(engine, "stores", ACCOUNT, batch.rows, batch.errors)
    assert result.errors == 1 and ghost in result.error_details[0]["reason"]
    assert result.unchanged == 1


def test_invoices_exact_decimals_and_line_replacement(db_url):
    engine = _engine(db_url)
    _seed_dimensions(engine)
    doc = "575a43c7-0000-4000-8000-00000000d001"
    big = "123456789012345678.123456789"
    batch = IIKO_ADAPTER.invoices([_invoice(doc, [(1, "24.000000000", "1216.800000000"), (2, "1.5", big)])])
    first = upsert_invoices(engine, ACCOUNT, batch.rows, batch.children, batch.errors)
    assert (first.created, first.items_written) == (1, 2)
    with engine.connect() as conn:
        sums = conn.execute(sa.select(schema.invoice_items.c.sum).order_by(schema.invoice_items.c.line_number)
                            ).scalars().all()
        row = conn.execute(sa.select(schema.invoices)).mappings().one()
    assert sums == [Decimal("1216.8"), Decimal(big)]
    assert row["date_incoming"] == datetime(2024, 3, 1, 10, 15) and row["date_incoming_offset"] == "+03:00"
    assert row["document_date"] == date(2024, 3, 1) and row["supplier_id"] is not None
    same = IIKO_ADAPTER.invoices([_invoice(doc, [(1, "24.000000000", "1216.800000000"), (2, "1.5", big)])])
    second = upsert_invoices(engine, ACCOUNT, same.rows, same.children, same.errors)
    assert (second.created, second.updated, second.unchanged, second.items_written) == (0, 0, 1, 0)
    changed = IIKO_ADAPTER.invoices([_invoice(doc, [(1, "25.000000000", "1267.500000000")], status="DELETED")])
    third = upsert_invoices(engine, ACCOUNT, changed.rows, changed.children, changed.errors)
    assert (third.updated, third.items_written) == (1, 1)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.invoice_items)).scalar_one() == 1
        assert conn.execute(sa.select(schema.invoices.c.status)).scalar_one() == "DELETED"


def test_bad_records_are_reported_and_the_rest_syncs(db_url):
    engine = _engine(db_url)
    _seed_dimensions(engine)
    good = _invoice("575a43c7-0000-4000-8000-00000000d002", [(1, "1", "10")])
    bad_number = _invoice("575a43c7-0000-4000-8000-00000000d003", [(1, "abc", "10")])
    no_id = _invoice("", [(1, "1", "10")])
    unknown_store = _invoice("575a43c7-0000-4000-8000-00000000d004", [(1, "1", "10")],
                             store="1239d270-0000-4000-8000-00000000afff")
    batch = IIKO_ADAPTER.invoices([good, bad_number, no_id, unknown_store])
    result = upsert_invoices(engine, ACCOUNT, batch.rows, batch.children, batch.errors)
    assert (result.total, result.created, result.errors) == (4, 1, 3)
    reasons = " | ".join(d["reason"] for d in result.error_details)
    assert "'abc' is not a number" in reasons and "id is missing" in reasons and "does not exist" in reasons


def test_vanished_dimension_rows_are_soft_deleted_and_revived(db_url):
    engine = _engine(db_url)
    _seed_dimensions(engine)
    only_first = IIKO_ADAPTER.restaurants(_departments()[:1])
    # one of two restaurants closing is half the chain: above the default guard, so the operator allows it
    gone = upsert_dimension(engine, "restaurants", ACCOUNT, only_first.rows, only_first.errors, max_vanished_share=1.0)
    assert (gone.deleted, gone.unchanged) == (1, 1)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(schema.restaurants.c.external_id, schema.restaurants.c.deleted_at)).all())
    assert rows[R1] is None and rows[R2] is not None  # kept, marked, never hard-deleted
    empty = upsert_dimension(engine, "restaurants", ACCOUNT, [], [], max_vanished_share=1.0)
    assert empty.deleted == 0  # an empty answer is not evidence that everything closed
    assert empty.deletion_guard == "restaurants: iiko returned no restaurants while we hold 1; nothing deleted"
    back = IIKO_ADAPTER.restaurants(_departments())
    revived = upsert_dimension(engine, "restaurants", ACCOUNT, back.rows, back.errors)
    assert (revived.updated, revived.deleted) == (1, 0)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(schema.restaurants.c.deleted_at.is_not(None))
                            ).scalar_one() == 0


def _suppliers(n: int, *, bad: set[int] = frozenset()) -> list[dict]:
    """n suppliers; those in `bad` carry a flag the adapter refuses (they exist at iiko, we cannot store them)."""
    return [{"id": f"3f08e41c-0000-4000-8000-{i:012d}", "name": f"Поставщик {i}",
             "deleted": "maybe" if i in bad else "false"} for i in range(n)]


def _live_suppliers(engine) -> int:
    sup = schema.suppliers
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(sup.c.account_id == ACCOUNT,
                                                              sup.c.deleted_at.is_(None))).scalar_one()


def test_reference_deletes_are_guarded_like_invoices(db_url):
    """One bad answer must not wipe a dimension: iiko returning 2 of 100 suppliers, or the adapter refusing 99
    of the 100 it returned, deletes nothing (issue 13's probes); a small real change still deletes."""
    engine = _engine(db_url)
    full = IIKO_ADAPTER.suppliers(_suppliers(10))
    assert upsert_dimension(engine, "suppliers", ACCOUNT, full.rows, full.errors).created == 10

    refused = IIKO_ADAPTER.suppliers(_suppliers(10, bad=set(range(1, 10))))
    assert len(refused.errors) == 9
    kept = upsert_dimension(engine, "suppliers", ACCOUNT, refused.rows, refused.errors)
    assert (kept.deleted, kept.deletion_guard, kept.errors) == (0, None, 9)  # refused is not vanished
    assert _live_suppliers(engine) == 10

    two = IIKO_ADAPTER.suppliers(_suppliers(2))
    guarded = upsert_dimension(engine, "suppliers", ACCOUNT, two.rows, two.errors)
    assert guarded.deleted == 0 and _live_suppliers(engine) == 10
    assert guarded.deletion_guard == ("suppliers: 8 of 10 suppliers (80%) would vanish, above the 20% limit; "
                                      "nothing deleted")

    empty = upsert_dimension(engine, "suppliers", ACCOUNT, [], [])
    assert empty.deleted == 0 and "iiko returned no suppliers while we hold 10" in empty.deletion_guard

    nine = IIKO_ADAPTER.suppliers(_suppliers(9))
    closed = upsert_dimension(engine, "suppliers", ACCOUNT, nine.rows, nine.errors)
    assert (closed.deleted, closed.deletion_guard) == (1, None) and _live_suppliers(engine) == 9


def test_invoices_without_lines_and_empty_batches(db_url):
    engine = _engine(db_url)
    _seed_dimensions(engine)
    bare = IIKO_ADAPTER.invoices([_invoice("575a43c7-0000-4000-8000-00000000d0aa", [])])
    result = upsert_invoices(engine, ACCOUNT, bare.rows, bare.children, bare.errors)
    assert (result.created, result.items_written) == (1, 0)
    nothing = upsert_invoices(engine, ACCOUNT, [], [], [])
    assert (nothing.total, nothing.created, nothing.errors) == (0, 0, 0)


def test_text_with_copy_separators_round_trips(db_url):
    engine = _engine(db_url)
    tricky = 'Кафе\t"Уют"\nна углу \\ №1'
    batch = IIKO_ADAPTER.restaurants([{"id": R1, "type": "DEPARTMENT", "name": tricky, "code": "a\\tb"}])
    upsert_dimension(engine, "restaurants", ACCOUNT, batch.rows, batch.errors)
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.restaurants.c.name, schema.restaurants.c.code)).one() == (tricky, "a\\tb")


def test_an_invoice_with_several_bad_lines_is_one_error(db_url):
    engine = _engine(db_url)
    _seed_dimensions(engine)
    doc = _invoice("575a43c7-0000-4000-8000-00000000d0bb", [(1, "1", "10"), (2, "1", "10")])
    doc["defaultStore"] = None
    doc["items"][0]["store"] = "1239d270-0000-4000-8000-00000000aff1"
    doc["items"][1]["store"] = "1239d270-0000-4000-8000-00000000aff2"
    batch = IIKO_ADAPTER.invoices([doc])
    result = upsert_invoices(engine, ACCOUNT, batch.rows, batch.children, batch.errors)
    assert (result.total, result.errors) == (1, 1)
    assert "aff1" in result.error_details[0]["reason"] and "aff2" in result.error_details[0]["reason"]


def test_line_totals_and_row_counts_read_what_was_stored(db_url):
    """The numbers behind `line_sums_consistent` / `row_counts_agree`: exact sums on both backends (SQLite keeps
    decimals as text), an invoice without lines counted as (0, 0), another external system's key not matched."""
    from iiko_pipeline.warehouse import quality

    engine = _engine(db_url)
    _seed_dimensions(engine)
    a, b, empty = (f"0a000000-0000-4000-8000-0000000000{n:02d}" for n in (1, 2, 3))
    docs = [_invoice(a, [(1, "2.000000000", "101.400000000"), (2, "1", "0.1")]),
            _invoice(b, [(1, "3", "0.2"), (2, "1", "0.3")]), _invoice(empty, [])]
    batch = IIKO_ADAPTER.invoices(docs)
    upsert_invoices(engine, ACCOUNT, batch.rows, batch.children, batch.errors)
    totals = quality.line_totals(engine, ACCOUNT, [a, b, empty, "not-stored"])
    assert totals == {a: (2, Decimal("101.5")), b: (2, Decimal("0.5")), empty: (0, Decimal(0))}
    assert quality.count_rows(engine, schema.invoices, ACCOUNT, [a, b, empty, "not-stored"]) == 3
    assert quality.count_rows(engine, schema.invoices, ACCOUNT, [a], external_system="other-pos") == 0


def test_line_sum_check_names_an_invoice_whose_stored_lines_differ(db_url):
    """The `line_sums_consistent` comparison: stored lines against what the source gave, rejected ones skipped."""
    from iiko_pipeline.core.steps import line_sum_failures

    engine = _engine(db_url)
    _seed_dimensions(engine)
    a, b = "0b000000-0000-4000-8000-000000000001", "0b000000-0000-4000-8000-000000000002"
    batch = IIKO_ADAPTER.invoices([_invoice(a, [(1, "1", "10.5")]), _invoice(b, [(1, "1", "2")])])
    upsert_invoices(engine, ACCOUNT, batch.rows, batch.children, batch.errors)
    expected = {a: (1, Decimal("10.5")), b: (2, Decimal("4"))}
    assert line_sum_failures(engine, ACCOUNT, expected, [a, b], rejected=set()) == [
        f"{b}: source 2 lines / 4, stored 1 lines / 2.000000000"]
    assert line_sum_failures(engine, ACCOUNT, expected, [a, b], rejected={b}) == []


def test_statistics_are_refreshed_once_a_table_has_grown(db_url):
    """A backfill keeps PostgreSQL's planner statistics current itself (autovacuum may be off or late)."""
    from iiko_pipeline.warehouse.upsert import refresh_statistics

    engine = _engine(db_url)
    _seed_dimensions(engine)
    docs = [_invoice(f"0c000000-0000-4000-8000-{n:012d}", [(1, "1", "1"), (2, "2", "2")]) for n in range(600)]
    batch = IIKO_ADAPTER.invoices(docs)
    upsert_invoices(engine, ACCOUNT, batch.rows, batch.children, batch.errors)
    tables = (schema.invoices, schema.invoice_items)
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            assert refresh_statistics(conn, tables) == []  # SQLite plans these lookups by index without them
        return
    with engine.begin() as conn:  # the writing session's counters reach the statistics views at its next flush
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
    with engine.begin() as conn:
        analysed = refresh_statistics(conn, tables)
    assert analysed == ["invoice_items"]  # 1,200 new lines; 600 invoices are under the 1,000-change floor
    with engine.connect() as conn:
        tuples = conn.exec_driver_sql("SELECT reltuples FROM pg_class WHERE relname = 'invoice_items'").scalar()
    assert tuples == 1200
    with engine.begin() as conn:
        assert refresh_statistics(conn, tables) == []  # nothing changed since
