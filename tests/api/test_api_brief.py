"""The brief's request and response bodies over real HTTP: connect and the four sync endpoints, each sync a
Dagster run with its materialization metadata, iiko failures as 502, other failures as 500.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

import dagster as dg
import pytest

from iiko_pipeline.defs.constants import ACCOUNT_TAG
from iiko_pipeline.warehouse.credentials import load_credentials
from tests.api.conftest import log_text
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD, ON_POSTGRESQL, ON_SQLITE

CONNECT_KEYS = {"account_id", "is_connected", "last_connected_at", "connection_error", "integration_type"}
SYNC_KEYS = {"total", "created", "updated", "errors", "error_details"}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
ENTITIES = ("restaurants", "stores", "suppliers", "invoices")


def _window(days: int = 3) -> dict[str, str]:
    today = date.today()
    return {"from": (today - timedelta(days=days - 1)).isoformat(), "to": today.isoformat()}


def _truth(emulator, window: dict[str, str]) -> dict[str, int]:
    ds = emulator.state.dataset
    return {"restaurants": len(ds.restaurants()), "stores": len(ds.stores()), "suppliers": len(ds.suppliers()),
            "invoices": len(ds.invoices(date.fromisoformat(window["from"]), date.fromisoformat(window["to"])))}


def test_connect_with_the_brief_body_answers_the_brief_response(api, logs):
    body = {"username": EMULATOR_LOGIN, "password": EMULATOR_PASSWORD, "base_url": api.emulator.url}
    response = api.connect(body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == CONNECT_KEYS
    assert data["account_id"] == api.account_id and data["is_connected"] is True
    assert data["connection_error"] is None and data["integration_type"] == "iiko"
    assert ISO_UTC.match(data["last_connected_at"]), data["last_connected_at"]
    creds = load_credentials(api.engine, api.keyring, api.account_id, "iiko")
    assert (creds.username, creds.password, creds.base_url) == (EMULATOR_LOGIN, EMULATOR_PASSWORD, api.emulator.url)
    assert api.account_id in api.instance.get_dynamic_partitions("accounts")
    summary = api.emulator.state.log.summary()
    assert summary["logins"] == summary["logouts"] == 1
    assert EMULATOR_PASSWORD not in log_text(logs) and EMULATOR_PASSWORD not in response.text
    assert any("POST /api/v1/accounts/{account_id}/integrations/iiko/connect 200" in r.getMessage()
               for r in logs.records if r.name == "iiko_pipeline.api.access")


@ON_SQLITE
def test_connect_without_base_url_uses_the_default_server(api, monkeypatch):
    # The brief marks base_url optional: the default iiko URL is used (here pointed at the emulator).
    monkeypatch.setenv("IIKO_DEFAULT_BASE_URL", api.emulator.url)  # seen by the sync's own process too
    response = api.connect({"username": EMULATOR_LOGIN, "password": EMULATOR_PASSWORD})
    assert response.status_code == 200, response.text
    assert load_credentials(api.engine, api.keyring, api.account_id, "iiko").base_url is None
    synced = api.sync("restaurants")
    assert synced.status_code == 200, synced.text


# Each failure once, the pair on both backends.
@pytest.mark.parametrize(("db_url", "case"), [("sqlite", "wrong_password"),
                                             pytest.param("postgresql", "unreachable", marks=pytest.mark.postgres)],
                         indirect=["db_url"])
def test_failed_login_answers_502_with_the_brief_body_and_stores_nothing(api, logs, case):
    body = api.brief_connect_body()
    if case == "wrong_password":
        body["password"] = "not-the-password"
    else:
        body["base_url"] = "http://127.0.0.1:9"  # the discard port: nothing listens
    response = api.connect(body)
    assert response.status_code == 502, response.text
    data = response.json()
    assert set(data) == CONNECT_KEYS
    assert data["is_connected"] is False and data["last_connected_at"] is None
    expected = {"wrong_password": "wrong login or password", "unreachable": "could not be reached"}[case]
    assert expected in data["connection_error"]
    assert body["password"] not in response.text and body["password"] not in log_text(logs)
    assert api.stored_accounts() == []
    assert api.instance.get_dynamic_partitions("accounts") == []


@ON_POSTGRESQL
def test_the_four_sync_endpoints_answer_the_brief_result_as_dagster_runs(api):
    assert api.connect().status_code == 200
    window = _window()
    truth = _truth(api.emulator, window)
    results = {}
    for entity in ENTITIES:
        # The brief's sync request has no body; invoices take the optional from/to.
        response = api.sync(entity, json=window) if entity == "invoices" else api.sync(entity)
        assert response.status_code == 200, (entity, response.text)
        data = response.json()
        assert set(data) == SYNC_KEYS | {"run_id"}, data
        assert data["total"] == data["created"] == truth[entity], (entity, data)
        assert (data["updated"], data["errors"]) == (0, 0), (entity, data)
        if entity == "invoices":  # products and units never synced: lines kept, each missing one reported
            assert data["error_details"] and all(
                d["stored"] is True and ("products" in d["reason"] or "measure_units" in d["reason"])
                for d in data["error_details"]), data
        else:
            assert data["error_details"] == [], (entity, data)
        results[entity] = data

    for entity, data in results.items():
        run = api.instance.get_run_by_id(data["run_id"])
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags[ACCOUNT_TAG] == api.account_id and run.tags["iiko/trigger"] == "api"
        materializations = [
            e.asset_materialization for e in api.instance.all_logs(
                data["run_id"], of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            if e.asset_materialization.asset_key == dg.AssetKey(entity)]
        assert len(materializations) == 1, entity
        meta = materializations[0].metadata
        assert materializations[0].partition == api.account_id
        assert {meta[k].value for k in ("total", "created")} == {truth[entity]}
        for key in ("updated", "errors", "error_details", "dagster/row_count", "dagster/table_name"):
            assert key in meta, (entity, key)

    again = api.sync("suppliers")
    assert again.status_code == 200
    assert (again.json()["created"], again.json()["updated"], again.json()["total"]) == (0, 0, truth["suppliers"])

    status = api.status().json()
    for entity in results:
        assert status["entities"][entity]["last_success_at"] is not None
    assert status["entities"]["suppliers"]["last_run_id"] == again.json()["run_id"]
    assert status["entities"]["restaurants"]["last_run_id"] == results["restaurants"]["run_id"]


@ON_SQLITE
def test_invoice_dates_may_come_in_the_query_string(api):
    assert api.connect().status_code == 200
    window = _window(2)
    response = api.sync("invoices", params=window)
    assert response.status_code == 200, response.text
    # the account's first invoice sync brings its never-synced reference data along: nothing is rejected
    assert response.json()["total"] == _truth(api.emulator, window)["invoices"]
    assert response.json()["errors"] == 0
    run = api.instance.get_run_by_id(response.json()["run_id"])
    config = run.run_config["ops"]["raw_invoices"]["config"]
    assert (config["date_from"], config["date_to"]) == (window["from"], window["to"])


@ON_SQLITE
def test_an_iiko_failure_answers_502_with_the_run_id_and_releases_the_account(api, logs):
    assert api.connect().status_code == 200
    api.emulator.state.configure(mode="module_blocked")
    response = api.sync("suppliers")
    assert response.status_code == 502, response.text
    data = response.json()
    assert set(data) == {"detail", "run_id"}
    assert "not licensed" in data["detail"] and "raw_suppliers" in data["detail"]
    run = api.instance.get_run_by_id(data["run_id"])
    assert run.status == dg.DagsterRunStatus.FAILURE and run.tags[ACCOUNT_TAG] == api.account_id
    assert EMULATOR_PASSWORD not in log_text(logs)

    api.emulator.state.configure(mode="normal")
    retry = api.sync("suppliers")
    assert retry.status_code == 200, retry.text  # the failed sync did not leave the account locked


def test_a_failure_of_our_own_answers_500_not_502(api):
    import sqlalchemy as sa

    assert api.connect().status_code == 200
    with api.engine.begin() as conn:  # a broken warehouse: the table step fails, iiko answered fine
        conn.execute(sa.text("ALTER TABLE restaurants RENAME TO restaurants_gone"))
    response = api.sync("restaurants")
    assert response.status_code == 500, response.text
    data = response.json()
    assert set(data) == {"detail", "run_id"}
    assert "restaurants" in data["detail"] and data["run_id"] in data["detail"]
    assert api.instance.get_run_by_id(data["run_id"]).status == dg.DagsterRunStatus.FAILURE


@ON_POSTGRESQL
def test_account_ids_are_canonicalised(api):
    upper = api.account_id.upper()
    response = api.connect(account=upper)
    assert response.status_code == 200, response.text
    assert response.json()["account_id"] == api.account_id
    assert api.sync("restaurants", account=upper).status_code == 200
    assert str(uuid.UUID(api.stored_accounts()[0])) == api.account_id


@pytest.mark.slow
@ON_SQLITE
def test_an_invoice_export_failing_part_way_answers_502(api):
    assert api.connect().status_code == 200
    # two 7-day windows: the first answers, every later export request fails (after the client's retries)
    api.emulator.state.add_fault("documents/export/incomingInvoice", "http_500", count=100, after=1)
    response = api.sync("invoices", json=_window(10))
    assert response.status_code == 502, response.text
    assert "HTTP 500" in response.json()["detail"] and "incomingInvoice" in response.json()["detail"]
    run = api.instance.get_run_by_id(response.json()["run_id"])
    assert run.status == dg.DagsterRunStatus.FAILURE


@ON_POSTGRESQL
def test_a_sync_that_stored_too_little_answers_409_with_the_reason_and_the_counts(api):
    assert api.connect().status_code == 200
    window = _window(2)
    assert api.sync("invoices", json=window).status_code == 200
    ds = api.emulator.state.dataset
    stranger = ds.add_supplier({"name": "ООО «Незнакомец»", "code": "X-1"})
    docs = ds.invoices(date.fromisoformat(window["from"]), date.fromisoformat(window["to"]))
    for doc in docs:  # every document now names a supplier we do not hold
        ds.edit_invoice(doc.id, {"supplier_id": stranger.id})
    response = api.sync("invoices", json=window)
    assert response.status_code == 409, response.text
    data = response.json()
    assert "sync reference data first" in data["detail"] and data["run_id"]
    assert (data["total"], data["errors"], data["created"]) == (len(docs), len(docs), 0)
    assert api.instance.get_run_by_id(data["run_id"]).status == dg.DagsterRunStatus.FAILURE
    assert api.sync("suppliers").status_code == 200
    again = api.sync("invoices", json=window)
    assert again.status_code == 200 and again.json()["errors"] == 0, again.text
