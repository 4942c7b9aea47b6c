"""Status, disconnect, one sync per account (409), the OpenAPI description, and the production shape."""

from __future__ import annotations

import threading
import time
import uuid

import dagster as dg
import pytest
import requests
import sqlalchemy as sa

from iiko_pipeline.core.specs import ENTITY_NAMES
from iiko_pipeline.defs.constants import ACCOUNT_TAG
from iiko_pipeline.warehouse import run_locks, schema
from tests.conftest import ON_POSTGRESQL, ON_SQLITE


@ON_SQLITE
def test_status_then_disconnect_keeps_the_data(api):
    assert api.connect().status_code == 200
    before = api.status()
    assert before.status_code == 200, before.text
    data = before.json()
    assert data["account_id"] == api.account_id and data["integration_type"] == "iiko"
    assert data["is_connected"] is True and data["connection_error"] is None and data["base_url"] == api.emulator.url
    assert data["sync_running"] is False and data["running_run_id"] is None and data["allow_http"] is False
    assert list(data["entities"]) == list(ENTITY_NAMES)
    assert all(e["last_success_at"] is None for e in data["entities"].values())

    synced = api.sync("restaurants").json()
    after = api.status().json()
    restaurants = after["entities"]["restaurants"]
    assert restaurants["last_run_id"] == synced["run_id"] and restaurants["last_error"] is None
    assert restaurants["last_success_at"].endswith("Z")
    assert restaurants["last_success_at"] >= after["last_connected_at"]
    assert after["entities"]["stores"]["last_success_at"] is None

    gone = api.disconnect()
    assert gone.status_code == 200, gone.text
    assert gone.json() == {"account_id": api.account_id, "integration_type": "iiko", "is_connected": False,
                           "disconnected": True}
    assert api.stored_accounts() == []
    for response in (api.status(), api.disconnect(), api.sync("restaurants")):
        assert response.status_code == 404, response.text
    with api.engine.connect() as conn:  # synced rows stay for the platform
        count = conn.execute(sa.select(sa.func.count()).select_from(schema.restaurants).where(
            schema.restaurants.c.account_id == uuid.UUID(api.account_id))).scalar_one()
    assert count == synced["total"] > 0


@ON_SQLITE
def test_a_run_of_the_account_elsewhere_answers_409(api):
    assert api.connect().status_code == 200
    other_run = str(uuid.uuid4())  # e.g. the daemon's scheduled run on another machine: it holds the account
    api.instance.add_run(dg.DagsterRun(job_name="sync_account_job", run_id=other_run,
                                       status=dg.DagsterRunStatus.STARTED, tags={ACCOUNT_TAG: api.account_id}))
    assert run_locks.acquire(api.engine, api.account_id, other_run, holder="worker-7.internal:4242") is None
    for response in (api.sync("restaurants"), api.sync("invoices", json={}), api.disconnect()):
        assert response.status_code == 409, response.text
        assert other_run in response.json()["detail"] and response.json()["run_id"] == other_run
    status = api.status().json()
    assert status["sync_running"] is True and status["running_run_id"] == other_run
    assert [r.run_id for r in api.instance.get_runs()] == [other_run]  # nothing else started
    assert api.stored_accounts() == [api.account_id]

    api.instance.report_run_canceled(api.instance.get_run_by_id(other_run))
    run_locks.release(api.engine, api.account_id, other_run)  # what the run does as it ends
    assert api.sync("restaurants").status_code == 200


@ON_POSTGRESQL
def test_concurrent_syncs_of_one_account_answer_409_and_others_proceed(api):
    assert api.connect().status_code == 200
    other = str(uuid.uuid4())
    assert api.connect(account=other).status_code == 200
    api.emulator.state.add_fault("suppliers", "slow", count=1, delay=3)
    first: dict[str, requests.Response] = {}
    worker = threading.Thread(target=lambda: first.setdefault("r", api.sync("suppliers")))
    worker.start()
    deadline = time.monotonic() + 20
    while not api.instance.get_runs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.instance.get_runs(), "the first sync never started"
    second = api.sync("restaurants")
    assert second.status_code == 409, second.text
    assert "already running" in second.json()["detail"] or "run " in second.json()["detail"]
    assert api.status().json()["sync_running"] is True
    elsewhere = api.sync("restaurants", account=other)  # another account is not refused: it runs beside it
    assert elsewhere.status_code == 200, elsewhere.text
    worker.join(60)
    assert first["r"].status_code == 200, first["r"].text
    assert len(api.instance.get_runs()) == 2
    assert api.sync("restaurants").status_code == 200  # released once the first finished


@ON_SQLITE
def test_openapi_describes_every_route(api):
    from iiko_pipeline.api.app import routes

    assert requests.get(api.url + "/openapi.json", timeout=10).status_code == 401
    response = api.request("GET", api.url + "/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1") and doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    from iiko_pipeline.core.specs import ENTITY_NAMES

    served = {(path, method.lower()) for route in routes() for method in route.methods if method != "HEAD"
              for path in ([route.path.replace("{entity}", name) for name in ENTITY_NAMES]
                           if route.path.endswith("/sync/{entity}") else [route.path])}
    documented = {(path, method) for path, item in doc["paths"].items() for method in item
                  if method in {"get", "post", "put", "patch", "delete"}}
    assert served == documented
    assert doc["paths"]["/health"]["get"]["security"] == []

    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"].rsplit("/", 1)[-1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs <= set(doc["components"]["schemas"])
    prefix = "/api/v1/accounts/{account_id}/integrations/iiko"
    expected = {
        (f"{prefix}/connect", "post"): {"200", "400", "401", "413", "415", "422", "502", "503"},
        **{(f"{prefix}/sync/{name}", "post"): {"200", "202", "400", "401", "404", "409", "413", "415", "422",
                                               "500", "502", "503"} for name in ENTITY_NAMES},
        (f"{prefix}/runs/{{run_id}}", "get"): {"200", "400", "401", "404", "422"},
        (prefix, "get"): {"200", "400", "401", "404", "422"},
        (prefix, "delete"): {"200", "400", "401", "404", "409", "422"},
    }
    for (path, method), codes in expected.items():
        assert set(doc["paths"][path][method]["responses"]) == codes, (path, method)
    schema_keys = doc["components"]["schemas"]
    assert set(schema_keys["ConnectRequest"]["properties"]) == {"username", "password", "base_url", "allow_http"}
    assert schema_keys["ConnectRequest"]["properties"]["allow_http"]["type"] == "boolean"
    assert "allow_http" in schema_keys["IntegrationStatus"]["required"]
    assert set(schema_keys["SyncResult"]["required"]) == {"total", "created", "updated", "errors", "error_details",
                                                         "run_id"}
    assert [p.rsplit("/", 1)[-1] for p in doc["paths"] if "/sync/" in p] == list(ENTITY_NAMES)


@pytest.mark.postgres
def test_production_shape_instance_and_warehouse_on_postgres(pg_api):
    api = pg_api
    assert type(api.instance.run_storage).__name__ == "PostgresRunStorage"
    assert api.connect().status_code == 200
    first = api.sync("stores")
    assert first.status_code == 200, first.text
    run_id = first.json()["run_id"]
    assert api.instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
    api.instance.add_run(dg.DagsterRun(job_name="sync_account_job", run_id=str(uuid.uuid4()),
                                       status=dg.DagsterRunStatus.STARTING, tags={ACCOUNT_TAG: api.account_id}))
    assert api.sync("stores").status_code == 409
