"""Fixtures for the HTTP API: the emulator behind it, a real warehouse (SQLite and PostgreSQL), a Dagster test
instance, and the app served by uvicorn on a free localhost port, called with `requests`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests

from iiko_pipeline.warehouse.crypto import KeyRing, generate_key
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD, connect_settings

TOKEN = "api-test-token-0123456789abcdef"
PREFIX = "/api/v1/accounts/{account}/integrations/iiko"
_DEFAULT = object()


@dataclass
class Api:
    """A running API and everything behind it, wired the way `iiko-pipeline api` wires it."""

    url: str
    emulator: Any
    instance: dg.DagsterInstance
    engine: Any
    keyring: KeyRing
    account_id: str
    dagster_home: Path
    token: str = TOKEN
    http: requests.Session = field(default_factory=requests.Session)

    def path(self, suffix: str = "", account: str | None = None) -> str:
        return self.url + PREFIX.format(account=account or self.account_id) + suffix

    def request(self, method: str, url: str, *, token: Any = _DEFAULT, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        token = self.token if token is _DEFAULT else token
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        return self.http.request(method, url, headers=headers, timeout=120, **kwargs)

    def brief_connect_body(self) -> dict[str, str]:
        """The brief's connect request body, pointed at the emulator."""
        return {"username": EMULATOR_LOGIN, "password": EMULATOR_PASSWORD, "base_url": self.emulator.url}

    def connect(self, body: Any = _DEFAULT, account: str | None = None, **kwargs: Any) -> requests.Response:
        body = self.brief_connect_body() if body is _DEFAULT else body
        return self.request("POST", self.path("/connect", account), json=body, **kwargs)

    def sync(self, entity: str, account: str | None = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", self.path(f"/sync/{entity}", account), **kwargs)

    def status(self, account: str | None = None, **kwargs: Any) -> requests.Response:
        return self.request("GET", self.path("", account), **kwargs)

    def disconnect(self, account: str | None = None, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", self.path("", account), **kwargs)

    def stored_accounts(self) -> list[str]:
        from iiko_pipeline.warehouse.credentials import list_accounts

        return [str(a.account_id) for a in list_accounts(self.engine)]

    def assert_nothing_stored(self) -> None:
        assert self.stored_accounts() == []
        assert self.instance.get_dynamic_partitions("accounts") == []
        assert self.instance.get_runs() == []
        assert self.emulator.state.log.summary()["logins"] == 0


@dataclass
class Backend:
    emulator: Any
    instance: dg.DagsterInstance
    engine: Any
    keyring: KeyRing
    dagster_home: Path
    db_url: str


def _backend(emulator, monkeypatch, tmp_path: Path, db_url: str, overrides: dict | None) -> Iterator[Backend]:
    from iiko_pipeline.warehouse.migrate import migrated_engine as engine_for

    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("CREDENTIAL_ENCRYPTION_KEY", generate_key())
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("INTEGRATIONS_ENABLED", raising=False)
    with dg.instance_for_test(temp_dir=str(home), overrides=overrides) as instance:
        yield Backend(emulator, instance, engine_for(db_url), KeyRing.from_env(), home, db_url)


def serve(backend: Backend, **app_kwargs: Any) -> Iterator[Api]:
    from iiko_pipeline.api import ApiServer, create_app

    app_kwargs.setdefault("api_token", TOKEN)
    app_kwargs.setdefault("connect_settings", connect_settings())
    app = create_app(instance=backend.instance, engine=backend.engine, keyring=backend.keyring, **app_kwargs)
    with ApiServer(app) as server:
        api = Api(url=server.url, emulator=backend.emulator, instance=backend.instance, engine=backend.engine,
                  keyring=backend.keyring, account_id=str(uuid.uuid4()), dagster_home=backend.dagster_home,
                  token=app_kwargs["api_token"] or "")
        try:
            yield api
        finally:
            api.http.close()


@pytest.fixture
def backend(emulator, monkeypatch, tmp_path, db_url) -> Iterator[Backend]:
    """Warehouse on SQLite and on PostgreSQL; the Dagster instance on SQLite (the embedded default)."""
    yield from _backend(emulator, monkeypatch, tmp_path, db_url, None)


@pytest.fixture
def api(backend) -> Iterator[Api]:
    yield from serve(backend)


@pytest.fixture
def pg_api(emulator, monkeypatch, tmp_path, pg_url) -> Iterator[Api]:
    """Production shape: the warehouse and the Dagster instance both on PostgreSQL."""
    overrides = {"storage": {"postgres": {"postgres_url": pg_url}}}
    for backend in _backend(emulator, monkeypatch, tmp_path, pg_url, overrides):
        yield from serve(backend)


@pytest.fixture
def logs(caplog) -> pytest.LogCaptureFixture:
    """Every log record of the process (API, uvicorn, Dagster, client), for leak checks."""
    import logging

    caplog.set_level(logging.DEBUG)
    return caplog


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        if record.exc_text:
            lines.append(record.exc_text)
    return "\n".join(lines)
