"""Per-account sync bookkeeping: a run log (`sync_runs`) and the latest state per entity (`sync_state`).

Kept in the warehouse, not only in Dagster, so the platform can show "last synced" without asking Dagster.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from iiko_pipeline.warehouse import schema


def record_run(engine: Engine, account_id: uuid.UUID, entity: str, run_id: str | None, result: Any,
               started_at: datetime, *, error: str | None = None) -> None:
    """Append the run's counts to sync_runs and mark the entity's success in sync_state, or, with `error`
    (e.g. it stored too little of what iiko returned), record the counts but not a success: "synced" must mean
    the rows are there, because onboarding and the invoice prerequisites key on it."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(schema.sync_runs.insert().values(
            account_id=account_id, entity=entity, run_id=run_id, started_at=started_at, finished_at=now,
            total=result.total, created=result.created, updated=result.updated, unchanged=result.unchanged,
            deleted=result.deleted, errors=result.errors,
            error_details=json.dumps(result.details, ensure_ascii=False, default=str)))
        if error is None:
            _upsert_state(conn, account_id, entity, last_success_at=now, last_error=None, last_run_id=run_id,
                          updated_at=now)
        else:
            _upsert_state(conn, account_id, entity, last_error=error[:2000], last_run_id=run_id, updated_at=now)


def record_failure(engine: Engine, account_id: uuid.UUID, entity: str, run_id: str | None, error: str) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        _upsert_state(conn, account_id, entity, last_error=error[:2000], last_run_id=run_id, updated_at=now)


def set_watermark(conn: sa.Connection, account_id: uuid.UUID, entity: str, watermark: date) -> None:
    _upsert_state(conn, account_id, entity, watermark=watermark, updated_at=datetime.now(UTC))


def get_state(engine: Engine, account_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    st = schema.sync_state
    with engine.connect() as conn:
        rows = conn.execute(sa.select(st).where(st.c.account_id == account_id)).mappings().all()
    return {row["entity"]: dict(row) for row in rows}


def last_successes(engine: Engine, account_ids: Iterable[uuid.UUID | str] | None = None
                   ) -> dict[str, dict[str, datetime]]:
    """When each entity of each account last synced successfully: {account: {entity: at}} (one query)."""
    st = schema.sync_state
    stmt = sa.select(st.c.account_id, st.c.entity, st.c.last_success_at).where(st.c.last_success_at.is_not(None))
    wanted = None if account_ids is None else {str(a) for a in account_ids}
    out: dict[str, dict[str, datetime]] = {}
    with engine.connect() as conn:
        for account, entity, at in conn.execute(stmt):
            if wanted is None or str(account) in wanted:
                out.setdefault(str(account), {})[entity] = at
    return out


def never_synced(engine: Engine, account_id: uuid.UUID | str, entities: Iterable[str]) -> list[str]:
    """The entities (of those given, in their order) this account has never synced successfully."""
    done = last_successes(engine, [account_id]).get(str(uuid.UUID(str(account_id))), {})
    return [e for e in entities if e not in done]


def _upsert_state(conn: sa.Connection, account_id: uuid.UUID, entity: str, **values: Any) -> None:
    st = schema.sync_state
    updated = conn.execute(st.update().where(st.c.account_id == account_id, st.c.entity == entity)
                           .values(**values)).rowcount
    if not updated:
        conn.execute(st.insert().values(account_id=account_id, entity=entity, **values))
