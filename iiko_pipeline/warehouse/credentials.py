"""Repository over ``account_integration_credentials``: encrypted per-account integration logins.

Rules this module keeps:

- The username and password live only inside one encrypted envelope (JSON ``{"username", "password"}``);
  no column ever holds either, nor the SHA-1 iiko logs in with.
- Status updates (:func:`mark_connection`) never read or rewrite the ciphertext.
- Deleting credentials disconnects an account but keeps its synced rows (the platform still reads them).
- :func:`rotate_keys` rewrites every row under the current key in one transaction, so it either finishes
  or changes nothing, and afterwards old keys and the legacy nonce can be removed from the environment.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .crypto import CredentialDecryptError, KeyRing, account_uuid
from .engine import insert_for, write_transaction
from .schema import IIKO
from .schema import account_integration_credentials as creds_table
from .sqltypes import utcnow

logger = logging.getLogger(__name__)

#: Stored connection errors are truncated: they are for humans, and an unbounded server reply is not.
MAX_ERROR_CHARS = 2000


class CredentialsNotFoundError(LookupError):
    """No credentials are stored for this account and integration."""


@dataclass(frozen=True)
class Credentials:
    """Decrypted credentials, held in memory only for the run that logs in.

    ``repr``/``str`` mask the password, so logging the object or a traceback showing it leaks nothing.
    ``base_url`` None means "use the integration's default server URL". ``allow_http`` is the account's explicit
    opt-in to plain http to a non-loopback host, which the URL policy (``iiko_pipeline.iiko.hosts``) checks.
    """

    username: str
    password: str
    base_url: str | None = None
    verify_tls: bool = True
    ca_bundle: str | None = None  # PEM text of the CAs to verify the server against, instead of the system's
    allow_http: bool = False

    def __repr__(self) -> str:
        return (
            f"Credentials(username={self.username!r}, password='***', base_url={self.base_url!r}, "
            f"verify_tls={self.verify_tls!r}, ca_bundle={'PEM' if self.ca_bundle else None}, "
            f"allow_http={self.allow_http!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class AccountStatus:
    """One connected (or once-connected) account, without any secret."""

    account_id: uuid.UUID
    integration_type: str
    base_url: str | None
    verify_tls: bool
    allow_http: bool
    is_connected: bool
    last_connected_at: datetime | None
    connection_error: str | None
    key_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RotationReport:
    """What :func:`rotate_keys` did. The three counts are disjoint and sum to the number of rows.

    ``rewritten``: v1 rows moved from a previous key; ``already_current``: untouched; ``legacy_migrated``:
    fixed-nonce rows rewritten as v1 envelopes. ``legacy_key_is_current`` warns that legacy rows were
    under the current key, whose GCM hash key must be assumed leaked: rotate again to a new key.
    """

    rewritten: int
    already_current: int
    legacy_migrated: int
    current_key_id: str = ""
    legacy_key_is_current: bool = False

    @property
    def total(self) -> int:
        return self.rewritten + self.already_current + self.legacy_migrated


def normalise_base_url(base_url: str | None) -> str | None:
    """Validate a server URL and strip what the iiko client appends itself.

    Users paste ``https://host/resto/api/`` as often as ``https://host``; the client adds ``/resto/api``,
    so a trailing ``/resto/api`` or ``/resto`` and slashes are removed. Only http(s) URLs with a host pass.
    """
    if base_url is None or not base_url.strip():
        return None
    url = base_url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if parts.username or parts.password:
        raise ValueError("base_url must not contain a user name or password")
    if parts.query or parts.fragment:
        raise ValueError(f"base_url must not contain a query or fragment, got {base_url!r}")
    url = url.rstrip("/")
    for suffix in ("/resto/api", "/resto"):
        if url.lower().endswith(suffix):
            url = url[: -len(suffix)]
            break
    return url.rstrip("/")


def _encode_secret(username: str, password: str) -> bytes:
    if not isinstance(username, str) or not username:
        raise ValueError("username must be a non-empty string")
    if not isinstance(password, str) or not password:
        raise ValueError("password must be a non-empty string")
    return json.dumps({"username": username, "password": password}, ensure_ascii=False).encode("utf-8")


def _decode_secret(plaintext: bytes, account: uuid.UUID, integration_type: str) -> tuple[str, str]:
    try:
        data = json.loads(plaintext.decode("utf-8"))
        username, password = data["username"], data["password"]
        if not isinstance(username, str) or not isinstance(password, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise CredentialDecryptError(
            f"credentials of account {account} ({integration_type}) decrypted, but are not a JSON object "
            "with string username and password"
        ) from None
    return username, password


def save_credentials(
    engine: Engine,
    keyring: KeyRing,
    account_id: uuid.UUID | str,
    integration_type: str,
    username: str,
    password: str,
    base_url: str | None = None,
    verify_tls: bool = True,
    connected_at: datetime | None = None,
    ca_bundle: str | None = None,
    allow_http: bool = False,
) -> None:
    """Store (insert or replace) one account's credentials, encrypted under the current key.

    ``connected_at`` is the time a login with these credentials succeeded: given, the row is marked
    connected; None (saved without checking), it is marked not connected. Either way an old connection
    error is cleared, since it was about the old credentials. ``allow_http`` (the account's opt-in to plain
    http) is replaced with the rest: it belongs to the URL these credentials were checked against.
    """
    account = account_uuid(account_id)
    envelope = keyring.seal(account, integration_type, _encode_secret(username, password))
    now = utcnow()
    values: dict[str, Any] = {
        "credentials_ciphertext": envelope,
        "key_id": keyring.current_key_id,
        "base_url": normalise_base_url(base_url),
        "verify_tls": bool(verify_tls),
        "ca_bundle": ca_bundle,
        "allow_http": bool(allow_http),
        "is_connected": connected_at is not None,
        "connection_error": None,
        "updated_at": now,
    }
    if connected_at is not None:
        values["last_connected_at"] = connected_at
    with engine.begin() as conn:
        insert = insert_for(conn)
        stmt = insert(creds_table).values(
            account_id=account, integration_type=integration_type, created_at=now, **values
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[creds_table.c.account_id, creds_table.c.integration_type],
            set_={name: stmt.excluded[name] for name in values},
        )
        conn.execute(stmt)


def load_credentials(
    engine: Engine, keyring: KeyRing, account_id: uuid.UUID | str, integration_type: str
) -> Credentials:
    """Decrypt one account's credentials (in memory only). Raises :class:`CredentialsNotFoundError`."""
    account = account_uuid(account_id)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(
                creds_table.c.credentials_ciphertext, creds_table.c.base_url, creds_table.c.verify_tls,
                creds_table.c.ca_bundle, creds_table.c.allow_http,
            ).where(creds_table.c.account_id == account, creds_table.c.integration_type == integration_type)
        ).one_or_none()
    if row is None:
        raise CredentialsNotFoundError(f"no {integration_type} credentials stored for account {account}")
    plaintext = keyring.open(account, integration_type, row.credentials_ciphertext)
    username, password = _decode_secret(plaintext, account, integration_type)
    return Credentials(username=username, password=password, base_url=row.base_url, verify_tls=row.verify_tls,
                       ca_bundle=row.ca_bundle, allow_http=row.allow_http)


