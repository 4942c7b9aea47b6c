"""Keep each account's explicit opt-in to plain http (`connect --allow-http`, the API's `allow_http`).

The URL policy (`iiko_pipeline.iiko.hosts`) is https only, except loopback hosts, the operator-wide
`IIKO_ALLOW_HTTP=true`, and now an account connected with `allow_http`: the flag is kept in the account's row so
that every later sync checks its stored URL the way the connect did. Existing rows get false (https only), the
behaviour they were connected under.

Revision ID: 0007_credentials_allow_http
Revises: 0006_credentials_ca_bundle
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_credentials_allow_http"
down_revision: str | None = "0006_credentials_ca_bundle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account_integration_credentials") as batch:
        batch.add_column(sa.Column("allow_http", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("account_integration_credentials") as batch:
        batch.drop_column("allow_http")
