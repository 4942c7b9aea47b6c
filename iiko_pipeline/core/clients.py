"""The logged-in iiko clients of one run: one login per account, each inside its server's licence seat.

Each login takes an API licence seat on the customer's server, so a run logs in once per account and shares the
client across its steps. Credentials are decrypted in memory right before login and never leave this process.
While a client is logged in, its live token is kept in escrow (encrypted, bound to the account): if the process
dies, whoever takes the account back logs that token out (`core.recovery`) instead of leaving the seat taken
for an hour. `close()` logs every client out, then releases the seats (an ExitStack unwinds in reverse).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace

from sqlalchemy.engine import Engine

from iiko_pipeline.core.failures import FailureKind, SyncFailure
from iiko_pipeline.core.seats import DEFAULT_WAIT_SECONDS, server_seat
from iiko_pipeline.iiko import ClientSettings, IikoClient
from iiko_pipeline.iiko.hosts import HostPolicyError, resolve_base_url
from iiko_pipeline.warehouse import sessions
from iiko_pipeline.warehouse.credentials import Credentials, load_credentials
from iiko_pipeline.warehouse.crypto import KeyRing


class RunClients:
    """`client_for(account)` logs in on first use; `close()` ends every session of the run."""

    def __init__(self, engine: Engine, keyring: KeyRing, settings: ClientSettings, run_id: str | None, *,
                 integration_type: str = "iiko", escrow: bool = True,
                 seat_wait_seconds: float = DEFAULT_WAIT_SECONDS) -> None:
        self.engine, self.keyring, self.settings = engine, keyring, settings
        self.run_id, self.integration_type = run_id, integration_type
        self.escrow, self.seat_wait_seconds = escrow and run_id is not None, seat_wait_seconds
        self._stack = ExitStack()
        self._clients: dict[str, IikoClient] = {}

    def client_for(self, account_id: str) -> IikoClient:
        client = self._clients.get(account_id)
        if client is None:
            creds = load_credentials(self.engine, self.keyring, account_id, self.integration_type)
            try:  # checked again at every run (with the account's stored opt-in to plain http): the default,
                # IIKO_ALLOW_HTTP or the allow-list may have changed since connect
                base_url = resolve_base_url(creds.base_url, allow_http=creds.allow_http)
            except HostPolicyError as exc:
                raise SyncFailure(FailureKind.CONFIG, f"account {account_id}: {exc}",
                                  iiko_error=type(exc).__name__) from None
            client = IikoClient(base_url, creds.username, creds.password,
                                settings=replace(self.settings, verify=self._verify(creds)),
                                on_token=self._escrow(account_id, base_url))
            # the server's seat first, so it is released after the logout
            self._stack.enter_context(server_seat(self.engine, self.keyring, base_url,
                                                  self.run_id or str(uuid.uuid4()),
                                                  wait_seconds=self.seat_wait_seconds))
            self._stack.enter_context(client)
            self._clients[account_id] = client
        return client

    def _verify(self, creds: Credentials) -> bool | str:
        """What TLS verifies against: the account's own CA bundle (written to a private file for the run,
        removed after it), the system CAs, or nothing when the operator turned verification off."""
        if not creds.ca_bundle:
            return creds.verify_tls
        fd, path = tempfile.mkstemp(prefix="iiko-ca-", suffix=".pem")  # mode 0600
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(creds.ca_bundle)
        self._stack.callback(os.unlink, path)  # registered before the client: removed after its logout
        return path

    def close(self) -> None:
        try:
            self._stack.close()  # logs out every client, also after errors
        finally:
            self._stack, self._clients = ExitStack(), {}

    def _escrow(self, account_id: str, base_url: str) -> Callable[[str | None], None] | None:
        if not self.escrow:
            return None
        engine, keyring, run_id = self.engine, self.keyring, str(self.run_id)

        def on_token(token: str | None) -> None:
            if token is None:
                sessions.delete_session(engine, account_id, run_id)
            else:
                sessions.save_session(engine, keyring, account_id, run_id, base_url, token)

        return on_token
