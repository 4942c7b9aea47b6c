"""The API's `POST .../sync/{entity}` for products, groups and units (issue 14): real Dagster runs on
PostgreSQL (the JSONB backend), the brief's result, soft links reported and then resolved, and an iiko too old
for the v2 lists answering 200 with the reason the entity was skipped."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from iiko_pipeline.warehouse import schema

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _linked(api) -> tuple[int, int]:
    products = schema.products
    with api.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count(products.c.group_id), sa.func.count(products.c.main_unit_id))
                            .where(products.c.account_id == api.account_id)).one()


def test_products_sync_alone_keeps_unlinked_rows_and_the_reference_syncs_link_them(pg_api):
    api = pg_api
    assert api.connect().status_code == 200
    catalogue = api.emulator.state.dataset.nomenclature_items()

    first = api.sync("products")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["total"] == body["created"] == len(catalogue) and body["errors"] == 0
    # stored, with the caveat that their groups and units are not synced yet: reported, not rejected
    assert body["error_details"] and all(d["stored"] is True for d in body["error_details"])
    assert _linked(api) == (0, 0)

    for entity in ("measure_units", "product_groups"):
        assert api.sync(entity).status_code == 200
    grouped = sum(1 for p in catalogue if p.parent_id)
    assert _linked(api) == (grouped, len(catalogue))  # linked by the reference syncs themselves

    again = api.sync("products").json()
    assert (again["created"], again["updated"], again["errors"], again["error_details"]) == (0, 0, 0, [])
    run = api.instance.get_run_by_id(again["run_id"])
    assert run.status == dg.DagsterRunStatus.SUCCESS

    api.emulator.state.configure(version="5.4.5000.0")  # before 6.1: no v2 product lists (HTTP 404)
    old = api.sync("products")
    assert old.status_code == 200, old.text
    assert "not available on this iiko version" in old.json()["skipped"]
    assert api.status().json()["is_connected"] is True
    assert _linked(api) == (grouped, len(catalogue))  # nothing held was touched
