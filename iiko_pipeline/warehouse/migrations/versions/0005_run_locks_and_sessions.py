"""A per-account run lock shared by every process, and escrowed iiko session tokens of live runs.

Before this revision "one sync per account" was checked in process memory and through the Dagster instance, so two
processes (API worker, CLI, a run worker of the daemon) could start a run of the same account at once.
`account_run_locks` holds one row per account with a run in progress; the primary key makes taking it atomic, and
a heartbeat lets a lock left by a dead run be taken over. `iiko_sessions` keeps the encrypted token of each run's
iiko login until its logout, so whoever recovers a dead run logs that token out and the customer's licence seat
is not held until the token expires.

Revision ID: 0005_run_locks_and_sessions
Revises: 0004_sync_pending
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_run_locks_and_sessions"
down_revision: str | None = "0004_sync_pending"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_run_locks",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name="pk_account_run_locks"),
    )
    op.create_table(
        "iiko_sessions",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("token_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "run_id", name="pk_iiko_sessions"),
    )


def downgrade() -> None:
    op.drop_table("iiko_sessions")
    op.drop_table("account_run_locks")
