"""What the pages show, read from the warehouse and the Dagster instance (`ui.overview`), on both backends:
states, broken-first order, the state filter, the latest counts and error details, names, freshness."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg

from iiko_pipeline.core.specs import ENTITY_NAMES
from iiko_pipeline.defs.constants import ACCOUNT_TAG
from iiko_pipeline.ui import overview
from iiko_pipeline.warehouse.credentials import IIKO, mark_connection, save_credentials
from iiko_pipeline.warehouse.entities import SyncResult
from iiko_pipeline.warehouse.labels import display_names, set_display_name
from iiko_pipeline.warehouse.state import record_failure, record_run


@dg.op
def noop() -> None:
    pass


@dg.job
def nothing() -> None:
    noop()


def connected(backend, name: str | None = None) -> str:
    account = str(uuid.uuid4())
    save_credentials(backend.engine, backend.keyring, account, IIKO, "user", "secret-pass",
                     base_url="https://iiko.example.com/resto", connected_at=datetime.now(UTC))
    if name:
        set_display_name(backend.engine, account, name)
    return account


def synced(backend, account: str, entity: str, total: int, *, errors: list | None = None,
           at: datetime | None = None) -> None:
    result = SyncResult(entity, total=total, created=total, errors=len(errors or []), error_details=errors or [])
    record_run(backend.engine, uuid.UUID(account), entity, str(uuid.uuid4()), result,
               at or datetime.now(UTC))


def test_broken_accounts_come_first_and_the_filter_keeps_one_state(backend) -> None:
    ok = connected(backend, "B ok")
    synced(backend, ok, "restaurants", 3)
    failing = connected(backend, "C failing")
    synced(backend, failing, "restaurants", 2)
    record_failure(backend.engine, uuid.UUID(failing), "invoices", "run-1",
                   "iiko failed: no free iiko API licence seat")
    gone = connected(backend, "D disconnected")
    mark_connection(backend.engine, gone, IIKO, False, "wrong login or password")
    fresh = connected(backend)  # no name: listed by its id
    rows = overview.accounts_overview(backend.engine, backend.instance)
    assert [(r.label, r.state) for r in rows] == [
        ("D disconnected", "disconnected"), ("C failing", "failing"), (fresh, "never synced"), ("B ok", "ok")]
    assert rows[0].status.connection_error == "wrong login or password"
    failing_row = rows[1]
    assert next(e for e in failing_row.entities if e.name == "invoices").last_error.startswith("iiko failed")
    only = overview.accounts_overview(backend.engine, backend.instance, only="failing")
    assert [r.account_id for r in only] == [failing]
    # no secret is anywhere in what the pages read
    assert "secret-pass" not in repr(rows)


def test_the_latest_counts_and_error_details_per_entity(backend) -> None:
    account = connected(backend)
    synced(backend, account, "invoices", 7, at=datetime.now(UTC) - timedelta(hours=1))
    synced(backend, account, "invoices", 9, errors=[{"external_id": "doc-1", "error": "store 42 is unknown"}])
    row = overview.account_overview(backend.engine, backend.instance, account)
    assert row is not None
    invoices = next(e for e in row.entities if e.name == "invoices")
    assert invoices.last_counts["total"] == 9 and invoices.last_counts["errors"] == 1
    assert [h["total"] for h in invoices.history] == [9, 7]
    assert invoices.history[0]["error_details"] == [{"external_id": "doc-1", "error": "store 42 is unknown"}]
    assert row.error_rows_last_day == 1
    assert [e.name for e in row.entities][: len(ENTITY_NAMES)] == list(ENTITY_NAMES)  # every entity, new ones too
    assert overview.account_overview(backend.engine, backend.instance, str(uuid.uuid4())) is None


def test_failed_runs_of_the_last_day_count_against_the_account(backend) -> None:
    account = connected(backend)
    synced(backend, account, "restaurants", 1)
    run = backend.instance.create_run_for_job(nothing, tags={ACCOUNT_TAG: account})
    backend.instance.report_run_failed(run)
    row = overview.accounts_overview(backend.engine, backend.instance)[0]
    assert row.failed_runs_last_day == 1 and row.state == "failing"
    assert [r.run_id for r in overview.recent_runs(backend.instance, account)] == [run.run_id]


def test_an_invoice_sync_older_than_the_freshness_limit_is_stale(backend, monkeypatch) -> None:
    account = connected(backend)
    synced(backend, account, "invoices", 1)
    assert overview.accounts_overview(backend.engine, backend.instance)[0].state == "ok"
    from iiko_pipeline.core.specs import spec

    monkeypatch.setenv(spec("invoices").freshness_env, "0.0001")  # 0.36 s
    time.sleep(0.5)
    assert overview.accounts_overview(backend.engine, backend.instance)[0].state == "stale"


def test_a_display_name_survives_a_disconnect_and_an_empty_one_removes_it(backend) -> None:
    from iiko_pipeline.warehouse.credentials import delete_credentials

    account = connected(backend, "  Café  ")
    assert display_names(backend.engine) == {account: "Café"}
    delete_credentials(backend.engine, account, IIKO)
    assert display_names(backend.engine, [account]) == {account: "Café"}
    set_display_name(backend.engine, account, "Renamed")
    assert display_names(backend.engine, [account]) == {account: "Renamed"}
    set_display_name(backend.engine, account, " ")
    assert display_names(backend.engine) == {}
