"""What the management pages show, read in a few queries: the warehouse's bookkeeping (`sync_state`,
`sync_runs`, credentials, names) and the Dagster instance's runs. No HTML here, and nothing secret: the
credentials' ciphertext is never selected.

Entities come from the spec registry, so a new entity shows on every page without a change to them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from iiko_pipeline.core.specs import ENTITY_NAMES, spec
from iiko_pipeline.defs.constants import ACCOUNT_TAG, REQUESTED_TAG, TRIGGER_TAG
from iiko_pipeline.defs.freshness import DEFAULT_MAX_AGE_HOURS, max_age
from iiko_pipeline.defs.onboarding import IN_PROGRESS
from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.credentials import IIKO, AccountStatus, list_accounts
from iiko_pipeline.warehouse.labels import display_names
from iiko_pipeline.warehouse.sqltypes import as_utc

#: Which state sorts first: the accounts an operator must look at come before those that are fine.
STATES = ("disconnected", "failing", "stale", "never synced", "syncing", "ok")
STATE_WORDS = {
    "disconnected": "Disconnected: iiko refused the stored credentials, reconnect it",
    "failing": "Failing: the last sync of an entity failed",
    "stale": "Stale: invoices have not synced for too long",
    "never synced": "Connected, never synced yet",
    "syncing": "Syncing now",
    "ok": "OK",
}
#: Runs the account page lists, newest first.
RECENT_RUNS = 15
#: History rows per entity on the account page.
ENTITY_HISTORY = 5
ERROR_WINDOW = timedelta(days=1)
#: What "sync all" and a run's outcome cover.
ALL = "all"


@dataclass
class EntityState:
    name: str
    description: str
    windowed: bool
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_run_id: str | None = None
    watermark: date | None = None
    last_counts: dict[str, int] | None = None  # the latest sync_runs row: total, created, updated, errors, ...
    history: list[dict[str, Any]] = field(default_factory=list)  # account page only


@dataclass
class AccountRow:
    account_id: str
    display_name: str | None
    status: AccountStatus
    entities: list[EntityState]
    failed_runs_last_day: int = 0
    error_rows_last_day: int = 0
    running_run_id: str | None = None
    stale: bool = False

    @property
    def label(self) -> str:
        return self.display_name or self.account_id

    @property
    def state(self) -> str:
        if not self.status.is_connected:
            return "disconnected"
        if any(e.last_error for e in self.entities) or self.failed_runs_last_day:
            return "failing"
        if self.running_run_id:
            return "syncing"
        if not any(e.last_success_at for e in self.entities):
            return "never synced"
        return "stale" if self.stale else "ok"

    @property
    def state_words(self) -> str:
        return STATE_WORDS[self.state]

    @property
    def invoices(self) -> EntityState | None:
        return next((e for e in self.entities if e.name == "invoices"), None)


@dataclass
class RunRow:
    run_id: str
    status: str
    done: bool
    created_at: datetime
    ended_at: datetime | None
    requested: str | None
    trigger: str | None


def _entity_states(state_rows: dict[str, dict[str, Any]], counts: dict[str, dict[str, int]]) -> list[EntityState]:
    names = [*ENTITY_NAMES, *sorted(set(state_rows) - set(ENTITY_NAMES))]
    out = []
    for name in names:
        known = name in ENTITY_NAMES
        st = state_rows.get(name, {})
        out.append(EntityState(
            name=name, description=spec(name).description if known else "", windowed=known and spec(name).windowed,
            last_success_at=as_utc(st.get("last_success_at")), last_error=st.get("last_error"),
            last_run_id=st.get("last_run_id"), watermark=st.get("watermark"), last_counts=counts.get(name)))
    return out


def _counts(row: Any) -> dict[str, int]:
    return {k: int(getattr(row, k) or 0) for k in ("total", "created", "updated", "unchanged", "deleted", "errors")}


def _latest_counts(conn: sa.Connection, account: uuid.UUID | None) -> dict[str, dict[str, dict[str, int]]]:
    """{account: {entity: counts}} of each entity's latest sync_runs row (one query)."""
    runs = schema.sync_runs
    latest = sa.select(sa.func.max(runs.c.id).label("id")).group_by(runs.c.account_id, runs.c.entity)
    if account is not None:
        latest = latest.where(runs.c.account_id == account)
    stmt = sa.select(runs).where(runs.c.id.in_(latest.scalar_subquery()))
    out: dict[str, dict[str, dict[str, int]]] = {}
    for row in conn.execute(stmt):
        out.setdefault(str(row.account_id), {})[row.entity] = _counts(row)
    return out


def _error_rows_since(conn: sa.Connection, since: datetime, account: uuid.UUID | None) -> dict[str, int]:
    runs = schema.sync_runs
    stmt = (sa.select(runs.c.account_id, sa.func.sum(runs.c.errors)).where(runs.c.started_at >= since)
            .group_by(runs.c.account_id))
    if account is not None:
        stmt = stmt.where(runs.c.account_id == account)
    return {str(a): int(n or 0) for a, n in conn.execute(stmt)}


