"""Daily sales, day totals, stock balance snapshots and cash shifts through the core's own steps, against a real
emulator over HTTP and a real warehouse (SQLite and PostgreSQL): issue 15's behaviours one by one."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from core_helpers import CoreSync

from iiko_pipeline.core.policy import WindowPolicy
from iiko_pipeline.core.specs import spec
from iiko_pipeline.iiko import olap
from iiko_pipeline.warehouse import schema

TOTALS, SALES, SHIFTS, BALANCES = (spec(n) for n in ("sales_day_totals", "sales_daily", "cash_shifts",
                                                       "stock_balances"))


def rows(core: CoreSync, table: sa.Table, *, drop: tuple[str, ...] = ("id",)) -> dict[str, dict]:
    with core.engine.connect() as conn:
        return {r["external_id"]: {k: v for k, v in r.items() if k not in drop} for r in conn.execute(
            sa.select(table).where(table.c.account_id == core.account_id)).mappings()}


def days(core: CoreSync, back: int) -> tuple[date, date]:
    return core.days_ago(back), core.days_ago(1)


def backfill(core: CoreSync, entity, date_from: date, date_to: date):
    return core.run(entity, WindowPolicy(mode="backfill", date_from=date_from.isoformat(),
                                         date_to=date_to.isoformat()))


@pytest.fixture
def sales(synced: CoreSync) -> CoreSync:
    """Reference data (restaurants, stores, products...) synced, then nine days of sales and their totals."""
    start, end = days(synced, 9)
    for entity in (TOTALS, SALES):
        run = backfill(synced, entity, start, end)
        assert not run.failed_checks(), (entity.name, run.failed_checks())
    return synced


def day_sums(core: CoreSync) -> dict[tuple[str, date], Decimal]:
    out: dict[tuple[str, date], Decimal] = {}
    for row in rows(core, schema.sales_daily).values():
        key = (row["restaurant_external_id"], row["business_date"])
        out[key] = out.get(key, Decimal(0)) + row["dish_sum"]
    return out


def test_daily_sales_are_iikos_olap_rows_linked_and_adding_up_to_the_totals(sales: CoreSync):
    start, end = days(sales, 9)
    answer = sales.client.olap(olap.sales_detail_request(start, end))
    stored = rows(sales, schema.sales_daily)
    assert len(stored) == len(answer.items) > 0
    assert sum(r["dish_sum"] for r in stored.values()) == sum(Decimal(str(i[olap.DISH_SUM])) for i in answer.items)
    assert all(r["restaurant_id"] is not None and r["product_id"] is not None for r in stored.values())
    totals = {(r["restaurant_external_id"], r["business_date"]): r
              for r in rows(sales, schema.sales_day_totals).values()}
    assert {k: v["dish_sum"] for k, v in totals.items() if k in day_sums(sales)} == day_sums(sales)
    assert all(t["orders"] > 0 for t in totals.values() if t["dish_sum"])


def test_re_running_a_day_gives_identical_rows_and_never_duplicates(sales: CoreSync):
    start, end = days(sales, 9)
    before = (rows(sales, schema.sales_daily), rows(sales, schema.sales_day_totals))
    again = backfill(sales, SALES, start, end)
    backfill(sales, TOTALS, start, end)
    assert again.counts[0] == again.counts[1] == 0 or again.skipped == [True] * len(again.skipped)
    assert (rows(sales, schema.sales_daily), rows(sales, schema.sales_day_totals)) == before  # synced_at too
    reprocessed = sales.run(SALES, WindowPolicy(mode="backfill", date_from=start.isoformat(),
                                                date_to=end.isoformat(), reprocess_unchanged=True))
    assert reprocessed.counts[:2] == (0, 0) and reprocessed.counts[2] == len(before[0])
    assert rows(sales, schema.sales_daily) == before[0]


def test_a_shift_left_open_moves_sales_to_the_earlier_business_day_and_the_run_follows(sales: CoreSync):
    start, end = days(sales, 9)
    department, moved_day = next(iter(sorted(day_sums(sales))))[0], sales.days_ago(4)
    before = day_sums(sales)
    sales.emulator.state.late_shift(department, moved_day, "23:00:00")  # open until late on `moved_day`
    for entity in (TOTALS, SALES):
        run = backfill(sales, entity, start, end)
        assert not run.failed_checks(), run.failed_checks()
    after = day_sums(sales)
    earlier = (department, moved_day - timedelta(days=1))
    assert after[earlier] > before[earlier]
    assert after.get((department, moved_day), Decimal(0)) < before[(department, moved_day)]
    assert sum(after.values()) == sum(before.values())  # moved, not lost or counted twice
    stored = rows(sales, schema.sales_daily)
    assert len({(r["restaurant_external_id"], r["business_date"], r["dish_external_id"], r["order_type"],
                 r["pay_types"]) for r in stored.values()}) == len(stored)


def test_the_check_catches_detail_rows_that_do_not_add_up_to_the_totals(sales: CoreSync):
    start, end = days(sales, 9)

    def drop_a_row(body: bytes) -> bytes:
        answer = json.loads(body)
        answer["data"] = answer["data"][1:]
        return json.dumps(answer, ensure_ascii=False).encode()

    run = sales.run(SALES, WindowPolicy(mode="backfill", date_from=start.isoformat(), date_to=end.isoformat(),
                                        reprocess_unchanged=True), rewrite=drop_a_row)
    check = run.checks["sales_match_totals"]
    assert not check.passed and not check.warn_only and "detail" in check.metadata["detail"]


def test_report_rows_are_counted_window_by_window_and_two_rows_under_one_key_fail_the_count(sales: CoreSync):
    """Report rows cannot move between windows, so the frame summary keeps no ids (a year of sales is millions)
    and each window is counted in its own transaction; an answer with a row repeated under one key (a grouping
    that lost a field) stores one row for two and must not pass."""
    start, end = days(sales, 9)
    clean = sales.run(SALES, WindowPolicy(mode="backfill", date_from=start.isoformat(), date_to=end.isoformat(),
                                          reprocess_unchanged=True))
    assert not clean.frame.ids_kept and all(c["ids"] == [] for c in clean.frame.chunk_summaries)
    check = clean.checks["row_counts_agree"]
    assert check.passed and "every window holds what it returned" in check.metadata["detail"]

    def repeat_a_row(body: bytes) -> bytes:
        answer = json.loads(body)
        if answer["data"]:
            answer["data"].append(answer["data"][0])
        return json.dumps(answer, ensure_ascii=False).encode()

    run = sales.run(SALES, WindowPolicy(mode="backfill", date_from=start.isoformat(), date_to=end.isoformat(),
                                        reprocess_unchanged=True), rewrite=repeat_a_row)
    check = run.checks["row_counts_agree"]
    assert not check.passed and "held after its commit" in check.metadata["detail"]
    assert f"window {start.isoformat()}.." in check.metadata["detail"]


def test_an_incremental_run_re_asks_the_trailing_business_days(synced: CoreSync):
    first = synced.run(SALES, WindowPolicy(history_days=3, date_to=synced.today.isoformat()))
    assert first.frame.window_from == synced.days_ago(2).isoformat()
    assert synced.emulator and first.written.windows_committed >= 1
    again = synced.run(SALES, WindowPolicy(date_to=synced.today.isoformat()))
    assert again.frame.window_from == synced.days_ago(7).isoformat()  # the watermark (today) minus 7 days


def test_stock_snapshots_keep_history_and_a_back_dated_invoice_changes_the_days_re_taken(synced: CoreSync):
    first = backfill(synced, BALANCES, synced.days_ago(5), synced.days_ago(1))
    assert not first.failed_checks(), first.failed_checks()
    stored = rows(synced, schema.stock_balances)
    assert {r["snapshot_date"] for r in stored.values()} == {synced.days_ago(n) for n in range(1, 6)}
    assert all(r["amount"] != 0 for r in stored.values())  # iiko omits zero balances
    assert all(r["store_id"] is not None and r["product_id"] is not None for r in stored.values())
    at = synced.days_ago(2)
    answer = synced.client.store_balances(datetime(at.year, at.month, at.day, 23, 59, 59))
    assert {(i["store"], i["product"]): Decimal(str(i["amount"])) for i in answer.items} == {
        (r["store_external_id"], r["product_external_id"]): r["amount"]
        for r in stored.values() if r["snapshot_date"] == at}

    line = next(r for r in stored.values() if r["snapshot_date"] == at)
    synced.emulator.state.add_invoice({"date_incoming": f"{synced.days_ago(3).isoformat()}T10:00:00",
                                       "status": "PROCESSED", "default_store_id": line["store_external_id"],
                                       "items": [{"num": 1, "product_id": line["product_external_id"], "amount": "5",
                                                  "price": "10", "sum": "50",
                                                  "store_id": line["store_external_id"]}]})
    oldest = {k: v for k, v in rows(synced, schema.stock_balances).items() if v["snapshot_date"] == synced.days_ago(5)}
    retaken = synced.run(BALANCES, WindowPolicy(date_to=synced.days_ago(1).isoformat()))
    assert not retaken.failed_checks(), retaken.failed_checks()
    after = rows(synced, schema.stock_balances)
    assert after[line["external_id"]]["amount"] == line["amount"] + 5
    assert {k: v for k, v in after.items() if v["snapshot_date"] == synced.days_ago(5)} == oldest  # history kept


def test_cash_shifts_are_upserted_by_id_and_answer_cash_difference_per_shift(synced: CoreSync):
    start, end = days(synced, 6)
    first = backfill(synced, SHIFTS, start, end)
    assert not first.failed_checks() and first.counts[0] > 0
    truth = synced.client.cash_shifts(start, end)
    stored = rows(synced, schema.cash_shifts)
    assert set(stored) == {str(s["id"]).lower() for s in truth.items}
    for shift in truth.items:
        row = stored[str(shift["id"]).lower()]
        assert row["cash_diff"] == Decimal(str(shift["cashDiff"])) and row["session_number"] == \
            int(shift["sessionNumber"])
        assert row["point_of_sale"] == shift["pointOfSale"] and row["open_day"] <= end
    # the restaurant of each shift, which the shift list does not say: asked department by department
    shifts = synced.emulator.state.dataset.sales.shifts(start, end)
    assert {(k, v["restaurant_external_id"]) for k, v in stored.items()} == {
        (s.id.lower(), s.department_id) for s in shifts}
    shift_t, restaurant_t = schema.cash_shifts, schema.restaurants
    with synced.engine.connect() as conn:
        linked = dict(conn.execute(sa.select(shift_t.c.external_id, restaurant_t.c.external_id)
                                   .join(restaurant_t, restaurant_t.c.id == shift_t.c.restaurant_id)).all())
    assert linked == {k: v["restaurant_external_id"] for k, v in stored.items()}
    again = backfill(synced, SHIFTS, start, end)
    assert rows(synced, schema.cash_shifts) == stored and again.written.result.created == 0


def test_reports_iiko_may_not_give_are_skipped_without_failing(synced: CoreSync):
    synced.emulator.state.configure(permission_denied=["v2/reports/olap"])
    run = backfill(synced, SALES, *days(synced, 3))
    assert run.raw.skipped and "HTTP 403" in run.raw.skipped
    assert [n for n, c in run.checks.items() if not c.passed and not c.warn_only] == []
    assert rows(synced, schema.sales_daily) == {}


def readme_queries() -> list[str]:
    """The three SQL queries the README promises, as written there."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = text.split("Three questions, one query each", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    return [q.strip() for q in block.split(";") if q.strip()]


