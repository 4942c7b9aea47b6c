"""The set-based upsert engine: one staged batch, one guarded `INSERT ... SELECT ... ON CONFLICT` per table.

Why this shape (see docs/performance-and-security-notes.md §4-7):
- rows go into a temporary stage table in bulk (binary-safe text COPY on PostgreSQL, one executemany on
  SQLite), never one round trip per row;
- references to parent tables are resolved in SQL by joining on external ids, and rows whose parent does not
  exist are rejected as a set (they become `error_details`), so the rest of the batch still lands;
- `DO UPDATE ... WHERE (target) IS DISTINCT FROM (excluded)` skips unchanged rows, so a re-sync of unchanged
  data writes nothing; bookkeeping columns (`synced_at`) are set but never compared;
- counts come from the database: `RETURNING (xmax = 0)` on PostgreSQL, and on SQLite the number of staged keys
  that already existed, counted in the same transaction before the statement.
The caller owns the transaction: one per table per account, so a batch lands whole or not at all.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from iiko_pipeline.jsontext import canonical_json
from iiko_pipeline.warehouse.sqltypes import (
    DECIMAL_PRECISION,
    DECIMAL_SCALE,
    EXACT_DECIMAL_ARROW,
    ExactDecimal,
    UtcDateTime,
    exact_decimal_texts,
    holds_exact_decimals,
    to_exact_decimal,
)

KEY_COLUMNS = ("account_id", "external_system", "external_id")
BOOKKEEPING_COLUMNS = frozenset({"id", "synced_at", "created_at", "updated_at"})


@dataclass(frozen=True)
class ParentRef:
    """A foreign key resolved from an external id carried by the row (e.g. stores.restaurant_external_id)."""

    fk_column: str
    external_column: str
    parent: sa.Table
    label: str  # how the reference is named in an error ("restaurant", "supplier")


@dataclass
class Rejection:
    external_id: str
    reason: str
    parent: str = ""  # the table of the missing row ("suppliers"), for a summary a person can act on


@dataclass
class UpsertOutcome:
    """What one upsert did, counted by the database."""

    staged: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def id_chunks(ids: Iterable[str], size: int) -> Iterator[list[str]]:
    """Ids in lists of at most `size`, for `IN (...)` lookups that stay within every backend's parameter limit."""
    items = list(ids)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def dedupe_last(rows: Iterable[dict[str, Any]], key: str = "external_id") -> tuple[list[dict[str, Any]], int]:
    """Keep the last occurrence of each key: PostgreSQL refuses to update one row twice in a statement."""
    by_key: dict[Any, dict[str, Any]] = {}
    count = 0
    for row in rows:
        count += 1
        by_key[row[key]] = row
    return list(by_key.values()), count - len(by_key)


def dedupe_last_table(table: pa.Table, key: str = "external_id") -> tuple[pa.Table, int]:
    """`dedupe_last` for an Arrow table, in C: the last row of each key, in the order of those rows. An empty
    table (an empty answer's frame has no columns at all) is returned as it is."""
    if not table.num_rows or pc.count_distinct(table[key], mode="all").as_py() == table.num_rows:
        return table, 0
    positions = pa.table({"key": table[key], "row": pa.array(range(table.num_rows), pa.int64())})
    last = positions.group_by("key").aggregate([("row", "max")])["row_max"]
    kept = table.take(pc.take(last, pc.sort_indices(last)))
    return kept, table.num_rows - kept.num_rows


