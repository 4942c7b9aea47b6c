"""Migrations and schema on real SQLite and PostgreSQL: migrated DB == schema.py, idempotent upgrades,
exact decimals, UTC timestamps and the constraints the sync relies on."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from iiko_pipeline.warehouse import (
    KeyRing,
    current_revision,
    head_revision,
    list_accounts,
    load_credentials,
    make_engine,
    migrate,
    schema,
)
from iiko_pipeline.warehouse.migrate import VERSION_TABLE, alembic_config
from iiko_pipeline.warehouse.sqltypes import ExactDecimal, to_exact_decimal

ACCOUNT = uuid.UUID("0b7f6d52-5f1e-4c35-9a51-9f3f3c1d2e01")
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
BIG = Decimal("123456789012345678.123456789")


def _diffs(engine: sa.Engine, metadata: sa.MetaData) -> list:
    with engine.connect() as conn:
        opts = {"compare_type": True, "compare_server_default": True, "version_table": VERSION_TABLE}
        ctx = MigrationContext.configure(conn, opts=opts)
        return compare_metadata(ctx, metadata)


def test_migrated_schema_matches_schema_py(engine: sa.Engine) -> None:
    assert current_revision(engine) == head_revision()
    assert _diffs(engine, schema.metadata) == []


def test_comparison_would_notice_a_difference(engine: sa.Engine) -> None:
    """Negative control: the empty diff above is not an artefact of a comparison that sees nothing."""
    changed = sa.MetaData(naming_convention=schema.NAMING_CONVENTION)
    for table in schema.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["suppliers"].append_column(sa.Column("extra", sa.Text()))
    changed.tables["invoice_items"].c.line_number.type = sa.String(10)
    kinds = {diff[0] if isinstance(diff, tuple) else diff[0][0] for diff in _diffs(engine, changed)}
    assert kinds == {"add_column", "modify_type"}


def test_fresh_database_has_no_revision(db_url: str) -> None:
    eng = make_engine(db_url)
    try:
        assert current_revision(eng) is None
    finally:
        eng.dispose()


def test_upgrading_a_migrated_database_is_a_no_op(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.sync_state).values(account_id=ACCOUNT, entity="invoices"))
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement.strip().split()[0].upper())

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert migrate(engine) == head_revision()
        assert migrate(engine) == head_revision()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert not {"CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE"} & set(statements), statements
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.sync_state)).scalar_one() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(sa.table(VERSION_TABLE))).scalar_one() == 1
    assert current_revision(engine) == head_revision()


def test_migrate_accepts_a_url(db_url: str) -> None:
    assert migrate(db_url) == head_revision()
    assert migrate(db_url) == head_revision()
    eng = make_engine(db_url)
    try:
        assert current_revision(eng) == head_revision()
        assert _diffs(eng, schema.metadata) == []
    finally:
        eng.dispose()


def test_downgrade_to_base_and_back(engine: sa.Engine) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {VERSION_TABLE}
    migrate(engine)
    assert _diffs(engine, schema.metadata) == []


def test_0007_adds_allow_http_false_to_existing_credentials(db_url: str, keyring_a: KeyRing) -> None:
    """A warehouse at 0006 holding connected accounts upgrades in place: every row keeps its credentials and
    gets `allow_http` false (https only, what it was connected under); a downgrade to 0006 keeps the rows."""
    eng = make_engine(db_url)
    try:
        cfg = alembic_config()
        with eng.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0006_credentials_ca_bundle")
        assert "allow_http" not in _credential_columns(eng)
        accounts = {ACCOUNT: "http://10.0.0.5:8080", uuid.UUID("0b7f6d52-5f1e-4c35-9a51-9f3f3c1d2e02"): None}
        at_0006 = sa.table("account_integration_credentials", sa.column("account_id", sa.Uuid()),
                           sa.column("integration_type"), sa.column("credentials_ciphertext", sa.LargeBinary()),
                           sa.column("key_id"), sa.column("base_url"), sa.column("is_connected", sa.Boolean()))
        with eng.begin() as conn:
            for account, url in accounts.items():
                secret = json.dumps({"username": f"user-{account}", "password": "pw"}).encode()
                conn.execute(sa.insert(at_0006).values(
                    account_id=account, integration_type="iiko", base_url=url, is_connected=True,
                    credentials_ciphertext=keyring_a.seal(account, "iiko", secret), key_id=keyring_a.current_key_id))

        assert migrate(eng) == head_revision()
        assert _diffs(eng, schema.metadata) == []
        for account, url in accounts.items():
            loaded = load_credentials(eng, keyring_a, account, "iiko")
            assert (loaded.username, loaded.password, loaded.base_url) == (f"user-{account}", "pw", url)
            assert loaded.allow_http is False
        assert [(a.account_id, a.allow_http, a.is_connected) for a in list_accounts(eng)] == [
            (account, False, True) for account in sorted(accounts)]

        with eng.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006_credentials_ca_bundle")
        assert "allow_http" not in _credential_columns(eng)
        with eng.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(at_0006)).scalar_one() == len(accounts)
        migrate(eng)
        assert load_credentials(eng, keyring_a, ACCOUNT, "iiko").allow_http is False
    finally:
        eng.dispose()


def test_0008_keeps_existing_invoice_lines_and_a_products_upsert_links_them(db_url: str) -> None:
    """A warehouse at 0007 holding invoice lines upgrades in place (SQLite rebuilds the table): every line is
    kept, unlinked, and the first products upsert links the lines that name its products."""
    from iiko_pipeline.warehouse.entities import upsert_dimension

    eng = make_engine(db_url)
    product = "5a1d6b1e-0000-4000-8000-0000000000aa"
    try:
        cfg = alembic_config()
        with eng.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0007_credentials_allow_http")
        at_0007_items = sa.table("invoice_items", sa.column("account_id", sa.Uuid()), sa.column("invoice_id"),
                                 sa.column("line_number"), sa.column("product_external_id"), sa.column("sum"))
        at_0007_invoices = sa.table("invoices", sa.column("id"), sa.column("account_id", sa.Uuid()),
                                    sa.column("external_system"), sa.column("external_id"),
                                    sa.column("document_date", sa.Date()))
        with eng.begin() as conn:
            invoice = conn.execute(sa.insert(at_0007_invoices).values(
                account_id=ACCOUNT, external_system="iiko", external_id="575a43c7-0000-4000-8000-00000000d001",
                document_date=date(2024, 3, 1)).returning(at_0007_invoices.c.id)).scalar_one()
            conn.execute(sa.insert(at_0007_items), [
                {"account_id": ACCOUNT, "invoice_id": invoice, "line_number": n, "sum": "1.000000000",
                 "product_external_id": product if n < 3 else None} for n in (1, 2, 3)])

        assert migrate(eng) == head_revision()
        assert _diffs(eng, schema.metadata) == []
        items = schema.invoice_items
        with eng.connect() as conn:
            assert conn.execute(sa.select(items.c.line_number, items.c.product_id).order_by(items.c.line_number)
                                ).all() == [(1, None), (2, None), (3, None)]
        upsert_dimension(eng, "products", ACCOUNT, [{"external_id": product, "name": "Молоко", "is_deleted": False}])
        with eng.connect() as conn:
            linked = conn.execute(sa.select(items.c.line_number).where(items.c.product_id.is_not(None))
                                  .order_by(items.c.line_number)).scalars().all()
        assert linked == [1, 2]
    finally:
        eng.dispose()


def _credential_columns(eng: sa.Engine) -> set[str]:
    return {c["name"] for c in sa.inspect(eng).get_columns("account_integration_credentials")}


# -- types ------------------------------------------------------------------------------------------------


def _insert_invoice(conn: sa.Connection, external_id: str = "575a43c7-0000-4000-8000-00000000d001") -> int:
    return conn.execute(
        sa.insert(schema.invoices)
        .values(
            account_id=ACCOUNT, external_system="iiko", external_id=external_id, document_date=date(2024, 3, 1),
            date_incoming=datetime(2024, 3, 1, 10, 15), date_incoming_offset="+03:00", synced_at=NOW,
        )
        .returning(schema.invoices.c.id)
    ).scalar_one()


def _insert_item(conn: sa.Connection, invoice_id: int, line: int, **values: object) -> None:
    conn.execute(
        sa.insert(schema.invoice_items).values(account_id=ACCOUNT, invoice_id=invoice_id, line_number=line, **values)
    )


def test_exact_decimal_round_trips_every_digit(engine: sa.Engine) -> None:
    values = {
        "amount": BIG,
        "price": Decimal("-0.000000001"),
        "sum": Decimal("9999999999999999999.999999999"),  # the largest NUMERIC(28, 9)
        "vat_sum": "420.440000000",
        "vat_percent": 10,
    }
    with engine.begin() as conn:
        invoice_id = _insert_invoice(conn)
        _insert_item(conn, invoice_id, 1, **values)
        row = conn.execute(sa.select(schema.invoice_items).where(schema.invoice_items.c.line_number == 1)).one()
    assert row.amount == BIG and isinstance(row.amount, Decimal)
    assert str(row.amount) == "123456789012345678.123456789"
    assert row.price == Decimal("-0.000000001")
    assert row.sum == Decimal("9999999999999999999.999999999")
    assert row.vat_sum == Decimal("420.44")
    assert row.vat_percent == Decimal(10)
    assert row.actual_amount is None


def test_exact_decimal_normalises_equal_values(engine: sa.Engine) -> None:
    """420.440000000 and 420.44 are one value on both backends, so upsert guards see no change."""
    with engine.begin() as conn:
        invoice_id = _insert_invoice(conn)
        _insert_item(conn, invoice_id, 1, amount=Decimal("420.440000000"))
        _insert_item(conn, invoice_id, 2, amount=Decimal("420.44"))
        _insert_item(conn, invoice_id, 3, amount=Decimal("0"))
        _insert_item(conn, invoice_id, 4, amount=Decimal("-0.0"))
        amount = schema.invoice_items.c.amount
        matches = conn.execute(
            sa.select(sa.func.count()).where(amount == sa.bindparam("v", Decimal("420.4400"), type_=ExactDecimal()))
        ).scalar_one()
        distinct = conn.execute(sa.select(sa.func.count(sa.distinct(amount)))).scalar_one()
        if engine.dialect.name == "sqlite":
            raw = conn.exec_driver_sql("SELECT amount, typeof(amount) FROM invoice_items ORDER BY line_number").all()
            assert raw == [("420.440000000", "text")] * 2 + [("0.000000000", "text")] * 2
    assert matches == 2
    assert distinct == 2


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (420.44, TypeError),  # floats already lost digits
        (Decimal("1.0000000001"), ValueError),  # 10 fractional digits: would be rounded
        (Decimal("10000000000000000000"), ValueError),  # 20 integer digits: does not fit NUMERIC(28, 9)
        (Decimal("NaN"), ValueError),
        (Decimal("Infinity"), ValueError),
        ("12,5", ValueError),
        (True, TypeError),
    ],
)
def test_exact_decimal_refuses_lossy_values_on_both_backends(engine: sa.Engine, value: object, error: type) -> None:
    with pytest.raises(error):
        to_exact_decimal(value)
    with engine.begin() as conn:
        invoice_id = _insert_invoice(conn)
    with pytest.raises(sa.exc.StatementError) as info, engine.begin() as conn:
        _insert_item(conn, invoice_id, 1, amount=value)
    assert isinstance(info.value.orig, error)


def test_timestamps_are_aware_utc_on_both_backends(engine: sa.Engine) -> None:
    moscow = timezone(timedelta(hours=3))
    with engine.begin() as conn:
        conn.execute(
            sa.insert(schema.sync_runs).values(
                account_id=ACCOUNT, entity="invoices", started_at=datetime(2024, 3, 1, 15, 0, 0, 123456, tzinfo=moscow)
            )
        )
        row = conn.execute(sa.select(schema.sync_runs)).one()
    assert row.started_at == datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert row.started_at.utcoffset() == timedelta(0)
    assert row.finished_at is None
    assert (row.total, row.created, row.updated, row.unchanged, row.deleted, row.errors) == (0, 0, 0, 0, 0, 0)


def test_server_default_timestamps_are_readable_as_utc(engine: sa.Engine) -> None:
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.sync_state).values(account_id=ACCOUNT, entity="suppliers"))
        row = conn.execute(sa.select(schema.sync_state)).one()
    assert row.updated_at.tzinfo is not None
    assert before <= row.updated_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert row.account_id == ACCOUNT and row.watermark is None


def test_naive_timestamps_are_refused(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive"), engine.begin() as conn:
        conn.execute(
            sa.insert(schema.sync_runs).values(account_id=ACCOUNT, entity="x", started_at=datetime(2024, 3, 1))
        )


def test_invoice_local_time_and_offset_are_kept_as_given(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _insert_invoice(conn)
        row = conn.execute(sa.select(schema.invoices)).one()
    assert row.date_incoming == datetime(2024, 3, 1, 10, 15) and row.date_incoming.tzinfo is None
    assert row.date_incoming_offset == "+03:00"
    assert row.document_date == date(2024, 3, 1)
    assert row.is_deleted is False and row.deleted_at is None
    assert row.account_id == ACCOUNT


# -- constraints ------------------------------------------------------------------------------------------


def test_natural_key_is_unique_per_account_and_system(engine: sa.Engine) -> None:
    values = {"external_system": "iiko", "external_id": "3f08e41c-0000-4000-8000-00000000c001", "name": "ООО «Овощи»"}
    other = uuid.uuid4()
    with engine.begin() as conn:
        first = conn.execute(sa.insert(schema.suppliers).values(account_id=ACCOUNT, **values)).inserted_primary_key
        second = conn.execute(sa.insert(schema.suppliers).values(account_id=other, **values)).inserted_primary_key
        conn.execute(
            sa.insert(schema.suppliers).values(account_id=ACCOUNT, **{**values, "external_system": "r_keeper"})
        )
    assert first[0] >= 1 and second[0] == first[0] + 1  # surrogate ids autoincrement on both backends
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(schema.suppliers).values(account_id=ACCOUNT, **values))


def test_iiko_ids_must_be_lower_case(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.insert(schema.restaurants).values(
                account_id=ACCOUNT, external_system="iiko", external_id="6F1C2B1E-0000-4000-8000-000000000101"
            )
        )
    with engine.begin() as conn:  # other systems may have case-sensitive ids
        conn.execute(
            sa.insert(schema.restaurants).values(account_id=ACCOUNT, external_system="other_pos", external_id="AbC-1")
        )


def test_items_cascade_with_their_invoice_and_stores_are_set_null(engine: sa.Engine) -> None:
    """Foreign keys are enforced on SQLite too (PRAGMA foreign_keys=ON on every connection)."""
    with engine.begin() as conn:
        store_id = conn.execute(
            sa.insert(schema.stores)
            .values(account_id=ACCOUNT, external_system="iiko", external_id="1239d270-0000-4000-8000-00000000a001")
            .returning(schema.stores.c.id)
        ).scalar_one()
        invoice_id = _insert_invoice(conn)
        _insert_item(conn, invoice_id, 1, store_id=store_id)
        _insert_item(conn, invoice_id, 2)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        _insert_item(conn, invoice_id, 1)  # (invoice_id, line_number) is unique
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        _insert_item(conn, invoice_id + 1000, 1)  # no such invoice
    with engine.begin() as conn:
        conn.execute(sa.delete(schema.stores).where(schema.stores.c.id == store_id))
        assert conn.execute(sa.select(schema.invoice_items.c.store_id)).scalars().all() == [None, None]
        conn.execute(sa.delete(schema.invoices).where(schema.invoices.c.id == invoice_id))
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.invoice_items)).scalar_one() == 0


def test_sync_state_is_keyed_by_account_and_entity(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(schema.sync_state).values(account_id=ACCOUNT, entity="invoices", watermark=date(2024, 3, 1))
        )
        conn.execute(sa.insert(schema.sync_state).values(account_id=uuid.uuid4(), entity="invoices"))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(schema.sync_state).values(account_id=ACCOUNT, entity="invoices"))


def test_concurrent_migrations_do_not_race(db_url: str) -> None:
    """Several processes starting at once (Dagster run workers) may all call migrate() on a fresh DB."""
    import subprocess
    import sys

    code = "import sys; from iiko_pipeline.warehouse import migrate; print(migrate(sys.argv[1]))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for returncode, out, err in outcomes:
        assert returncode == 0, err.decode()
        assert out.decode().strip() == head_revision()
    eng = make_engine(db_url)
    try:
        assert _diffs(eng, schema.metadata) == []
    finally:
        eng.dispose()


def test_threads_may_migrate_concurrently(db_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    engines = [make_engine(db_url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            assert list(pool.map(migrate, engines)) == [head_revision()] * 3
    finally:
        for eng in engines:
            eng.dispose()
