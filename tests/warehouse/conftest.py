"""Fixtures for the warehouse tests: migrated engines on SQLite and PostgreSQL, and fixed test keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from warehouse_testlib import KEY_A

from iiko_pipeline.warehouse import KeyRing, make_engine, migrate


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """A migrated warehouse on SQLite and (second parametrisation) on PostgreSQL."""
    eng = make_engine(db_url)
    migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def keyring_a() -> KeyRing:
    return KeyRing.from_keys(KEY_A)
