"""Fixtures for the warehouse tests: migrated engines on SQLite and PostgreSQL, and fixed test keys."""

from __future__ import annotations

import pytest
from warehouse_testlib import KEY_A

from iiko_pipeline.warehouse import KeyRing


@pytest.fixture
def keyring_a() -> KeyRing:
    return KeyRing.from_keys(KEY_A)
