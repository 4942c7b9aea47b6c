"""Fixtures for the client tests: fast client settings and an HTTP handle on the emulator's control API.

The control API (`/_emulator/...`, JSON) is used instead of `emu.state` so that these tests would also run
against an emulator in another process; the root conftest's `emulator` fixture starts it in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from iiko_helpers import FAST_RETRY, Control

from iiko_pipeline.iiko import ClientSettings, IikoClient


@pytest.fixture
def control(emulator: Any) -> Iterator[Control]:
    ctl = Control(emulator.url)
    yield ctl
    ctl.close()


@pytest.fixture
def fast_settings() -> ClientSettings:
    return ClientSettings(connect_timeout=2.0, read_timeout=5.0, retry=FAST_RETRY)


@pytest.fixture
def make_client(emulator: Any, fast_settings: ClientSettings) -> Callable[..., IikoClient]:
    """`make_client(password=..., retry=..., read_timeout=...)`: a client for the emulator."""

    def factory(*, login: str | None = None, password: str | None = None, **overrides: Any) -> IikoClient:
        settings = ClientSettings(**{**fast_settings.__dict__, **overrides})
        return IikoClient(emulator.url, login or emulator.config.login,
                          emulator.config.password if password is None else password, settings=settings)

    return factory
