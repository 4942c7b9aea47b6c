"""Resources: the warehouse engine and, per run, one logged-in iiko client per account.

Secrets: only the master key is config, and it comes through `EnvVar` (resolved at run time, masked in the
UI). Per-account credentials are decrypted in memory inside `client_for`, right before login, and never leave
this process: not in metadata, tags, run config or logs.
"""


import os
import threading
import time
import uuid
from contextlib import ExitStack
from typing import Any

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from iiko_pipeline.core.seats import server_seat
from iiko_pipeline.defs.constants import ACCOUNT_TAG
from iiko_pipeline.defs.onboarding import IN_PROGRESS
from iiko_pipeline.iiko import ClientSettings, IikoClient, RetryPolicy
from iiko_pipeline.warehouse import crypto, run_locks, sessions
from iiko_pipeline.warehouse.credentials import load_credentials
from iiko_pipeline.warehouse.engine import make_engine
from iiko_pipeline.warehouse.migrate import migrate
from iiko_pipeline.warehouse.settings import database_url, default_base_url

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


def keyring_for(encryption_key: str) -> crypto.KeyRing:
    """The key ring of a resource's configured key (an `EnvVar`), with the previous keys and the legacy nonce
    from the environment as everywhere else."""
    return crypto.KeyRing.from_env({
        crypto.KEY_ENV: encryption_key,
        crypto.PREVIOUS_KEYS_ENV: os.environ.get(crypto.PREVIOUS_KEYS_ENV, ""),
        crypto.LEGACY_NONCE_ENV: os.environ.get(crypto.LEGACY_NONCE_ENV, ""),
    })


class WarehouseResource(dg.ConfigurableResource):
    """The SQL warehouse. Empty `database_url` means `DATABASE_URL`, else SQLite under DAGSTER_HOME."""

    database_url: str = ""

    def get_engine(self) -> Engine:
        return engine_for(self.database_url or database_url())


class IikoResource(dg.ConfigurableResource):
    """Hands out logged-in iiko clients for accounts; every client logs out when the run's step ends.

    One login per account per run (the in-process executor shares this resource across steps), because each
    login takes an API licence seat on the customer's server.
    """

    encryption_key: str
    warehouse: dg.ResourceDependency[WarehouseResource]
    integration_type: str = "iiko"
    escrow_sessions: bool = True  # keep the live token (encrypted) so a recovering process can free the seat
    seat_wait_seconds: float = 600.0  # how long a run waits for its server's licence seat (`core.seats`)
    connect_timeout: float = 15.0
    read_timeout: float = 300.0
    max_attempts: int = 4
    retry_base_delay: float = 0.5  # seconds before the first client retry; doubles (with jitter) after
    invoice_window_days: int = 7

    _stack: ExitStack | None = PrivateAttr(default=None)
    _clients: dict[str, IikoClient] = PrivateAttr(default_factory=dict)
    _run_id: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._stack = ExitStack()
        self._clients = {}
        self._run_id = context.run.run_id if context.run else None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()  # logs out every client, also after errors
        self._stack, self._clients = ExitStack(), {}

    def keyring(self) -> crypto.KeyRing:
        return keyring_for(self.encryption_key)

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
            base_url = creds.base_url or default_base_url()
            client = IikoClient(base_url, creds.username, creds.password, settings=settings,
                                on_token=self._escrow(account_id, base_url))
            # the server's seat first, so it is released after the logout (the stack unwinds in reverse)
            self._stack.enter_context(server_seat(self.warehouse.get_engine(), self.keyring(), base_url,
                                                  self._run_id or str(uuid.uuid4()),
                                                  wait_seconds=self.seat_wait_seconds))
            self._stack.enter_context(client)
            self._clients[account_id] = client
        return client


    def _escrow(self, account_id: str, base_url: str):
        """Keep the run's live token, encrypted and bound to the account, while it is logged in: if this process
        dies, whoever takes the account back logs it out (`core.recovery`) instead of leaving the customer's
        licence seat taken for an hour."""
        if not self.escrow_sessions or self._run_id is None:
            return None
        engine, keyring, run_id = self.warehouse.get_engine(), self.keyring(), self._run_id

        def on_token(token: str | None) -> None:
            if token is None:
                sessions.delete_session(engine, account_id, run_id)
            else:
                sessions.save_session(engine, keyring, account_id, run_id, base_url, token)

        return on_token


class AccountGuardResource(dg.ConfigurableResource):
    """Holds the account's run lock for the whole run (every run, however it was launched), so at most one sync
    of an account runs at a time across every process: API workers, the CLI, the daemon's run workers.

    A lock held by a dead run is taken back at once (its iiko seat freed, the run marked failed); one held by a
    live run is waited for up to `wait_seconds` (a scheduled run arriving during an API sync), then the run
    fails saying which run holds the account. A heartbeat keeps the lock fresh while the run works."""

    encryption_key: str
    warehouse: dg.ResourceDependency[WarehouseResource]
    wait_seconds: float = 600.0
    poll_seconds: float = 2.0

    _heartbeat: run_locks.Heartbeat | None = PrivateAttr(default=None)
    _held: tuple[str, str] | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.run
        if run is None or ACCOUNT_TAG not in run.tags:
            return  # not an account's run (a sensor tick, a freshness check)
        account, engine = run.tags[ACCOUNT_TAG], self.warehouse.get_engine()
        deadline = time.monotonic() + self.wait_seconds
        while True:
            holder = run_locks.acquire(engine, account, run.run_id)
            if holder is None:
                break
            if take_back_dead_run(context.instance, engine, self.keyring(), account):
                continue
            if time.monotonic() > deadline:
                raise dg.Failure(f"account {account} is busy: run {holder.run_id} ({holder.holder}) holds it; "
                                 f"waited {self.wait_seconds:.0f} s", allow_retries=False)
            time.sleep(self.poll_seconds)
        self._held = (account, run.run_id)
        self._heartbeat = run_locks.Heartbeat(engine, account, run.run_id)
        self._heartbeat.__enter__()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._heartbeat is not None:
            self._heartbeat.__exit__(None, None, None)
            self._heartbeat = None
        if self._held is not None:
            run_locks.release(self.warehouse.get_engine(), *self._held)
            self._held = None

    def keyring(self) -> crypto.KeyRing:
        return keyring_for(self.encryption_key)


def take_back_dead_run(instance: dg.DagsterInstance, engine: Engine, keyring: crypto.KeyRing, account: str, *,
                       dead_run_id: str | None = None) -> str | None:
    """`core.recovery.take_back`, plus marking the dead run failed in the instance (it never will itself)."""
    from iiko_pipeline.core.recovery import take_back

    dead = take_back(engine, keyring, account, dead_run_id=dead_run_id)
    if dead is None:
        return None
    run = instance.get_run_by_id(dead.run_id)
    if run is not None and run.status in IN_PROGRESS:
        instance.report_run_failed(run, message=(
            f"the run's process ({dead.holder}) died: last heartbeat {dead.heartbeat_at.isoformat()}; its account "
            f"lock and iiko licence seat were taken back by {run_locks.this_holder()}"))
    return dead.run_id


def _with_verify(settings: ClientSettings, verify: Any) -> ClientSettings:
    from dataclasses import replace

    return replace(settings, verify=verify)
