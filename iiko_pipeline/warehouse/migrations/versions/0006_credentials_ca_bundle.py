"""Keep the CA bundle an account was connected with (PEM text), so its syncs verify TLS as the connect did.

Before this revision `connect --ca-bundle` checked the server against the bundle and then forgot it: every
later sync verified against the system CAs and failed TLS. The bundle's certificates are public; they are kept
as text in the account's row (not a path, which a run worker on another machine would not have).

Revision ID: 0006_credentials_ca_bundle
Revises: 0005_run_locks_and_sessions
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_credentials_ca_bundle"
down_revision: str | None = "0005_run_locks_and_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account_integration_credentials") as batch:
        batch.add_column(sa.Column("ca_bundle", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account_integration_credentials") as batch:
        batch.drop_column("ca_bundle")