def test_the_readme_queries_answer_their_three_questions(sales: CoreSync):
    revenue, in_store, cash_diff = readme_queries()
    backfill(sales, BALANCES, sales.days_ago(2), sales.days_ago(1))
    backfill(sales, SHIFTS, *days(sales, 9))
    balance = next(iter(rows(sales, schema.stock_balances).values()))
    params = {"account": sales.account_id, "store": balance["store_external_id"], "day": balance["snapshot_date"]}
    with sales.engine.connect() as conn:
        by_day = conn.execute(sa.text(revenue).bindparams(sa.bindparam("account", type_=sa.Uuid())), params).all()
        stock = conn.execute(sa.text(in_store).bindparams(sa.bindparam("account", type_=sa.Uuid())), params).all()
        shifts = conn.execute(sa.text(cash_diff).bindparams(sa.bindparam("account", type_=sa.Uuid())), params).all()
    assert len(by_day) == len(day_sums(sales))
    held = [r for r in rows(sales, schema.stock_balances).values()
            if (r["store_external_id"], r["snapshot_date"]) == (balance["store_external_id"], balance["snapshot_date"])]
    assert len(stock) == len(held) > 0
    assert len(shifts) == len(rows(sales, schema.cash_shifts)) > 0
    names = {k: v["name"] for k, v in rows(sales, schema.restaurants).items()}
    assert {row.restaurant for row in shifts} == {names[r["restaurant_external_id"]]
                                                  for r in rows(sales, schema.cash_shifts).values()}
    if sales.engine.dialect.name == "postgresql":  # SQLite keeps decimals as text: its sum() is not exact
        totals = {(r["restaurant_external_id"], r["business_date"]): r["revenue"]
                  for r in rows(sales, schema.sales_day_totals).values()}
        assert {(row.restaurant, row.business_date): row.revenue for row in by_day} == {
            (names[k[0]], k[1]): v for k, v in totals.items() if k in day_sums(sales)}


