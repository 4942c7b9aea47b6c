"""Connecting an account: prove the credentials by logging in (and out), then store them encrypted.

Failing credentials are never stored and never replace working ones: the account keeps syncing with what
worked until a login with the new credentials succeeds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from iiko_pipeline.core.failures import classify, describe
from iiko_pipeline.iiko import ClientSettings, IikoClient, RetryPolicy
from iiko_pipeline.iiko.hosts import resolve_base_url
from iiko_pipeline.warehouse.credentials import IIKO, normalise_base_url, save_credentials
from iiko_pipeline.warehouse.crypto import KeyRing
from iiko_pipeline.warehouse.settings import INTEGRATIONS_ENABLED_ENV, integrations_enabled

#: Why a credential that is not Unicode text is refused (the value itself is never shown).
UNICODE_TEXT_REASON = "must be valid Unicode text (it contains a lone surrogate, which cannot be encoded as UTF-8)"


def is_unicode_text(value: str) -> bool:
    """Whether the string encodes as UTF-8 (it does unless it holds a lone surrogate, e.g. JSON "\\ud800")."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class CredentialTextError(ValueError):
    """A user name or password that is not Unicode text; raised before any request, never showing the value."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} {UNICODE_TEXT_REASON}")
        self.field = field


def check_credential_text(username: str, password: str) -> None:
    """Raises `CredentialTextError` naming the first field (`username`, then `password`) that cannot be sent."""
    for field, value in (("username", username), ("password", password)):
        if not is_unicode_text(value):
            raise CredentialTextError(field)


class IntegrationsDisabledError(RuntimeError):
    def __init__(self) -> None:
        super().__init__(f"integrations are switched off ({INTEGRATIONS_ENABLED_ENV}=false); "
                         f"set {INTEGRATIONS_ENABLED_ENV}=true to connect accounts")


@dataclass
class ConnectResult:
    """Exactly the brief's connect response."""

    account_id: str
    is_connected: bool
    last_connected_at: str | None
    connection_error: str | None
    integration_type: str = IIKO
    # Why the login failed, as `core.failures.FailureKind` values plus "tls" (a transport failure in the TLS
    # handshake): for a page that puts the message next to the field at fault. Not part of the brief's answer.
    failure_kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "is_connected": self.is_connected,
                "last_connected_at": self.last_connected_at, "connection_error": self.connection_error,
                "integration_type": self.integration_type}


def failure_kind(exc: BaseException) -> str:
    """What failed a login, in the terms an operator acts on: `FailureKind` values, "module" (the API module is
    not licensed: a licence failure that waiting will not cure) or "tls"."""
    from iiko_pipeline.iiko.errors import IikoLicenceBlockedError, IikoTlsError

    if isinstance(exc, IikoTlsError):
        return "tls"
    if isinstance(exc, IikoLicenceBlockedError):
        return "module"
    return classify(exc).kind.value


def connect_account(engine: Engine, keyring: KeyRing, account_id: str, username: str, password: str,
                    base_url: str | None = None, *, verify_tls: bool | str = True, allow_http: bool = False,
                    settings: ClientSettings | None = None,
                    register_partition: Callable[[str], None] | None = None) -> ConnectResult:
    """Log in and out once; store the credentials only if that worked.

    `allow_http` is the account's explicit opt-in to plain http to a non-loopback host: the URL policy is checked
    with it, and it is stored with the credentials so that every sync checks the URL the same way.

    Raises `HostPolicyError` (no request made) when `base_url` is missing with no `IIKO_DEFAULT_BASE_URL`, or is
    refused by the URL policy (`iiko_pipeline.iiko.hosts`); `CredentialTextError` (no request made, nothing
    stored) when the user name or password is not Unicode text; `TypeError` when `allow_http` is not a bool."""
    if not integrations_enabled():
        raise IntegrationsDisabledError()
    if not isinstance(allow_http, bool):  # a string such as "false" must not count as an opt-in
        raise TypeError("allow_http must be a bool")
    account = str(uuid.UUID(str(account_id)))
    check_credential_text(username, password)
    # the URL policy first: a missing, plain-http or not-allowed server raises HostPolicyError before any request
    url = resolve_base_url(normalise_base_url(base_url), allow_http=allow_http)
    settings = settings or ClientSettings(connect_timeout=10.0, read_timeout=30.0,
                                          retry=RetryPolicy(max_attempts=2, max_total=20.0))
    ca_bundle = None
    if isinstance(verify_tls, str):  # a CA bundle: kept with the account, so its syncs verify the same way
        try:
            ca_bundle = Path(verify_tls).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"the CA bundle cannot be read ({type(exc).__name__}): give a PEM file") from None
    if verify_tls is not True:
        from dataclasses import replace

        settings = replace(settings, verify=verify_tls)
    try:
        with IikoClient(url, username, password, settings=settings):
            pass  # login on enter, logout on exit: the seat is freed at once
    except Exception as exc:
        return ConnectResult(account, False, None, describe(exc), failure_kind=failure_kind(exc))
    now = datetime.now(UTC)
    save_credentials(engine, keyring, account, IIKO, username, password, base_url=base_url,
                     verify_tls=verify_tls is not False, connected_at=now, ca_bundle=ca_bundle,
                     allow_http=allow_http)
    if register_partition is not None:
        register_partition(account)
    return ConnectResult(account, True, now.isoformat().replace("+00:00", "Z"), None)
