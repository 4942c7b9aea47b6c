"""The Helm values (deploy/helm/values.yaml) agree with what the project tests and ships.

No `helm` binary and no cluster here: the chart's own schema was checked by hand (see deploy/README.md), the run
launcher against dagster-k8s inside the image (deploy/docker/smoke.sh). This file pins what would otherwise
drift silently: the queue's limits and the daemon's threads against the tested PostgreSQL instance, the image's
user and DAGSTER_HOME against the Dockerfile, the code location against the workspace, the chart's version
against the pinned dagster, and that nothing secret is written in the values.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VALUES_PATH = ROOT / "deploy" / "helm" / "values.yaml"
VALUES = yaml.safe_load(VALUES_PATH.read_text())
INSTANCE = yaml.safe_load((ROOT / "dagster_home" / "dagster.postgres.yaml").read_text())
DOCKERFILE = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()


def camel(limits: list[dict]) -> list[dict]:
    return [{"key": x["key"], "value": x["value"], "limit": x["limit"]} for x in limits]


def test_the_queue_limits_and_daemon_threads_are_the_tested_instances() -> None:
    runs = VALUES["concurrency"]["runs"]
    assert VALUES["concurrency"]["enabled"] is True
    assert runs["maxConcurrentRuns"] == INSTANCE["concurrency"]["runs"]["max_concurrent_runs"]
    assert camel(runs["tagConcurrencyLimits"]) == camel(INSTANCE["concurrency"]["runs"]["tag_concurrency_limits"])
    assert {x["key"] for x in runs["tagConcurrencyLimits"]} == {"iiko/account", "iiko/server"}
    # the chart refuses the run coordinator's own limits when `concurrency` is enabled
    coordinator = VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert not {"maxConcurrentRuns", "tagConcurrencyLimits"} & coordinator.keys()
    assert "pools" not in VALUES["concurrency"]  # no global limit of one (issue 17)
    daemon = VALUES["dagsterDaemon"]
    for kind in ("schedules", "sensors"):
        tested = INSTANCE[kind]
        assert daemon[kind] == {"useThreads": tested["use_threads"], "numWorkers": tested["num_workers"],
                                "numSubmitWorkers": tested["num_submit_workers"]}
    assert daemon["runRetries"] == {"enabled": True, "maxRetries": INSTANCE["run_retries"]["max_retries"]}
    assert daemon["runMonitoring"]["enabled"] is True
    assert daemon["runMonitoring"]["freeSlotsAfterRunEndSeconds"] == \
        INSTANCE["run_monitoring"]["free_slots_after_run_end_seconds"]
    assert VALUES["postgresql"]["postgresqlScheme"] == INSTANCE["storage"]["postgres"]["postgres_db"]["scheme"]


def test_every_dagster_process_and_run_uses_the_image_its_user_and_its_storage() -> None:
    image = VALUES["dagsterWebserver"]["image"]
    deployment = VALUES["dagster-user-deployments"]["deployments"][0]
    assert VALUES["dagsterDaemon"]["image"] == image == deployment["image"]
    assert re.search(r"useradd .*--uid 10001", DOCKERFILE)
    home = re.search(r"DAGSTER_HOME=(\S+)", DOCKERFILE).group(1)
    assert VALUES["global"]["dagsterHome"] == home
    for security in (VALUES["dagsterWebserver"]["podSecurityContext"], deployment["podSecurityContext"],
                     VALUES["dagsterDaemon"]["podSecurityContext"]):
        assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
    launcher = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    storage = f"{home}/storage"  # Dagster's storage directory: raw answers and frames, read by later runs
    for owner in (launcher, deployment):
        assert [m["mountPath"] for m in owner["volumeMounts"]] == [storage]
        claims = [v["persistentVolumeClaim"]["claimName"] for v in owner["volumes"]]
        assert claims == ["iiko-pipeline-storage"]
        assert [s["name"] for s in owner["envSecrets"]] == ["iiko-pipeline-env"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True


def test_the_code_location_and_chart_version_are_the_projects() -> None:
    deployment = VALUES["dagster-user-deployments"]["deployments"][0]
    workspace = (ROOT / "workspace.yaml").read_text()
    module = deployment["dagsterApiGrpcArgs"][deployment["dagsterApiGrpcArgs"].index("-m") + 1]
    assert module == "iiko_pipeline.definitions" and module in workspace
    pinned = re.search(r'"dagster==([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert f"--version {pinned}" in VALUES_PATH.read_text()
    assert VALUES["dagsterWebserver"]["service"]["type"] == "ClusterIP"  # never exposed without the proxy
    assert VALUES["dagsterWebserver"]["enableReadOnly"] is True


def test_nothing_secret_is_written_in_the_values() -> None:
    assert VALUES["generatePostgresqlPasswordSecret"] is False
    assert VALUES["postgresql"]["postgresqlPassword"] == ""
    text = VALUES_PATH.read_text()
    for name in ("CREDENTIAL_ENCRYPTION_KEY", "DATABASE_URL", "API_TOKEN", "DAGSTER_PG_PASSWORD"):
        assert not re.search(rf"^\s*-?\s*{name}\s*[:=]", text, re.M), name
        assert not re.search(rf"name:\s*{name}\s*\n\s*value:", text), name
    assert not re.search(r"postgres(ql)?(\+psycopg2)?://[^\s@]+:[^\s@]+@", text)