def test_an_empty_report_for_days_we_hold_removes_nothing(sales: CoreSync):
    start, end = days(sales, 9)
    before = rows(sales, schema.sales_daily)

    def empty(body: bytes) -> bytes:
        answer = json.loads(body)
        answer["data"] = []
        return json.dumps(answer).encode()

    run = sales.run(SALES, WindowPolicy(mode="backfill", date_from=start.isoformat(), date_to=end.isoformat(),
                                        reprocess_unchanged=True), rewrite=empty)
    guard = run.checks["deletions_guarded"]
    assert not guard.passed and guard.warn_only and run.written.result.deleted == 0
    assert rows(sales, schema.sales_daily) == before


def test_a_restaurant_day_that_really_lost_a_dish_loses_that_row_only(sales: CoreSync):
    start, end = days(sales, 9)
    before = rows(sales, schema.sales_daily)
    gone = sorted(before)[0]
    dropped: list[int] = []

    def drop(body: bytes) -> bytes:
        answer = json.loads(body)
        row = before[gone]
        keep = [r for r in answer["data"] if (
            r[olap.DEPARTMENT_ID].lower(), r[olap.OPEN_DATE][:10], (r[olap.DISH_ID] or "").lower(),
            r[olap.ORDER_TYPE], r[olap.PAY_TYPES]) != (row["restaurant_external_id"], row["business_date"].isoformat(),
                                                       row["dish_external_id"], row["order_type"], row["pay_types"])]
        dropped.append(len(answer["data"]) - len(keep))  # one rewrite per window: the row is in one of them
        answer["data"] = keep
        return json.dumps(answer, ensure_ascii=False).encode()

    run = sales.run(SALES, WindowPolicy(mode="backfill", date_from=start.isoformat(), date_to=end.isoformat(),
                                        reprocess_unchanged=True), rewrite=drop)
    assert sum(dropped) == 1 and run.written.result.deleted == 1
    assert set(rows(sales, schema.sales_daily)) == set(before) - {gone}
