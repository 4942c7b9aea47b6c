"""Fixtures for the emulator tests (helpers live in emulator_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from emulator_helpers import EMULATOR_LOGIN, EMULATOR_PASSWORD, Api

from iiko_pipeline.emulator import EmulatorConfig, EmulatorServer


@pytest.fixture
def api(emulator: EmulatorServer) -> Api:
    return Api(emulator)


@pytest.fixture
def token(api: Api) -> Iterator[str]:
    tok = api.login()
    yield tok
    api.logout(tok)


@pytest.fixture
def make_emulator() -> Callable[..., AbstractContextManager[EmulatorServer]]:
    """Start an emulator with custom settings: `with make_emulator(seats=2) as emu: ...`."""

    @contextmanager
    def factory(**overrides: Any) -> Iterator[EmulatorServer]:
        settings: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "login": EMULATOR_LOGIN,
                                    "password": EMULATOR_PASSWORD, "seed": 7, "scale": "tiny"}
        settings.update(overrides)
        with EmulatorServer(EmulatorConfig(**settings)) as emu:
            yield emu

    return factory
