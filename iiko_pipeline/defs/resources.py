"""Resources: the warehouse engine and, per run, one logged-in iiko client per account.

Secrets: only the master key is config, and it comes through `EnvVar` (resolved at run time, masked in the
UI). Per-account credentials are decrypted in memory inside `client_for`, right before login, and never leave
this process: not in metadata, tags, run config or logs.
"""


import os
import threading
from contextlib import ExitStack
from typing import Any

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from iiko_pipeline.iiko import ClientSettings, IikoClient, RetryPolicy
from iiko_pipeline.warehouse import crypto
from iiko_pipeline.warehouse.credentials import load_credentials
from iiko_pipeline.warehouse.engine import make_engine
from iiko_pipeline.warehouse.migrate import migrate
from iiko_pipeline.warehouse.settings import database_url

DEFAULT_IIKO_BASE_URL = "https://your-iiko-instance.iiko.it"


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """One migrated engine per URL per process (resources are re-created per run; pools should not be)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = make_engine(url)
            migrate(engine)  # idempotent: a fresh instance works without a separate setup step
            _ENGINES[url] = engine
        return engine


class WarehouseResource(dg.ConfigurableResource):
    """The SQL warehouse. Empty `database_url` means `DATABASE_URL`, else SQLite under DAGSTER_HOME."""

    database_url: str = ""

    def get_engine(self) -> Engine:
        return engine_for(self.database_url or database_url())

    @property
    def url_for_display(self) -> str:
        return self.get_engine().url.render_as_string(hide_password=True)


class IikoResource(dg.ConfigurableResource):
    """Hands out logged-in iiko clients for accounts; every client logs out when the run's step ends.

    One login per account per run (the in-process executor shares this resource across steps), because each
    login takes an API licence seat on the customer's server.
    """

    encryption_key: str
    warehouse: dg.ResourceDependency[WarehouseResource]
    integration_type: str = "iiko"
    connect_timeout: float = 15.0
    read_timeout: float = 300.0
    max_attempts: int = 4
    retry_base_delay: float = 0.5  # seconds before the first client retry; doubles (with jitter) after
    invoice_window_days: int = 7

    _stack: ExitStack | None = PrivateAttr(default=None)
    _clients: dict[str, IikoClient] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._stack = ExitStack()
        self._clients = {}

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()  # logs out every client, also after errors
        self._stack, self._clients = ExitStack(), {}

    def keyring(self) -> crypto.KeyRing:
        environ = {
            crypto.KEY_ENV: self.encryption_key,
            crypto.PREVIOUS_KEYS_ENV: os.environ.get(crypto.PREVIOUS_KEYS_ENV, ""),
            crypto.LEGACY_NONCE_ENV: os.environ.get(crypto.LEGACY_NONCE_ENV, ""),
        }
        return crypto.KeyRing.from_env(environ)

    def settings(self) -> ClientSettings:
        return ClientSettings(connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                              retry=RetryPolicy(max_attempts=self.max_attempts, base_delay=self.retry_base_delay),
                              invoice_window_days=self.invoice_window_days)

    def client_for(self, account_id: str) -> IikoClient:
        if self._stack is None:
            self._stack = ExitStack()
        client = self._clients.get(account_id)
        if client is None:
            creds = load_credentials(self.warehouse.get_engine(), self.keyring(), account_id, self.integration_type)
            settings = self.settings()
            settings = _with_verify(settings, creds.verify_tls)
            client = IikoClient(creds.base_url or DEFAULT_IIKO_BASE_URL, creds.username, creds.password,
                                settings=settings)
            self._stack.enter_context(client)
            self._clients[account_id] = client
        return client


def _with_verify(settings: ClientSettings, verify: Any) -> ClientSettings:
    from dataclasses import replace

    return replace(settings, verify=verify)
