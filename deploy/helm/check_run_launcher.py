"""Check that the run launcher of deploy/helm/values.yaml is one dagster-k8s accepts, with the image's versions.

The Helm chart turns `runLauncher.config.k8sRunLauncher` into the instance's `run_launcher` block (camelCase to
snake_case, plus the names only the chart knows: the instance ConfigMap, the password Secret, the namespace).
Without `helm` and a cluster, this is the part that can be checked here: the resulting config is validated
against `K8sRunLauncher`'s own config schema from the dagster-k8s installed in the image, so a key the pinned
dagster-k8s does not know, or a value of the wrong shape, fails. Run inside the image (deploy/docker/smoke.sh):

    python deploy/helm/check_run_launcher.py deploy/helm/values.yaml
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

# values keys the chart copies into the instance config as they are (camelCase -> snake_case)
COPIED = ("imagePullPolicy", "loadInclusterConfig", "envVars", "volumes", "volumeMounts", "labels", "resources",
          "runK8sConfig", "failPodOnRunFailure", "securityContext", "schedulerName", "jobNamespace")
NESTED = {"runK8sConfig"}  # its own keys become snake_case (container_config, ...); what is inside stays as given


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def snake_keys(value: dict) -> dict:
    return {snake(k): v for k, v in value.items()}


def instance_run_launcher(values: dict) -> dict:
    """The `run_launcher.config` the chart renders for these values (release namespace `iiko`)."""
    launcher = values["runLauncher"]
    if launcher["type"] != "K8sRunLauncher":
        raise SystemExit(f"runLauncher.type is {launcher['type']!r}, not K8sRunLauncher")
    given = launcher["config"]["k8sRunLauncher"]
    config = {snake(k): (snake_keys(v) if k in NESTED else v) for k, v in given.items() if k in COPIED}
    config.setdefault("job_namespace", "iiko")
    config.update({
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": "iiko-dagster-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "service_account_name": values["global"]["serviceAccountName"],
        "env_config_maps": ["iiko-dagster-pipeline-env", *(c["name"] for c in given.get("envConfigMaps", []))],
        "env_secrets": [s["name"] for s in given.get("envSecrets", [])],
    })
    return config


def main(path: str) -> int:
    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher

    values = yaml.safe_load(Path(path).read_text())
    config = instance_run_launcher(values)
    result = process_config(K8sRunLauncher.config_type(), config)
    if not result.success:
        for error in result.errors or []:
            print(f"FAIL: {error.message}", file=sys.stderr)
        return 1
    print(f"ok: dagster-k8s accepts the run launcher of {path} ({len(config)} settings)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "deploy/helm/values.yaml"))
