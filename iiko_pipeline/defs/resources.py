"""Resources: the warehouse engine, the run's iiko clients (`core.clients`) and the account's lock (`core.recovery`).

Secrets: only the master key is config, and it comes through `EnvVar` (resolved at run time, masked in the
UI). Per-account credentials are decrypted in memory right before login and never leave the run's process:
not in metadata, tags, run config or logs.
"""

from contextlib import ExitStack

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from iiko_pipeline.core.clients import RunClients
from iiko_pipeline.core.failures import FailureKind, SyncFailure
from iiko_pipeline.core.recovery import hold_account, take_back
from iiko_pipeline.defs.constants import ACCOUNT_TAG
from iiko_pipeline.defs.onboarding import IN_PROGRESS
from iiko_pipeline.iiko import ClientSettings, IikoClient, RetryPolicy
from iiko_pipeline.instance_connections import hold_connections
from iiko_pipeline.warehouse import crypto, run_locks
from iiko_pipeline.warehouse.migrate import migrated_engine
from iiko_pipeline.warehouse.settings import INTEGRATIONS_ENABLED_ENV, database_url, integrations_enabled


class WarehouseResource(dg.ConfigurableResource):
    """The SQL warehouse. Empty `database_url` means `DATABASE_URL`, else SQLite under DAGSTER_HOME."""

    database_url: str = ""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Every run's process initialises this resource, whoever launched it (the daemon's run launcher, our
        # runner, a test): the place to let its instance hold its database connections (see
        # `iiko_pipeline.instance_connections`).
        if context.run is not None and context.instance is not None:
            hold_connections(context.instance)

    def get_engine(self) -> Engine:
        return migrated_engine(self.database_url or database_url())


class IikoResource(dg.ConfigurableResource):
    """Logged-in iiko clients for the run's accounts (one login, one licence seat per account per run: the
    in-process executor shares this resource across steps); every client logs out when the run ends."""

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

    _clients: RunClients | None = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_id = context.run.run_id if context.run else None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        if self._clients is not None:
            self._clients.close()

    def keyring(self) -> crypto.KeyRing:
        return crypto.KeyRing.with_key(self.encryption_key)

    def settings(self) -> ClientSettings:
        return ClientSettings(connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                              retry=RetryPolicy(max_attempts=self.max_attempts, base_delay=self.retry_base_delay),
                              invoice_window_days=self.invoice_window_days)

    def client_for(self, account_id: str) -> IikoClient:
        if not integrations_enabled():  # the one place every run (schedule, sensor, CLI, API, UI) logs in
            raise SyncFailure(FailureKind.CONFIG, f"{INTEGRATIONS_ENABLED_ENV} is false: integrations are switched "
                                                  "off for this deployment; nothing was sent to iiko")
        if self._clients is None:
            self._clients = RunClients(self.warehouse.get_engine(), self.keyring(), self.settings(), self._run_id,
                                       integration_type=self.integration_type, escrow=self.escrow_sessions,
                                       seat_wait_seconds=self.seat_wait_seconds)
        return self._clients.client_for(account_id)


class AccountGuardResource(dg.ConfigurableResource):
    """Holds the account's run lock for the whole run (every run, however it was launched), so at most one sync
    of an account runs at a time across every process: API workers, the CLI, the daemon's run workers. A run
    whose account a dead run held takes it back (and marks that run failed); a live holder is waited for up to
    `wait_seconds`, then the run fails naming it (`core.recovery.hold_account`)."""

    encryption_key: str
    warehouse: dg.ResourceDependency[WarehouseResource]
    wait_seconds: float = 600.0
    poll_seconds: float = 2.0

    _stack: ExitStack | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.run
        if run is None or ACCOUNT_TAG not in run.tags:
            return  # not an account's run (a sensor tick, a freshness check)
        self._stack = ExitStack()
        try:
            self._stack.enter_context(hold_account(
                self.warehouse.get_engine(), self.keyring(), run.tags[ACCOUNT_TAG], run.run_id,
                wait_seconds=self.wait_seconds, poll_seconds=self.poll_seconds,
                on_taken_back=lambda dead: mark_dead_run_failed(context.instance, dead)))
        except SyncFailure as failure:
            raise dg.Failure(failure.reason, allow_retries=False) from None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def keyring(self) -> crypto.KeyRing:
        return crypto.KeyRing.with_key(self.encryption_key)


def end_dead_run(instance: dg.DagsterInstance, run: dg.DagsterRun, message: str) -> None:
    """Mark a run whose process died as failed and give back any pool slots it held.

    Our steps sit in no pool (licence seats are per server, in the warehouse), but a pool an operator adds would
    keep the slot of a process killed inside its step until the daemon's run monitoring frees it, and without a
    daemon (the embedded default) for ever. We know the process is dead (its lock was taken back, or we saw it
    exit), so its slots go back now."""
    if run.status in IN_PROGRESS:
        instance.report_run_failed(run, message=message)
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def mark_dead_run_failed(instance: dg.DagsterInstance, dead: run_locks.LockHolder) -> None:
    """The instance's side of taking an account back: the dead run never ends itself, so end it, saying why."""
    run = instance.get_run_by_id(dead.run_id)
    if run is not None:
        end_dead_run(instance, run, message=(
            f"the run's process ({dead.holder}) died: last heartbeat {dead.heartbeat_at.isoformat()}; its account "
            f"lock and iiko licence seat were taken back by {run_locks.this_holder()}"))


def take_back_dead_run(instance: dg.DagsterInstance, engine: Engine, keyring: crypto.KeyRing, account: str, *,
                       dead_run_id: str | None = None) -> str | None:
    """`core.recovery.take_back`, plus marking the dead run failed in the instance; returns its run id."""
    dead = take_back(engine, keyring, account, dead_run_id=dead_run_id)
    if dead is None:
        return None
    mark_dead_run_failed(instance, dead)
    return dead.run_id
