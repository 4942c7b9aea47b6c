"""Schedules, freshness, instance config and failure handling (no retries for errors that cannot heal)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from iiko_pipeline.core.seats import server_origin
from iiko_pipeline.defs.resources import WarehouseResource
from iiko_pipeline.warehouse.credentials import list_accounts, save_credentials
from iiko_pipeline.warehouse.entities import SyncResult
from iiko_pipeline.warehouse.state import record_run
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD, ON_POSTGRESQL

ROOT = Path(__file__).resolve().parents[2]


def _schedule_tick(p, name: str, account: str | None = None):
    """The tick of the schedule at which `account` (default: the pipeline's) is due: each account has one
    minute of the period (`core.fanout`)."""
    from iiko_pipeline.core.fanout import account_slot
    from iiko_pipeline.core.specs import SCHEDULES
    from iiko_pipeline.definitions import defs

    group = next(g for g in SCHEDULES if g.schedule == name)
    minute = account_slot(account or p.account_id, group.spread) * 60 // group.spread
    hour = int(group.cron.split()[1]) if group.cron.split()[1].isdigit() else 9
    schedule = defs.resolve_schedule_def(name)
    ctx = dg.build_schedule_context(instance=p.instance, resources={"warehouse": WarehouseResource()},
                                    scheduled_execution_time=datetime(2026, 11, 26, hour, minute, tzinfo=UTC),
                                    repository_def=defs.get_repository_def())
    return schedule.evaluate_tick(ctx)


def test_schedules_fan_out_over_connected_account_partitions_only(pipeline, monkeypatch):
    p = pipeline
    p.connect()
    disconnected = str(uuid.uuid4())  # a partition whose credentials were saved but never proved
    save_credentials(p.engine, p.keyring, disconnected, "iiko", EMULATOR_LOGIN, EMULATOR_PASSWORD)
    p.instance.add_dynamic_partitions("accounts", [disconnected])
    # Invoices wait until the account's reference data has synced (the discovery sensor onboards it whole).
    waiting = _schedule_tick(p, "hourly_sync_schedule")
    assert not waiting.run_requests and "1 waiting for their reference data" in waiting.skip_message
    for entity in ("restaurants", "stores", "suppliers"):
        record_run(p.engine, uuid.UUID(p.account_id), entity, "r", SyncResult(entity), datetime.now(UTC))
    for name, prefix in (("hourly_sync_schedule", "hourly"), ("reference_data_daily_schedule", "reference"),
                         ("stock_snapshots_daily_schedule", "snapshots")):
        data = _schedule_tick(p, name)
        assert [r.partition_key for r in data.run_requests] == [p.account_id]
        request = data.run_requests[0]
        assert request.tags["iiko/account"] == p.account_id and request.run_key.startswith(f"{prefix}:")
        assert request.tags["iiko/server"] == server_origin(p.emulator.url)  # the queue's per-server limit
        # hourly syncs go before onboardings (priority 0) in the daemon's queue; the nightly ones do not
        assert request.tags.get("dagster/priority", "0") == ("1" if prefix == "hourly" else "0")
    monkeypatch.setenv("INTEGRATIONS_ENABLED", "false")
    data = _schedule_tick(p, "hourly_sync_schedule")
    assert not data.run_requests and "INTEGRATIONS_ENABLED" in data.skip_message


@pytest.mark.slow
@ON_POSTGRESQL
def test_freshness_check_warns_until_invoices_have_synced(pipeline):
    from iiko_pipeline.definitions import defs

    p = pipeline
    p.connect()
    job = defs.resolve_job_def("freshness_job")
    before = job.execute_in_process(instance=p.instance).get_asset_check_evaluations()[0]
    assert not before.passed and before.severity == dg.AssetCheckSeverity.WARN
    assert p.account_id in str(before.metadata["failing_sample"].value)
    assert p.sync(history_days=3).success
    after = job.execute_in_process(instance=p.instance).get_asset_check_evaluations()[0]
    assert after.passed


# Each error once, the pair on both backends.
@pytest.mark.slow
@pytest.mark.parametrize(("db_url", "mode"), [("sqlite", "module_blocked"),
                                             pytest.param("postgresql", "wrong_password", marks=pytest.mark.postgres)],
                         indirect=["db_url"])
def test_credential_and_licence_errors_fail_once_and_mark_the_account(pipeline, mode):
    p = pipeline
    assert p.connect().is_connected
    if mode == "module_blocked":
        p.emulator.state.configure(mode="module_blocked")
    else:  # the password was changed in iiko after the account was connected
        save_credentials(p.engine, p.keyring, p.account_id, "iiko", EMULATOR_LOGIN, "not-the-password",
             base_url=p.emulator.url, connected_at=datetime.now(UTC))
    outcome = p.sync(["suppliers"])
    assert not outcome.success
    run = p.instance.get_run_by_id(outcome.run_id)
    records = p.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert records == []  # not retried: it cannot heal by itself
    status = next(a for a in list_accounts(p.engine) if str(a.account_id) == p.account_id)
    assert status.is_connected is False
    assert ("not licensed" if mode == "module_blocked" else "wrong login or password") in status.connection_error
    log = p.emulator.state.log.summary()
    assert log["logins"] == log["logouts"]  # nothing leaked, even on failure


def test_instance_configs_load_with_the_per_account_limit_and_no_global_iiko_limit():
    config = yaml.safe_load((ROOT / "dagster_home" / "dagster.yaml").read_text())
    with dg.instance_for_test(overrides=config) as instance:
        concurrency = instance.get_concurrency_config()
        limits = concurrency.run_queue_config.tag_concurrency_limits
        assert {"key": "iiko/account", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        assert {"key": "iiko/server", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        # no instance-wide limit on iiko calls: licence seats are per server (core.seats), and no step sits in a pool
        assert concurrency.pool_config.default_pool_limit is None
        from iiko_pipeline.definitions import defs

        assert {asset.op.pool for asset in defs.assets if hasattr(asset, "op")} == {None}
        assert instance.run_monitoring_enabled
    production = yaml.safe_load((ROOT / "dagster_home" / "dagster.postgres.yaml").read_text())
    with dg.instance_for_test(overrides={k: v for k, v in production.items() if k != "storage"}) as instance:
        assert instance.get_settings("schedules")["num_submit_workers"] > 1  # a tick's runs are created in parallel
        assert instance.get_concurrency_config().pool_config.default_pool_limit is None
    pg = production["storage"]["postgres"]["postgres_db"]
    assert pg["scheme"] == "postgresql+psycopg2" and all("env" in pg[k] for k in ("username", "password"))
