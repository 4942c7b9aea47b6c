"""A stage loaded from an Arrow table stores exactly what the same rows loaded one by one store.

The Arrow paths (COPY of Arrow-written CSV on PostgreSQL, a column-wise executemany on SQLite) skip SQLAlchemy's
per-value binding for speed; these tests compare their stored values, as the database holds them, with the
per-row path's, on both backends.

On PostgreSQL the rows' COPY sends decimals as text for NUMERIC(28, 9) to parse, without `ExactDecimal`'s own
refusals (a float, a tenth place): the adapters check every decimal before a row exists, so no iiko answer reaches
it that way; SQLite has no NUMERIC to fall back on, and keeps them.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa

from iiko_pipeline.warehouse.engine import make_engine, write_transaction
from iiko_pipeline.warehouse.sqltypes import (
    ExactDecimal,
    JsonDocument,
    UtcDateTime,
    exact_decimal_texts,
    holds_exact_decimals,
    to_exact_decimal,
)
from iiko_pipeline.warehouse.upsert import Stage

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


@pytest.mark.parametrize(("value", "error"), [
    (1.5, TypeError), (Decimal("1.0000000001"), ValueError), (Decimal("NaN"), ValueError),
    (Decimal("12345678901234567890"), ValueError), ("abc", ValueError),
])
def test_sqlite_refuses_from_rows_what_exact_decimal_refuses(sqlite_url: str, value, error) -> None:
    """SQLite's column-wise path keeps ExactDecimal's per-value refusals (Arrow alone would take a float). The
    PostgreSQL COPY of rows leaves decimals to NUMERIC(28, 9), as it did before (see the module's note)."""
    rows = [*_rows(3), {**_rows(1)[0], "line": 99, "amount": value}]
    engine = make_engine(sqlite_url)
    try:
        with pytest.raises(error), write_transaction(engine) as conn:
            Stage(conn, TARGET, [c.name for c in TARGET.columns]).load(rows, index_on=())
    finally:
        engine.dispose()


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