def _states(conn: sa.Connection, account: uuid.UUID | None) -> dict[str, dict[str, dict[str, Any]]]:
    st = schema.sync_state
    stmt = sa.select(st) if account is None else sa.select(st).where(st.c.account_id == account)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in conn.execute(stmt).mappings():
        out.setdefault(str(row["account_id"]), {})[row["entity"]] = dict(row)
    return out


def _runs_by_account(instance: dg.DagsterInstance, **filter_args: Any) -> dict[str, list[dg.RunRecord]]:
    out: dict[str, list[dg.RunRecord]] = {}
    for record in instance.get_run_records(dg.RunsFilter(**filter_args)):
        account = record.dagster_run.tags.get(ACCOUNT_TAG)
        if account:
            out.setdefault(account, []).append(record)
    return out


def _stale(entities: list[EntityState], now: datetime) -> bool:
    """An incrementally synced entity (one with a freshness limit) whose last success is older than it."""
    for entity in entities:
        if entity.name not in ENTITY_NAMES or entity.last_success_at is None:
            continue
        env = spec(entity.name).freshness_env
        if env and now - entity.last_success_at > max_age(env):
            return True
    return False


def accounts_overview(engine: Engine, instance: dg.DagsterInstance, *, only: str | None = None) -> list[AccountRow]:
    """Every iiko account, broken ones first (then by name); `only` keeps one state (`STATES`)."""
    return _rows(engine, instance, None, only)


def account_overview(engine: Engine, instance: dg.DagsterInstance, account_id: str) -> AccountRow | None:
    """One account with each entity's recent history (`EntityState.history`), or None when it is unknown."""
    rows = _rows(engine, instance, uuid.UUID(account_id), None)
    if not rows:
        return None
    row = rows[0]
    runs = schema.sync_runs
    with engine.connect() as conn:
        for entity in row.entities:
            stmt = (sa.select(runs).where(runs.c.account_id == uuid.UUID(account_id), runs.c.entity == entity.name)
                    .order_by(runs.c.id.desc()).limit(ENTITY_HISTORY))
            entity.history = [{"run_id": r.run_id, "started_at": as_utc(r.started_at),
                               "finished_at": as_utc(r.finished_at), **_counts(r),
                               "error_details": _error_details(r.error_details)} for r in conn.execute(stmt)]
    return row


def _error_details(raw: str | None) -> list[dict[str, str]]:
    """The stored `error_details` JSON as rows of a table (external id, error), whatever shape an entry has."""
    if not raw:
        return []
    try:
        items = json.loads(raw)
    except ValueError:
        return [{"external_id": "", "error": raw[:500]}]
    out = []
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, dict):
            out.append({"external_id": str(item.get("external_id", "")), "error": str(item.get("error", item))})
        else:
            out.append({"external_id": "", "error": str(item)})
    return out


def _rows(engine: Engine, instance: dg.DagsterInstance, account: uuid.UUID | None, only: str | None
          ) -> list[AccountRow]:
    now = datetime.now(UTC)
    statuses = [a for a in list_accounts(engine, IIKO) if account is None or a.account_id == account]
    if not statuses:
        return []
    with engine.connect() as conn:
        counts = _latest_counts(conn, account)
        errors = _error_rows_since(conn, now - ERROR_WINDOW, account)
        states = _states(conn, account)
    names = display_names(engine, None if account is None else [account])
    account_filter: dict[str, Any] = {} if account is None else {"tags": {ACCOUNT_TAG: str(account)}}
    failed = _runs_by_account(instance, statuses=[dg.DagsterRunStatus.FAILURE], created_after=now - ERROR_WINDOW,
                              **account_filter)
    running = _runs_by_account(instance, statuses=IN_PROGRESS, **account_filter)
    rows = []
    for status in statuses:
        key = str(status.account_id)
        entities = _entity_states(states.get(key, {}), counts.get(key, {}))
        rows.append(AccountRow(
            account_id=key, display_name=names.get(key), status=status, entities=entities,
            failed_runs_last_day=len(failed.get(key, [])), error_rows_last_day=errors.get(key, 0),
            running_run_id=running[key][0].dagster_run.run_id if key in running else None,
            stale=_stale(entities, now)))
    if only:
        rows = [r for r in rows if r.state == only]
    return sorted(rows, key=lambda r: (STATES.index(r.state), r.label.lower()))


def recent_runs(instance: dg.DagsterInstance, account_id: str, limit: int = RECENT_RUNS) -> list[RunRow]:
    out = []
    for record in instance.get_run_records(dg.RunsFilter(tags={ACCOUNT_TAG: account_id}), limit=limit):
        run = record.dagster_run
        ended = record.end_time
        out.append(RunRow(run_id=run.run_id, status=run.status.value, done=run.status not in IN_PROGRESS,
                          created_at=as_utc(record.create_timestamp) or datetime.now(UTC),
                          ended_at=datetime.fromtimestamp(ended, UTC) if ended else None,
                          requested=run.tags.get(REQUESTED_TAG), trigger=run.tags.get(TRIGGER_TAG)))
    return out


def freshness_hours() -> float:
    """The invoice freshness limit the pages flag against (the entity's own env setting, else the default)."""
    env = spec("invoices").freshness_env
    return max_age(env).total_seconds() / 3600 if env else DEFAULT_MAX_AGE_HOURS
