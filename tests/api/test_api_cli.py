"""`iiko-pipeline api` as a real process: a sync through it shows in the Dagster UI (the webserver's GraphQL,
which the UI reads) with its materialization metadata, and its output holds no password and no query string.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from iiko_pipeline.warehouse.crypto import generate_key
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD, ON_POSTGRESQL

pytestmark = pytest.mark.slow

TOKEN = "cli-test-token-0123456789abcdef"
PREFIX = "/api/v1/accounts/{account}/integrations/iiko"


class Process:
    """A child process whose output is collected on threads; stopped by its own pid only."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: str) -> None:
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, encoding="utf-8", errors="replace")
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True),
                         threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True)]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _drain(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"{what} within {timeout}s; exit {self.proc.returncode}\n{self.output()[-4000:]}")

    def output(self) -> str:
        return "".join(self.out) + "".join(self.err)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for thread in self._threads:
            thread.join(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(url: str, query: str, variables: dict) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


RUNS_QUERY = """
query Runs($account: String!) {
  runsOrError(filter: {tags: [{key: "iiko/account", value: $account}]}) {
    ... on Runs { results { runId status jobName tags { key value } } }
  }
}
"""

MATERIALIZATIONS_QUERY = """
query Materializations($account: String!) {
  assetOrError(assetKey: {path: ["restaurants"]}) {
    ... on Asset {
      assetMaterializations(partitions: [$account]) {
        runId
        partition
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""


@ON_POSTGRESQL
def test_the_api_command_serves_syncs_that_show_in_the_dagster_ui(emulator, tmp_path: Path, db_url):
    home = tmp_path / "dagster_home"
    home.mkdir()
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "API_TOKEN": TOKEN, "CREDENTIAL_ENCRYPTION_KEY": generate_key(), "DATABASE_URL": db_url,
           "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("INTEGRATIONS_ENABLED", None)
    api = Process([sys.executable, "-m", "iiko_pipeline.cli", "api", "--host", "127.0.0.1", "--port", "0"], env, repo)
    try:
        line = api.wait_for(lambda: next((x for x in api.out if x.startswith("listening on ")), None), 90,
                            "the API did not start")
        url = line.split()[-1]
        account = str(uuid.uuid4())
        base = url + PREFIX.format(account=account)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.get(url + "/health", timeout=10).json() == {"status": "ok"}
        assert requests.get(base, timeout=10).status_code == 401
        refused = requests.post(base + "/connect", params={"password": EMULATOR_PASSWORD}, headers=auth, timeout=30,
                                json={"username": EMULATOR_LOGIN, "password": EMULATOR_PASSWORD,
                                      "base_url": emulator.url})
        assert refused.status_code == 400
        connected = requests.post(base + "/connect", headers=auth, timeout=60,
                                  json={"username": EMULATOR_LOGIN, "password": EMULATOR_PASSWORD,
                                        "base_url": emulator.url})
        assert connected.status_code == 200, connected.text
        synced = requests.post(base + "/sync/restaurants", headers=auth, timeout=120)
        assert synced.status_code == 200, synced.text
        result = synced.json()
        assert result["created"] == len(emulator.state.dataset.restaurants())
        status = requests.get(base, headers=auth, timeout=30).json()
        assert status["entities"]["restaurants"]["last_run_id"] == result["run_id"]
    finally:
        api.stop()
    output = api.output()
    assert EMULATOR_PASSWORD not in output and "password=" not in output and "?" not in "".join(
        line for line in api.err if "iiko_pipeline.api.access" in line)
    assert "/integrations/iiko/connect 400" in output and "/integrations/iiko/sync/{entity} 200" in output

    port = _free_port()
    ui_env = {k: v for k, v in env.items() if k != "API_TOKEN"}
    ui = Process([sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port),
                  "-m", "iiko_pipeline.definitions"], ui_env, repo)
    ui_url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(ui_url + "/server_info", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        ui.wait_for(ready, 90, "the Dagster webserver did not start")
        runs = _graphql(ui_url, RUNS_QUERY, {"account": account})["runsOrError"]["results"]
        assert [r["runId"] for r in runs] == [result["run_id"]]
        assert runs[0]["status"] == "SUCCESS" and runs[0]["jobName"] == "sync_account_job"
        assert {"key": "iiko/trigger", "value": "api"} in runs[0]["tags"]
        events = _graphql(ui_url, MATERIALIZATIONS_QUERY, {"account": account})["assetOrError"]["assetMaterializations"]
        assert [(e["runId"], e["partition"]) for e in events] == [(result["run_id"], account)]
        meta = {m["label"]: m.get("intValue") for m in events[0]["metadataEntries"]}
        assert meta["created"] == meta["total"] == result["created"]
        assert {"updated", "errors", "error_details", "dagster/row_count"} <= set(meta)
    finally:
        ui.stop()