class Stage:
    """A temporary table shaped like selected columns of a target table, loaded in bulk."""

    def __init__(self, conn: Connection, target: sa.Table, columns: Sequence[str], extra: Sequence[sa.Column] = ()):
        self.conn = conn
        self.name = f"stage_{target.name}_{uuid.uuid4().hex[:8]}"
        cols = [sa.Column(c, target.c[c].type) for c in columns] + [c._copy() for c in extra]
        self.table = sa.Table(self.name, sa.MetaData(), *cols, prefixes=["TEMPORARY"])
        self.columns = [c.name for c in cols]
        self.table.create(conn)

    def load(self, rows: Sequence[dict[str, Any]] | pa.Table, index_on: Sequence[str] = ("external_id",),
             analyze: bool = True) -> None:
        """Bulk-load rows (dicts, or an Arrow table whose columns are named as the stage's), then index the join
        columns: every later statement joins the stage by them.

        ANALYZE gives PostgreSQL real row counts for the joins; it is skipped for big child stages (invoice
        lines), where it cost more than it saved (bench: 22 s of a 650 s year-long load)."""
        if isinstance(rows, pa.Table) and rows.num_rows:
            if not set(self.columns) & set(rows.column_names):
                raise ValueError(f"{self.table.name}: the Arrow table to stage has none of its columns "
                                 f"({', '.join(self.columns)}); it has {', '.join(rows.column_names)}")
            rows = self._exact_types(rows)
            if self.conn.dialect.name == "postgresql":
                self._copy_table(rows)
            else:
                self._insert_table(rows)
        elif rows:  # dict rows (an empty Arrow table is falsy too)
            if self.conn.dialect.name == "postgresql":
                self._copy(rows)
            else:
                self._insert_columns({c: [row.get(c) for row in rows] for c in self.columns})
        for column in index_on:
            if column in self.columns:
                index, table = _q(self.conn, f"ix_{self.name}_{column}"), _q(self.conn, self.name)
                self.conn.exec_driver_sql(f"CREATE INDEX {index} ON {table} ({_q(self.conn, column)})")
        if analyze and self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql(f"ANALYZE {_q(self.conn, self.name)}")

    def _exact_types(self, table: pa.Table) -> pa.Table:
        """The Arrow table with each decimal column of an `ExactDecimal` column as the warehouse's decimals (scale 9,
        precision <= 28: `holds_exact_decimals`; any other is cast to `decimal128(28, 9)`), and refused where binding
        would refuse: a frame's decimal type is inferred from its values (`frames.to_table`), and NUMERIC(28, 9)
        would round a tenth place or TIMESTAMPTZ read a naive time in the session's zone where `ExactDecimal` and
        `UtcDateTime` refuse them. A cast that would lose a digit fails in Arrow; a column of
        another type (floats, texts) goes through `to_exact_decimal` value by value, which refuses or converts."""
        for name in table.column_names:
            if name not in self.table.c or (column := table.column(name)).null_count == len(column):
                continue
            sql_type, arrow_type = self.table.c[name].type, column.type
            if isinstance(sql_type, ExactDecimal) and not holds_exact_decimals(arrow_type):
                try:
                    exact = (pc.cast(column, EXACT_DECIMAL_ARROW) if pa.types.is_decimal(arrow_type) else pa.array(
                        [None if v is None else to_exact_decimal(v) for v in column.to_pylist()], EXACT_DECIMAL_ARROW))
                except pa.ArrowInvalid as exc:
                    raise ValueError(f"{self.table.name}.{name}: {arrow_type} values do not fit "
                                     f"NUMERIC({DECIMAL_PRECISION}, {DECIMAL_SCALE}) exactly: {exc}") from exc
                table = table.set_column(table.column_names.index(name), name, exact)
            elif isinstance(sql_type, UtcDateTime) and pa.types.is_timestamp(arrow_type) and arrow_type.tz is None:
                raise ValueError(f"{self.table.name}.{name}: UtcDateTime refuses naive datetimes; "
                                 "the Arrow column has no time zone")
        return table

    def _copy(self, rows: Sequence[dict[str, Any]]) -> None:
        """COPY in text format; one converter per column, chosen from its type once, not per value."""
        convert = [_converter(self.table.c[c].type, self.conn.dialect) for c in self.columns]
        pairs = list(zip(self.columns, convert, strict=True))
        buffer = io.StringIO()
        write = buffer.write
        for row in rows:
            write("\t".join([_NULL if (value := row.get(c)) is None else fn(value) for c, fn in pairs]))
            write("\n")
        buffer.seek(0)
        quoted = ", ".join(_q(self.conn, c) for c in self.columns)
        cursor = self.conn.connection.dbapi_connection.cursor()
        try:
            cursor.copy_expert(f"COPY {_q(self.conn, self.name)} ({quoted}) FROM STDIN", buffer)
        finally:
            cursor.close()

    def _copy_table(self, table: pa.Table) -> None:
        """COPY an Arrow table as CSV written by Arrow, column by column in C: no Python value per cell (a year of
        invoice lines is tens of millions). Arrow quotes every text (so an empty text stays empty) and writes a
        null as an empty unquoted field, which CSV COPY reads as NULL. Columns the table lacks stay NULL."""
        columns = [c for c in self.columns if c in table.column_names]
        encoded = io.BytesIO()
        pa_csv.write_csv(table.select(columns), encoded, pa_csv.WriteOptions(include_header=False))
        encoded.seek(0)
        quoted = ", ".join(_q(self.conn, c) for c in columns)
        cursor = self.conn.connection.dbapi_connection.cursor()
        try:  # as text: the driver encodes it for the connection, whatever its client encoding
            cursor.copy_expert(f"COPY {_q(self.conn, self.name)} ({quoted}) FROM STDIN WITH (FORMAT csv)",
                               io.TextIOWrapper(encoded, encoding="utf-8"))
        finally:
            cursor.close()

    def _insert_table(self, table: pa.Table) -> None:
        """SQLite: an Arrow table's columns (the ones it has; the others stay NULL), see `_insert_columns`."""
        self._insert_columns({c: table.column(c) for c in self.columns if c in table.column_names})

    def _insert_columns(self, columns: dict[str, pa.ChunkedArray | list[Any]]) -> None:
        """SQLite: one executemany of rows made column by column. Each column becomes its stored values at once:
        decimals as `ExactDecimal`'s texts printed by Arrow, the rest through the column type's own bind processor
        (the same function SQLAlchemy applies per value). Going through `insert()` instead built a dict per row and
        bound each value separately: 19 of the 30 s a 30-day `large` table step took (py-spy), against under 2 s
        of SQLite's own work."""
        dialect = self.conn.dialect
        values = [sqlite_values(column, self.table.c[c].type, dialect) for c, column in columns.items()]
        quoted = ", ".join(_q(self.conn, c) for c in columns)
        cursor = self.conn.connection.dbapi_connection.cursor()
        try:
            cursor.executemany(f"INSERT INTO {_q(self.conn, self.name)} ({quoted})"
                               f" VALUES ({', '.join('?' * len(columns))})", zip(*values, strict=True))
        finally:
            cursor.close()

    def drop(self) -> None:
        self.table.drop(self.conn)


_NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: Any) -> str:
    """Free text: escape COPY's separators only when present (rare), so the common case is one scan."""
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_ESCAPES)
    return text


def _boolean(value: Any) -> str:
    return "t" if value else "f"


def _isoformat(value: Any) -> str:
    return value.isoformat()


def _decimal(value: Any) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _json_text(value: Any) -> str:
    return _text(value if isinstance(value, str) else canonical_json(value))


def _converter(sql_type: sa.types.TypeEngine, dialect: sa.engine.Dialect) -> Any:
    """COPY text for one column type (PostgreSQL parses numbers, dates and UUIDs from their plain text).

    The warehouse's own types check each value first, as binding it would (`process_bind_param`): NUMERIC(28, 9)
    alone would store a float and round a tenth place where `ExactDecimal` refuses both, and TIMESTAMPTZ would read
    a naive datetime in the session's zone where `UtcDateTime` refuses it; so the rows' COPY refuses what SQLite's
    stage and SQLAlchemy's `insert()` refuse, with the same words."""
    if isinstance(sql_type, ExactDecimal | UtcDateTime):
        bind, text = sql_type.process_bind_param, _plain_converter(sql_type)
        return lambda value: text(bind(value, dialect))
    return _plain_converter(sql_type)


def _plain_converter(sql_type: sa.types.TypeEngine) -> Any:
    """COPY text for a value already of the column's Python type."""
    python_type = None
    with contextlib.suppress(NotImplementedError):
        python_type = sql_type.python_type
    if python_type is bool:
        return _boolean
    if python_type in (datetime, date):
        return _isoformat
    if python_type is Decimal:
        return _decimal
    if python_type in (int, uuid.UUID):
        return str
    if python_type is dict:  # JsonDocument: JSON text as the adapter made it (PostgreSQL parses it into JSONB)
        return _json_text
    return _text


