"""Settings and engines: DATABASE_URL handling, the INTEGRATIONS_ENABLED switch, SQLite pragmas, layering."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from iiko_pipeline.warehouse import database_url, integrations_enabled, make_engine
from iiko_pipeline.warehouse.engine import SQLITE_BEGIN_IMMEDIATE
from iiko_pipeline.warehouse.settings import normalise_database_url


def test_database_url_defaults_to_sqlite_under_dagster_home(tmp_path: Path) -> None:
    assert database_url({"DAGSTER_HOME": str(tmp_path)}) == f"sqlite:///{tmp_path}/warehouse.db"


def test_database_url_without_dagster_home_uses_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert database_url({}) == f"sqlite:///{tmp_path}/dagster_home/warehouse.db"
    assert database_url({"DAGSTER_HOME": "", "DATABASE_URL": "  "}) == database_url({})


def test_database_url_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db:5432/wh")
    assert database_url() == "postgresql+psycopg2://u:p@db:5432/wh"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg2://u@h/db"),
        (" postgresql://u@h/db\n", "postgresql+psycopg2://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_normalise_database_url(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("", True), ("True", True), ("TRUE", True), ("1", True), ("yes", True), (" Yes ", True),
     ("False", False), ("false", False), ("0", False), ("NO", False)],
)
def test_integrations_enabled(value: str | None, expected: bool) -> None:
    env = {} if value is None else {"INTEGRATIONS_ENABLED": value}
    assert integrations_enabled(env) is expected


@pytest.mark.parametrize("value", ["flase", "on", "2", "enabled"])
def test_integrations_enabled_rejects_anything_else(value: str) -> None:
    with pytest.raises(ValueError, match="INTEGRATIONS_ENABLED"):
        integrations_enabled({"INTEGRATIONS_ENABLED": value})


def test_sqlite_engine_pragmas_and_parent_directory(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/nested/dir/warehouse.db")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert (tmp_path / "nested" / "dir" / "warehouse.db").exists()
    finally:
        engine.dispose()


def test_sqlite_transactions_are_real(sqlite_url: str) -> None:
    """Reads and writes share one transaction; rollbacks and savepoints work (pysqlite alone breaks both)."""
    engine = make_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with engine.connect() as conn:
            with conn.begin():
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
                with conn.begin_nested() as sp:
                    conn.exec_driver_sql("INSERT INTO t VALUES (2)")
                    sp.rollback()
            trans = conn.begin()
            conn.exec_driver_sql("SELECT count(*) FROM t").scalar()
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
            conn.exec_driver_sql("INSERT INTO t VALUES (3)")
            trans.rollback()
            assert conn.exec_driver_sql("SELECT x FROM t").scalars().all() == [1]
        with engine.connect().execution_options(**{SQLITE_BEGIN_IMMEDIATE: True}) as conn, conn.begin():
            conn.exec_driver_sql("INSERT INTO t VALUES (4)")
    finally:
        engine.dispose()


def test_in_memory_sqlite_works() -> None:
    engine = make_engine("sqlite://")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


@pytest.mark.postgres
def test_bare_postgresql_url_uses_psycopg2(pg_url: str) -> None:
    bare = pg_url.replace("postgresql+psycopg2://", "postgresql://")
    engine = make_engine(bare)
    try:
        assert engine.dialect.driver == "psycopg2"
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar() == 1
    finally:
        engine.dispose()


def test_warehouse_never_imports_dagster_or_requests() -> None:
    code = (
        "import sys, iiko_pipeline.warehouse, iiko_pipeline.warehouse.migrate;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'dagster', 'requests'});"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
