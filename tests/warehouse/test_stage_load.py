"""A stage loaded from an Arrow table stores exactly what the same rows loaded one by one store.

The Arrow paths (COPY of Arrow-written CSV on PostgreSQL, a column-wise executemany on SQLite) skip SQLAlchemy's
per-value binding for speed; these tests compare their stored values, as the database holds them, with the
per-row path's, on both backends, and check that both refuse, from rows, what binding refuses.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa

from iiko_pipeline.warehouse.engine import write_transaction
from iiko_pipeline.warehouse.sqltypes import (
    ExactDecimal,
    JsonDocument,
    UtcDateTime,
    exact_decimal_texts,
    holds_exact_decimals,
    to_exact_decimal,
)
from iiko_pipeline.warehouse.upsert import Stage, dedupe_last, dedupe_last_table

TARGET = sa.Table(
    "stage_shapes", sa.MetaData(),
    sa.Column("line", sa.Integer), sa.Column("amount", ExactDecimal()), sa.Column("name", sa.Text),
    sa.Column("code", sa.String), sa.Column("flag", sa.Boolean), sa.Column("day", sa.Date),
    sa.Column("at", UtcDateTime()), sa.Column("extra", JsonDocument()), sa.Column("total", sa.BigInteger),
)
ARROW_SCHEMA = pa.schema([
    ("line", pa.int64()), ("amount", pa.decimal128(28, 9)), ("name", pa.string()), ("code", pa.string()),
    ("flag", pa.bool_()), ("day", pa.date32()), ("at", pa.timestamp("us", tz="UTC")), ("extra", pa.string()),
    ("total", pa.int64()),
])
START = datetime(2026, 1, 1, tzinfo=UTC)
EDGE_DECIMALS = ["0", "-0", "0.000000001", "-0.000000001", "0.0000005", "-0.5", "1", "420.44", "100.000000000",
                 "1234567890123456789.123456789", "-1234567890123456789.999999999"]


def _rows(count: int) -> list[dict]:
    rng = random.Random(16)
    decimals = [Decimal(v) for v in EDGE_DECIMALS]
    rows = []
    for n in range(count):
        amount = decimals[n] if n < len(decimals) else Decimal(rng.randint(-10**12, 10**12)).scaleb(-rng.randint(0, 9))
        rows.append({
            "line": n, "amount": None if n % 17 == 5 else amount,
            "name": None if n % 13 == 3 else f"item \t{n}\n'quoted' \"twice\", ünïcode",
            "code": "" if n % 11 == 2 else f"C{n}", "flag": None if n % 7 == 1 else n % 2 == 0,
            "day": date(2026, 1, 1) + timedelta(days=n % 400),
            "at": None if n % 9 == 4 else START + timedelta(seconds=n * 3601, microseconds=n),
            "extra": None if n % 5 == 0 else '{"a":[1,2],"b":"x"}', "total": n * 10**12,
        })
    return rows


def _stored(conn: sa.Connection, stage: Stage) -> list[tuple]:
    """The stage's rows as the database holds them (no result processing: SQLite's texts as stored)."""
    query = sa.select(*(sa.column(c) for c in stage.columns)).select_from(sa.table(stage.name)).order_by("line")
    return [tuple(r) for r in conn.exec_driver_sql(str(query.compile(conn)))]


def test_rows_and_an_arrow_table_stage_what_sqlalchemy_binding_stores(engine: sa.Engine) -> None:
    rows = _rows(400)
    with write_transaction(engine) as conn:
        by_binding = Stage(conn, TARGET, [c.name for c in TARGET.columns])
        conn.execute(by_binding.table.insert(), rows)  # the oracle: SQLAlchemy binds each value
        by_rows = Stage(conn, TARGET, [c.name for c in TARGET.columns])
        by_rows.load(rows, index_on=())
        by_arrow = Stage(conn, TARGET, [c.name for c in TARGET.columns])
        by_arrow.load(pa.Table.from_pylist(rows, ARROW_SCHEMA), index_on=())
        expected = _stored(conn, by_binding)
        stored_rows, stored_arrow = _stored(conn, by_rows), _stored(conn, by_arrow)
    assert len(expected) == len(rows)
    assert stored_rows == expected
    assert stored_arrow == expected


@pytest.mark.parametrize(("column", "value", "error"), [
    ("amount", 1.5, "ExactDecimal refuses float values"),
    ("amount", Decimal("1.0000000001"), "more than 9 fractional digits; refusing to round"),
    ("amount", Decimal("NaN"), "ExactDecimal needs a finite number"),
    ("amount", Decimal("12345678901234567890"), "does not fit NUMERIC"), ("amount", "abc", "not a decimal number"),
    ("at", datetime(2026, 1, 1, 12), "UtcDateTime refuses naive datetimes"),
])
def test_rows_are_refused_what_binding_refuses_on_both_backends(engine: sa.Engine, column: str, value,
                                                                 error: str) -> None:
    """Neither fast path of dict rows stores what SQLAlchemy's `insert()` would refuse: SQLite's column-wise path
    keeps the per-value checks (Arrow alone would take a float), and PostgreSQL's COPY runs them before the text
    is written (NUMERIC(28, 9) alone would round the tenth place; TIMESTAMPTZ would read the naive time in the
    session's zone)."""
    rows = [*_rows(3), {**_rows(1)[0], "line": 99, column: value}]
    with pytest.raises((TypeError, ValueError), match=error), write_transaction(engine) as conn:
        Stage(conn, TARGET, [c.name for c in TARGET.columns]).load(rows, index_on=())


def test_an_arrow_table_without_any_stage_column_is_refused_by_name(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match=r"has none of its columns .*; it has unrelated"), \
            write_transaction(engine) as conn:
        Stage(conn, TARGET, [c.name for c in TARGET.columns]).load(pa.table({"unrelated": [1, 2, 3]}), index_on=())


def test_a_column_the_arrow_table_lacks_stays_null(engine: sa.Engine) -> None:
    rows = _rows(20)
    with write_transaction(engine) as conn:
        stage = Stage(conn, TARGET, [c.name for c in TARGET.columns])
        stage.load(pa.Table.from_pylist(rows, ARROW_SCHEMA).drop_columns(["name", "amount"]), index_on=())
        stored = _stored(conn, stage)
    assert [r[0] for r in stored] == list(range(20))
    assert {r[1] for r in stored} == {None} and {r[2] for r in stored} == {None}


def test_exact_decimal_texts_match_the_per_value_texts() -> None:
    rng = random.Random(9)
    values = [Decimal(v) for v in EDGE_DECIMALS] + [None]
    for _ in range(50_000):
        integer = rng.randint(0, 10 ** rng.randint(0, 19) - 1)
        values.append(Decimal(rng.choice((1, -1)) * integer).scaleb(-rng.randint(0, 9)) if integer else Decimal(0))
    texts = exact_decimal_texts(pa.array(values, pa.decimal128(28, 9)))
    assert texts == [None if v is None else format(to_exact_decimal(v), "f") for v in values]
    assert texts[0] == texts[1] == "0.000000000" and texts[2] == "0.000000001"  # Arrow alone writes 0E-9, 1E-9


@pytest.mark.parametrize(("arrow_type", "exact"), [
    (pa.decimal128(28, 9), True), (pa.decimal128(20, 9), True), (pa.decimal128(38, 9), False),
    (pa.decimal128(28, 2), False), (pa.string(), False), (pa.float64(), False),
])
def test_only_decimals_of_the_warehouse_scale_take_the_arrow_texts(arrow_type: pa.DataType, exact: bool) -> None:
    assert holds_exact_decimals(arrow_type) is exact


def test_an_arrow_table_with_inferred_decimal_types_stages_what_its_rows_stage(engine: sa.Engine) -> None:
    """A frame's decimal types are inferred from its values (`decimal128(5, 2)` for 420.44): staged from Arrow,
    they are cast to the warehouse's NUMERIC(28, 9) and stored as the same rows staged one by one."""
    rows = [{"line": n, "amount": Decimal(v), "at": START} for n, v in enumerate(["420.44", "-0.5", "0", "7"])]
    table = pa.Table.from_pylist(rows)
    assert table.schema.field("amount").type == pa.decimal128(5, 2)
    with write_transaction(engine) as conn:
        by_rows, by_arrow = (Stage(conn, TARGET, ["line", "amount", "at"]) for _ in range(2))
        by_rows.load(rows, index_on=())
        by_arrow.load(table, index_on=())
        assert _stored(conn, by_arrow) == _stored(conn, by_rows)


@pytest.mark.parametrize(("column", "values", "error"), [
    ("amount", pa.array([Decimal("1.0000000001")], pa.decimal128(20, 10)),
     r"stage_shapes_\w+\.amount: decimal128\(20, 10\) values do not fit NUMERIC\(28, 9\) exactly"),
    ("amount", pa.array([Decimal("1" * 25)], pa.decimal128(38, 0)), r"do not fit NUMERIC\(28, 9\) exactly"),
    ("amount", pa.array([1.5], pa.float64()), "ExactDecimal refuses float values"),
    ("at", pa.array([datetime(2026, 1, 1, 12)], pa.timestamp("us")), r"\.at: UtcDateTime refuses naive datetimes"),
])
def test_an_arrow_table_is_refused_what_binding_refuses_on_both_backends(engine: sa.Engine, column: str,
                                                                         values: pa.Array, error: str) -> None:
    """The frame step's rows reach the stage as Arrow: a decimal Arrow would have to round, a float, or a time
    without a zone is refused by name on both backends, before anything is written."""
    table = pa.table({"line": pa.array([1], pa.int64()), column: values})
    with pytest.raises((TypeError, ValueError), match=error), write_transaction(engine) as conn:
        Stage(conn, TARGET, [c.name for c in TARGET.columns]).load(table, index_on=())


def test_deduplicating_an_arrow_table_keeps_the_last_row_of_each_key_as_rows_do() -> None:
    rng = random.Random(7)
    rows = [{"external_id": rng.choice(["a", "b", "c", None, "d"]), "n": n} for n in range(200)]
    expected, dropped = dedupe_last(rows)
    table, table_dropped = dedupe_last_table(pa.Table.from_pylist(rows))
    assert table_dropped == dropped == 195
    assert sorted(table.to_pylist(), key=lambda r: r["n"]) == sorted(expected, key=lambda r: r["n"])
    unique = pa.table({"external_id": ["x", "y"], "n": [1, 2]})
    assert dedupe_last_table(unique) == (unique, 0)
    assert dedupe_last_table(pa.table({})) == (pa.table({}), 0)  # an empty answer's frame has no columns
