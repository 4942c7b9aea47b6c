"""Fixtures for end-to-end syncs: an emulator, a warehouse, a Dagster instance and a connected account."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from iiko_pipeline.warehouse.crypto import KeyRing, generate_key
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD, connect_settings


@dataclass
class Pipeline:
    """Everything one end-to-end test needs, wired the way production wires it."""

    emulator: object
    instance: dg.DagsterInstance
    engine: object
    keyring: KeyRing
    account_id: str
    dagster_home: Path
    key: str

    def connect(self, password: str = EMULATOR_PASSWORD, account_id: str | None = None,
                base_url: str | None = None):
        from iiko_pipeline.services.connect import connect_account

        account = account_id or self.account_id
        return connect_account(
            self.engine, self.keyring, account, EMULATOR_LOGIN, password, base_url or self.emulator.url,
            settings=connect_settings(),
            register_partition=lambda a: self.instance.add_dynamic_partitions("accounts", [a]))

    def sync(self, entities=("restaurants", "stores", "suppliers", "invoices"), **window):
        from iiko_pipeline.services.run_config import invoice_run_config
        from iiko_pipeline.services.sync import run_account_sync

        return run_account_sync(self.instance, self.account_id, list(entities),
                                run_config=invoice_run_config(**window))


def _pipeline(emulator, monkeypatch, tmp_path: Path, db_url: str,
              instance_overrides: dict | None) -> Iterator[Pipeline]:
    from iiko_pipeline.warehouse.migrate import migrated_engine as engine_for

    key = generate_key()
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("CREDENTIAL_ENCRYPTION_KEY", key)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.instance_for_test(temp_dir=str(home), overrides=instance_overrides) as instance:
        yield Pipeline(emulator=emulator, instance=instance, engine=engine_for(db_url),
                       keyring=KeyRing.from_env(), account_id=str(uuid.uuid4()), dagster_home=home, key=key)


@pytest.fixture
def pipeline(emulator, monkeypatch, tmp_path, db_url) -> Iterator[Pipeline]:
    """Warehouse on SQLite and on PostgreSQL; the Dagster instance on SQLite (the embedded default)."""
    yield from _pipeline(emulator, monkeypatch, tmp_path, db_url, None)


@pytest.fixture
def pg_pipeline(emulator, monkeypatch, tmp_path, pg_url) -> Iterator[Pipeline]:
    """Production shape: both the warehouse and the Dagster instance on PostgreSQL."""
    overrides = {"storage": {"postgres": {"postgres_url": pg_url}}}
    yield from _pipeline(emulator, monkeypatch, tmp_path, pg_url, overrides)


@pytest.fixture
def home(tmp_path, monkeypatch, db_url) -> Path:
    """For tests that drive the command line: an instance as `make demo` makes it (the shipped dagster.yaml), a
    warehouse, a key, all in the environment the command line and the runs' processes inherit."""
    folder = tmp_path / "dagster_home"
    folder.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "dagster_home" / "dagster.yaml", folder / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(folder))
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("CREDENTIAL_ENCRYPTION_KEY", generate_key())
    monkeypatch.setenv("IIKO_STEP_RETRY_DELAY_SECONDS", "0.2")
    dg.DagsterInstance.get().dispose()  # created once, before any process races to create it
    return folder