def mark_connection(
    engine: Engine,
    account_id: uuid.UUID | str,
    integration_type: str,
    is_connected: bool,
    error: str | None = None,
    at: datetime | None = None,
) -> None:
    """Record the outcome of a login attempt; never touches the ciphertext.

    A success sets ``last_connected_at`` (to ``at``, default now) and clears the error; a failure keeps
    the last successful time and stores ``error`` (truncated; callers must not put secrets in it).
    """
    account = account_uuid(account_id)
    when = at or utcnow()
    values: dict[str, Any] = {"is_connected": bool(is_connected), "updated_at": utcnow()}
    if is_connected:
        values.update(last_connected_at=when, connection_error=None)
    else:
        values["connection_error"] = None if error is None else str(error)[:MAX_ERROR_CHARS]
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(creds_table)
            .where(creds_table.c.account_id == account, creds_table.c.integration_type == integration_type)
            .values(**values)
        )
        if result.rowcount == 0:
            raise CredentialsNotFoundError(f"no {integration_type} credentials stored for account {account}")


def list_accounts(engine: Engine, integration_type: str | None = None) -> list[AccountStatus]:
    """Every stored account (optionally one integration), ordered by account id. No secrets."""
    c = creds_table.c
    stmt = sa.select(
        c.account_id, c.integration_type, c.base_url, c.verify_tls, c.allow_http, c.is_connected, c.last_connected_at,
        c.connection_error, c.key_id, c.created_at, c.updated_at,
    ).order_by(c.account_id, c.integration_type)
    if integration_type is not None:
        stmt = stmt.where(c.integration_type == integration_type)
    with engine.connect() as conn:
        return [AccountStatus(**row._mapping) for row in conn.execute(stmt)]


