"""Fixtures for the core tests: one account, a fresh migrated warehouse (SQLite and PostgreSQL), a logged-in
client on the emulator. No Dagster instance anywhere: these run in `make test-fast`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from core_helpers import CoreSync

from iiko_pipeline.emulator import EmulatorServer
from iiko_pipeline.iiko import ClientSettings, IikoClient, RetryPolicy
from iiko_pipeline.warehouse.engine import make_engine
from iiko_pipeline.warehouse.migrate import migrate
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD

#: No client retries: an injected fault reaches the core at once (the step retries are Dagster's, not ours). The
#: base delay only sets the pause before a refused login is checked again (4 x base_delay): short, for a test.
SETTINGS = ClientSettings(connect_timeout=5.0, read_timeout=30.0, retry=RetryPolicy(max_attempts=1, base_delay=0.01))


@pytest.fixture
def core(emulator: EmulatorServer, db_url: str, tmp_path: Path) -> Iterator[CoreSync]:
    """An account to sync, nothing synced yet (reference data included)."""
    engine = make_engine(db_url)
    migrate(engine)
    try:
        with IikoClient(emulator.url, EMULATOR_LOGIN, EMULATOR_PASSWORD, settings=SETTINGS) as client:
            yield CoreSync(emulator, engine, client, tmp_path, date.today())
    finally:
        engine.dispose()


@pytest.fixture
def synced(core: CoreSync) -> CoreSync:
    """The account with its reference data synced (invoices reference stores and suppliers)."""
    core.reference()
    return core