def sqlite_values(column: pa.ChunkedArray | list[Any], sql_type: sa.types.TypeEngine,
                  dialect: sa.engine.Dialect) -> list[Any]:
    """A column (Arrow, or a list of Python values) as the values SQLite stores for `sql_type`: what binding each
    value would give."""
    if isinstance(sql_type, ExactDecimal) and (decimals := _exact_decimal_array(column)) is not None:
        return exact_decimal_texts(decimals)
    values = column if isinstance(column, list) else column.to_pylist()
    process = sql_type.dialect_impl(dialect).bind_processor(dialect)
    return values if process is None else [process(value) for value in values]


def _exact_decimal_array(column: pa.ChunkedArray | list[Any]) -> pa.ChunkedArray | pa.Array | None:
    """The column as Arrow decimals of the warehouse's scale, or None where the per-value path decides: a list
    holding anything but `Decimal` (ints, texts, floats: `to_exact_decimal` takes some and refuses others, with
    its own words) or a value Arrow cannot hold exactly (NaN, more than 9 places, more than 19 integer digits).
    The per-value path then stores it, or raises its own error for it."""
    if not isinstance(column, list):
        return column if holds_exact_decimals(column.type) else None
    if not all(value is None or type(value) is Decimal for value in column):
        return None
    try:
        return pa.array(column, EXACT_DECIMAL_ARROW)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def stage_first_join(conn: Connection) -> str:
    """The join of a stage (left) to an entity table by its key: the stage must be the outer loop, each of its
    rows one index lookup in the table. SQLite's planner, without statistics, may instead walk the account's
    whole table (its key index on account and system) once per staged row, which made every batch of a long
    backfill slower than the one before; its `CROSS JOIN` keeps the order as written. PostgreSQL plans this
    well and has no `CROSS JOIN ... ON`."""
    return "CROSS JOIN" if conn.dialect.name == "sqlite" else "JOIN"


def _distinct(conn: Connection, left: str, right: str) -> str:
    """Null-safe "differs" for row values: IS DISTINCT FROM on PostgreSQL, IS NOT on any SQLite >= 3.24."""
    op = "IS DISTINCT FROM" if conn.dialect.name == "postgresql" else "IS NOT"
    return f"({left}) {op} ({right})"


def _key_params(target: sa.Table) -> list[sa.BindParameter]:
    """Bind with the target's own column types, so values are stored exactly as the schema stores them."""
    return [sa.bindparam("account_id", type_=target.c.account_id.type), sa.bindparam("external_system"),
            sa.bindparam("synced_at", type_=target.c.synced_at.type)]


def reject_dangling(conn: Connection, stage: Stage, parents: Sequence[ParentRef], *, account_id: uuid.UUID,
                    external_system: str) -> list[Rejection]:
    """Remove staged rows whose parent external id is set but unknown; return why each was removed."""
    rejected: list[Rejection] = []
    s = _q(conn, stage.name)
    for ref in parents:
        p = _q(conn, ref.parent.name)
        ext = _q(conn, ref.external_column)
        missing = (
            f"{ext} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {p} p WHERE p.account_id = :account_id"
            f" AND p.external_system = :external_system AND p.external_id = {s}.{ext})"
        )
        params = {"account_id": account_id, "external_system": external_system}
        binds = [sa.bindparam("account_id", type_=sa.Uuid()), sa.bindparam("external_system")]
        found = conn.execute(
            sa.text(f"SELECT external_id, {ext} FROM {s} WHERE {missing}").bindparams(*binds), params
        ).all()
        if found:
            rejected += [Rejection(row[0], f"{ref.label} {row[1]} does not exist", ref.parent.name) for row in found]
            conn.execute(sa.text(f"DELETE FROM {s} WHERE {missing}").bindparams(*binds), params)
    return rejected