def base_urls(engine: Engine, account_ids: Iterable[uuid.UUID | str] | None = None,
              integration_type: str = IIKO) -> dict[str, str | None]:
    """{account id: stored base URL (None: the default server)} for the accounts given (default: all), one query."""
    c = creds_table.c
    stmt = sa.select(c.account_id, c.base_url).where(c.integration_type == integration_type)
    if account_ids is not None:
        stmt = stmt.where(c.account_id.in_([account_uuid(a) for a in account_ids]))
    with engine.connect() as conn:
        return {str(account): url for account, url in conn.execute(stmt)}


def delete_credentials(engine: Engine, account_id: uuid.UUID | str, integration_type: str) -> bool:
    """Remove the credentials row; synced entity rows are kept. Returns whether a row existed."""
    account = account_uuid(account_id)
    with engine.begin() as conn:
        result = conn.execute(
            sa.delete(creds_table).where(
                creds_table.c.account_id == account, creds_table.c.integration_type == integration_type
            )
        )
    return result.rowcount > 0


def connected_account_ids(engine: Engine, integration_type: str = IIKO) -> list[uuid.UUID]:
    """Accounts whose last login succeeded: the ones to sync (e.g. Dagster's partitions)."""
    c = creds_table.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.account_id)
            .where(c.integration_type == integration_type, c.is_connected.is_(True))
            .order_by(c.account_id)
        )
        return [row.account_id for row in rows]


def rotate_keys(engine: Engine, keyring: KeyRing) -> RotationReport:
    """Re-encrypt every row not yet under the current key, with a fresh nonce, in one transaction.

    Any row that cannot be decrypted aborts the whole rotation (nothing is written), so the old keys stay
    necessary until a rotation has succeeded. Rows already under the current key are left as they are.
    """
    c = creds_table.c
    rewritten = already_current = legacy_migrated = 0
    legacy_under_current = False
    with write_transaction(engine) as conn:
        stmt = sa.select(c.id, c.account_id, c.integration_type, c.credentials_ciphertext).order_by(c.id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        for row in conn.execute(stmt).all():
            opened = keyring.open_detailed(row.account_id, row.integration_type, row.credentials_ciphertext)
            if opened.kind == "v1" and opened.key_id == keyring.current_key_id:
                already_current += 1
                continue
            if opened.kind == "legacy":
                legacy_migrated += 1
                legacy_under_current = legacy_under_current or opened.key_id == keyring.current_key_id
            else:
                rewritten += 1
            envelope = keyring.seal(row.account_id, row.integration_type, opened.plaintext)
            conn.execute(
                sa.update(creds_table)
                .where(c.id == row.id)
                .values(credentials_ciphertext=envelope, key_id=keyring.current_key_id, updated_at=utcnow())
            )
    counts = {"rewritten": rewritten, "already_current": already_current, "legacy_migrated": legacy_migrated}
    logger.info("credential key rotation to key %s: %s", keyring.current_key_id, counts)
    if legacy_under_current:
        logger.warning(
            "legacy fixed-nonce credentials were encrypted under the current key %s; its GCM hash key must "
            "be assumed leaked: set a new CREDENTIAL_ENCRYPTION_KEY, move this one to "
            "CREDENTIAL_ENCRYPTION_PREVIOUS_KEYS and rotate again",
            keyring.current_key_id,
        )
    return RotationReport(
        rewritten=rewritten,
        already_current=already_current,
        legacy_migrated=legacy_migrated,
        current_key_id=keyring.current_key_id,
        legacy_key_is_current=legacy_under_current,
    )
