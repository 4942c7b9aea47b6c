"""The code location loads the way `dagster dev` and the daemon load it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_with_the_expected_graph():
    from iiko_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for entity in ("restaurants", "stores", "suppliers", "measure_units", "product_groups", "products",
                   "employees", "invoices"):
        assert {f"raw_{entity}", f"{entity}_frame", entity} <= keys
    assert graph.get(dg.AssetKey("stores")).parent_keys >= {dg.AssetKey("restaurants")}
    assert graph.get(dg.AssetKey("invoices")).parent_keys >= {dg.AssetKey("suppliers"), dg.AssetKey("stores"),
                                                              dg.AssetKey("products")}
    assert graph.get(dg.AssetKey("products")).parent_keys >= {dg.AssetKey("product_groups"),
                                                              dg.AssetKey("measure_units")}
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {("products", "fields_as_documented"), ("products", "links_resolved"), ("products", "entity_available"),
            ("employees", "entity_available"), ("invoices", "links_resolved")} <= checks
    assert ("employees", "fields_as_documented") not in checks  # XML: no documented JSON fields to compare
    for job in ("sync_account_job", "hourly_sync_job", "reference_data_job", "freshness_job"):
        assert defs.resolve_job_def(job) is not None
    nightly = {k.to_user_string() for k in defs.resolve_job_def("reference_data_job").asset_layer.executable_asset_keys}
    assert {"products", "product_groups", "measure_units", "employees"} <= nightly


def test_dagster_cli_validates_the_code_location(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster_home" / "dagster.yaml").read_text())
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run([str(dagster), "definitions", "validate", "-m", "iiko_pipeline.definitions"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All code locations passed validation" in done.stdout + done.stderr