def merge_stage(conn: Connection, target: sa.Table, stage: Stage, parents: Sequence[ParentRef], *,
                account_id: uuid.UUID, external_system: str, synced_at: datetime,
                extra_select: dict[str, str] | None = None, joins: Sequence[str] = ()) -> UpsertOutcome:
    """One guarded INSERT ... SELECT ... ON CONFLICT from the stage into the target; exact counts."""
    outcome = UpsertOutcome()
    s = _q(conn, stage.name)
    t = _q(conn, target.name)
    data_cols = [c for c in stage.columns if c in target.c and c not in KEY_COLUMNS]
    select_exprs: dict[str, str] = {"account_id": ":account_id", "external_system": ":external_system",
                                    "external_id": "s.external_id"}
    select_exprs.update({c: f"s.{_q(conn, c)}" for c in data_cols})
    join_sql = list(joins)
    for i, ref in enumerate(parents):
        alias = f"p{i}"
        join_sql.append(
            f"LEFT JOIN {_q(conn, ref.parent.name)} {alias} ON {alias}.account_id = :account_id"
            f" AND {alias}.external_system = :external_system"
            f" AND {alias}.external_id = s.{_q(conn, ref.external_column)}"
        )
        select_exprs[ref.fk_column] = f"{alias}.id"
    select_exprs.update(extra_select or {})
    compared = [c for c in select_exprs if c not in KEY_COLUMNS and c not in BOOKKEEPING_COLUMNS]
    select_exprs["synced_at"] = ":synced_at"
    insert_cols = ", ".join(_q(conn, c) for c in select_exprs)
    select_sql = ", ".join(select_exprs.values())
    conflict = ", ".join(_q(conn, c) for c in KEY_COLUMNS)
    set_sql = ", ".join(f"{_q(conn, c)} = excluded.{_q(conn, c)}" for c in [*compared, "synced_at"])
    guard = _distinct(conn, ", ".join(f"t.{_q(conn, c)}" for c in compared),
                      ", ".join(f"excluded.{_q(conn, c)}" for c in compared))
    postgres = conn.dialect.name == "postgresql"
    returning = "(xmax = 0) AS inserted" if postgres else "id"
    params = {"account_id": account_id, "external_system": external_system, "synced_at": synced_at}

    outcome.staged = conn.execute(sa.text(f"SELECT count(*) FROM {s}")).scalar_one()
    existing = 0
    if not postgres:
        existing = conn.execute(
            sa.text(f"SELECT count(*) FROM {s} s {stage_first_join(conn)} {t} t ON t.account_id = :account_id"
                    f" AND t.external_system = :external_system AND t.external_id = s.external_id")
            .bindparams(*_key_params(target)[:2]), params).scalar_one()
    sql = (
        f"INSERT INTO {t} AS t ({insert_cols}) SELECT {select_sql} FROM {s} s {' '.join(join_sql)} WHERE true"
        f" ON CONFLICT ({conflict}) DO UPDATE SET {set_sql} WHERE {guard} RETURNING {returning}"
    )
    written = conn.execute(sa.text(sql).bindparams(*_key_params(target)), params).all()
    if postgres:
        outcome.created = sum(1 for row in written if row[0])
    else:
        outcome.created = outcome.staged - existing
    outcome.updated = len(written) - outcome.created
    outcome.unchanged = outcome.staged - len(written)
    return outcome


def refresh_statistics(conn: Connection, tables: Sequence[sa.Table], *, min_changes: int = 1000,
                       share: float = 0.1) -> list[str]:
    """ANALYZE the tables that changed by more than `share` of their rows since their last ANALYZE.

    PostgreSQL plans the key lookups of the merge and the checks from table statistics. Autovacuum keeps them
    fresh only when it is on (it is off on some servers, ours included) and with a delay; during a year-long
    backfill a table analysed when it was empty gets key probes planned as scans of the whole account, and each
    window costs more than the last (the bench measured it). Returns the tables analysed; SQLite needs none.
    """
    if conn.dialect.name != "postgresql":
        return []
    names = [t.name for t in tables]
    rows = conn.execute(sa.text(
        "SELECT s.relname, s.n_mod_since_analyze, c.reltuples FROM pg_stat_user_tables s"
        " JOIN pg_class c ON c.oid = s.relid WHERE s.schemaname = current_schema() AND s.relname IN :names"
    ).bindparams(sa.bindparam("names", expanding=True)), {"names": names}).all()
    stale = [name for name, changed, known in rows
             if changed is not None and changed >= min_changes and changed > share * max(known or 0, 0)]
    for name in stale:
        conn.exec_driver_sql(f"ANALYZE {_q(conn, name)}")
    return stale
