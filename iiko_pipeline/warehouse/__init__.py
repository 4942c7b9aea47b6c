"""Layer 4: the SQL warehouse (schema, migrations, engines) and encrypted integration credentials.

Knows SQLAlchemy Core, Alembic and cryptography; never imports dagster or requests. Modules:

- ``settings``: ``database_url()``, ``integrations_enabled()`` from the environment
- ``engine``: ``make_engine()`` with the SQLite pragmas and psycopg2 for PostgreSQL
- ``sqltypes``: ``ExactDecimal``, ``UtcDateTime`` (identical behaviour on both backends)
- ``schema``: the tables (the contract the platform reads)
- ``migrate``: ``migrate()``, ``current_revision()`` over the packaged Alembic migrations
- ``crypto``: ``KeyRing`` (AES-256-GCM envelopes, key rotation, legacy fixed-nonce reading)
- ``credentials``: the repository over ``account_integration_credentials``
"""

from __future__ import annotations

from .credentials import (
    AccountStatus,
    Credentials,
    CredentialsNotFoundError,
    RotationReport,
    connected_account_ids,
    delete_credentials,
    list_accounts,
    load_credentials,
    mark_connection,
    rotate_keys,
    save_credentials,
)
from .crypto import CredentialDecryptError, CredentialKeyError, KeyRing, LegacyCredentialWarning
from .engine import make_engine
from .migrate import current_revision, head_revision, migrate
from .schema import metadata
from .settings import database_url, integrations_enabled
from .sqltypes import ExactDecimal, UtcDateTime

__all__ = [
    "AccountStatus",
    "CredentialDecryptError",
    "CredentialKeyError",
    "Credentials",
    "CredentialsNotFoundError",
    "ExactDecimal",
    "KeyRing",
    "LegacyCredentialWarning",
    "RotationReport",
    "UtcDateTime",
    "connected_account_ids",
    "current_revision",
    "database_url",
    "delete_credentials",
    "head_revision",
    "integrations_enabled",
    "list_accounts",
    "load_credentials",
    "make_engine",
    "mark_connection",
    "metadata",
    "migrate",
    "rotate_keys",
    "save_credentials",
]
