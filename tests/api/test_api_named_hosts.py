"""Only named hosts (issue 13, item 1): no built-in iiko server, https only (loopback aside, or an account's
explicit `allow_http`), the optional allow-list, checked at connect and again at every sync, before any request;
and a foreign host's error body never comes back in an answer, a `connection_error`, an exception or a log line at
INFO or above.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from iiko_pipeline.iiko import IikoClient
from iiko_pipeline.iiko.errors import IikoError
from iiko_pipeline.iiko.hosts import is_loopback
from iiko_pipeline.services.sync import run_account_sync
from iiko_pipeline.warehouse.credentials import load_credentials, save_credentials
from iiko_pipeline.warehouse.crypto import generate_key
from tests.api.conftest import log_text
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD, ON_POSTGRESQL, ON_SQLITE, serving

POLICY_ENV = ("IIKO_DEFAULT_BASE_URL", "IIKO_ALLOW_HTTP", "IIKO_ALLOWED_HOSTS")
SECRET = "db_password=hunter2-0f9c"
SECRET_BODY = f"INTERNAL-SECRET: {SECRET} (internal admin console)"


@pytest.fixture(autouse=True)
def _no_policy_env(monkeypatch) -> None:
    for name in POLICY_ENV:
        monkeypatch.delenv(name, raising=False)


def _requests(emulator) -> list:
    return emulator.state.log.records()


def _refused_field(response) -> str:
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["base_url"], errors
    return errors[0]["reason"]


@ON_SQLITE
def test_connect_without_base_url_or_default_is_422_and_sends_nothing(api):
    response = api.connect({"username": EMULATOR_LOGIN, "password": EMULATOR_PASSWORD})
    assert "IIKO_DEFAULT_BASE_URL" in _refused_field(response)
    assert EMULATOR_PASSWORD not in response.text
    assert _requests(api.emulator) == []
    api.assert_nothing_stored()


@ON_POSTGRESQL
def test_connect_without_base_url_uses_iiko_default_base_url(api, monkeypatch):
    monkeypatch.setenv("IIKO_DEFAULT_BASE_URL", api.emulator.url)
    response = api.connect({"username": EMULATOR_LOGIN, "password": EMULATOR_PASSWORD})
    assert response.status_code == 200, response.text
    assert response.json()["is_connected"] is True


@ON_SQLITE
@pytest.mark.parametrize("url", ["http://iiko.example", "http://iiko.example:8080/resto/api"])
def test_plain_http_to_a_named_host_is_refused_before_any_request(api, url):
    # iiko.example is a reserved name: had anything tried DNS or a connection, this would not be a 422
    assert "https" in _refused_field(api.connect({**api.brief_connect_body(), "base_url": url}))
    assert _requests(api.emulator) == []


@ON_SQLITE
def test_a_default_base_url_over_plain_http_is_refused_too(api, monkeypatch):
    monkeypatch.setenv("IIKO_DEFAULT_BASE_URL", "http://iiko.example")
    response = api.connect({"username": EMULATOR_LOGIN, "password": EMULATOR_PASSWORD})
    assert "https" in _refused_field(response)


@ON_SQLITE
def test_allowed_hosts_refuse_other_hosts_before_any_request(api, monkeypatch):
    monkeypatch.setenv("IIKO_ALLOWED_HOSTS", "*.iiko.it, *.syrve.online")
    assert "IIKO_ALLOWED_HOSTS" in _refused_field(api.connect())
    assert _requests(api.emulator) == []
    api.assert_nothing_stored()
    monkeypatch.setenv("IIKO_ALLOWED_HOSTS", "*.iiko.it,127.0.0.1")
    assert api.connect().status_code == 200


@ON_SQLITE
def test_a_stored_account_without_base_url_fails_the_sync_as_config(api):
    save_credentials(api.engine, api.keyring, api.account_id, "iiko", EMULATOR_LOGIN, EMULATOR_PASSWORD,
                     base_url=None, connected_at=datetime.now(UTC))
    outcome = run_account_sync(api.instance, api.account_id, ["restaurants"])
    assert not outcome.success
    kinds = {f.kind for f in outcome.step_failures}
    assert kinds == {"config"}, outcome.step_failures
    assert any("IIKO_DEFAULT_BASE_URL" in f.reason for f in outcome.step_failures)
    assert _requests(api.emulator) == []


@ON_POSTGRESQL
def test_the_allow_list_is_checked_again_when_a_stored_account_syncs(api, monkeypatch):
    assert api.connect().status_code == 200
    api.emulator.state.log.clear()
    monkeypatch.setenv("IIKO_ALLOWED_HOSTS", "*.iiko.it")
    response = api.sync("restaurants")
    assert response.status_code == 500 and "IIKO_ALLOWED_HOSTS" in response.json()["detail"], response.text
    assert _requests(api.emulator) == []


def test_cli_connect_without_base_url_says_how_to_give_one(emulator, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in POLICY_ENV}
    env.update({"DAGSTER_HOME": str(tmp_path / "home"), "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
                "CREDENTIAL_ENCRYPTION_KEY": generate_key(), "IIKO_PASSWORD": EMULATOR_PASSWORD})
    cli = [sys.executable, "-m", "iiko_pipeline.cli", "connect", str(uuid.uuid4()), "--username", EMULATOR_LOGIN]
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--base-url" in lines[0] and "IIKO_DEFAULT_BASE_URL" in lines[0], done.stderr
    refused = subprocess.run([*cli, "--base-url", "http://iiko.example"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode != 0 and "https" in refused.stderr
    assert emulator.state.log.records() == []


# ------------------------------------------------------------------ the per-account opt-in to plain http


def _loopback_alias() -> str | None:
    """A name that is not `localhost` (so the policy does not count it as loopback) but that /etc/hosts maps to
    127.0.0.1, and that resolves to nothing else (e.g. this machine's host name): the emulator is reached over
    plain http through a "named" host, and nothing leaves the machine. None when there is no such name."""
    try:
        lines = Path("/etc/hosts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or fields[0] != "127.0.0.1":
            continue
        for name in fields[1:]:
            if is_loopback(name):
                continue
            try:
                addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
            except OSError:
                continue
            if addresses == {"127.0.0.1"}:
                return name
    return None


@ON_POSTGRESQL
def test_allow_http_connects_and_syncs_a_plain_http_named_host(api):
    name = _loopback_alias()
    if name is None:
        pytest.skip("no name other than localhost maps to 127.0.0.1 only in /etc/hosts")
    url = api.emulator.url.replace("://127.0.0.1:", f"://{name}:")
    body = {**api.brief_connect_body(), "base_url": url}
    reason = _refused_field(api.connect(body))
    assert "https" in reason and "allow_http" in reason
    assert _requests(api.emulator) == []
    api.assert_nothing_stored()
    response = api.connect({**body, "allow_http": True})
    assert response.status_code == 200 and response.json()["is_connected"] is True, response.text
    status = api.status().json()
    assert (status["base_url"], status["allow_http"]) == (url, True)
    synced = api.sync("restaurants")  # the run checks the stored URL with the stored opt-in
    assert synced.status_code == 200, synced.text


@ON_SQLITE
def test_allow_http_lifts_the_https_rule_of_that_connect_and_nothing_else(api, monkeypatch):
    # iiko.example is refused by the allow-list: whatever the https rule decides, nothing can be sent
    monkeypatch.setenv("IIKO_ALLOWED_HOSTS", "*.iiko.it")
    body = {**api.brief_connect_body(), "base_url": "http://iiko.example"}
    assert "https" in _refused_field(api.connect({**body, "allow_http": False}))
    reason = _refused_field(api.connect({**body, "allow_http": True}))
    assert "IIKO_ALLOWED_HOSTS" in reason and "https" not in reason  # past the https rule, stopped by the list
    assert _requests(api.emulator) == []
    api.assert_nothing_stored()


@ON_SQLITE
@pytest.mark.parametrize("value", ["yes", 1, None])
def test_allow_http_must_be_a_json_boolean(api, value):
    body = {**api.brief_connect_body(), "base_url": "http://iiko.example", "allow_http": value}
    response = api.connect(body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["allow_http"], errors  # base_url is not judged on a broken flag
    assert "boolean" in errors[0]["reason"]
    assert _requests(api.emulator) == []
    api.assert_nothing_stored()


@ON_POSTGRESQL
def test_the_opt_in_is_stored_shown_and_kept_by_a_failed_connect(api):
    assert api.connect({**api.brief_connect_body(), "allow_http": True}).status_code == 200
    answer = api.status()
    assert answer.json()["allow_http"] is True and EMULATOR_PASSWORD not in answer.text
    assert load_credentials(api.engine, api.keyring, api.account_id, "iiko").allow_http is True
    failed = api.connect({**api.brief_connect_body(), "password": "wrong-password", "allow_http": False})
    assert failed.status_code == 502, failed.text
    stored = load_credentials(api.engine, api.keyring, api.account_id, "iiko")
    assert (stored.password, stored.allow_http) == (EMULATOR_PASSWORD, True)  # the working credentials stay
    assert api.connect().status_code == 200  # connected again without it: https only from now on
    assert api.status().json()["allow_http"] is False


def _config_failures(api) -> list:
    outcome = run_account_sync(api.instance, api.account_id, ["restaurants"])
    assert not outcome.success
    assert {f.kind for f in outcome.step_failures} == {"config"}, outcome.step_failures
    assert _requests(api.emulator) == []
    return [f.reason for f in outcome.step_failures]


@ON_SQLITE
def test_a_stored_plain_http_account_without_the_opt_in_fails_its_run_as_config(api):
    save_credentials(api.engine, api.keyring, api.account_id, "iiko", EMULATOR_LOGIN, EMULATOR_PASSWORD,
                     base_url="http://iiko.example", connected_at=datetime.now(UTC))
    reasons = _config_failures(api)
    assert any("https" in r and "allow_http" in r for r in reasons), reasons


@ON_POSTGRESQL
def test_a_stored_opt_in_is_what_the_run_checks(api, monkeypatch):
    save_credentials(api.engine, api.keyring, api.account_id, "iiko", EMULATOR_LOGIN, EMULATOR_PASSWORD,
                     base_url="http://iiko.example", connected_at=datetime.now(UTC), allow_http=True)
    monkeypatch.setenv("IIKO_ALLOWED_HOSTS", "*.iiko.it")  # so the run stops before any request either way
    reasons = _config_failures(api)
    assert any("IIKO_ALLOWED_HOSTS" in r for r in reasons) and not any("https" in r for r in reasons), reasons


def test_cli_connect_allow_http_is_stored_and_listed(emulator, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in POLICY_ENV}
    env.update({"DAGSTER_HOME": str(tmp_path / "home"), "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
                "CREDENTIAL_ENCRYPTION_KEY": generate_key(), "IIKO_PASSWORD": EMULATOR_PASSWORD})
    account = str(uuid.uuid4())
    cli = [sys.executable, "-m", "iiko_pipeline.cli"]
    connect = [*cli, "connect", account, "--username", EMULATOR_LOGIN, "--allow-http"]
    named = subprocess.run([*connect, "--base-url", "http://iiko.example"], capture_output=True, text=True,
                           env={**env, "IIKO_ALLOWED_HOSTS": "*.iiko.it"}, timeout=120)
    assert named.returncode != 0 and "IIKO_ALLOWED_HOSTS" in named.stderr and "https" not in named.stderr
    assert emulator.state.log.records() == []
    ok = subprocess.run([*connect, "--base-url", emulator.url], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    listed = subprocess.run([*cli, "accounts"], env=env, capture_output=True, text=True, timeout=120)
    assert [(a["account_id"], a["allow_http"]) for a in json.loads(listed.stdout)] == [(account, True)]
    assert EMULATOR_PASSWORD not in listed.stdout


# ------------------------------------------------------------------ a foreign host's body is never echoed


class _SecretHandler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = SECRET_BODY.encode()
        self.send_response(401)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def secret_server() -> Iterator[str]:
    with serving(_SecretHandler) as url:
        yield url


@ON_SQLITE
def test_a_401_with_a_secret_body_is_reported_by_status_only(api, logs, secret_server):
    response = api.connect({**api.brief_connect_body(), "base_url": secret_server})
    assert response.status_code == 502, response.text
    error = response.json()["connection_error"]
    assert "401" in error and "not shown" in error, error
    loud = "\n".join(r.getMessage() for r in logs.records if r.levelno >= logging.INFO)
    assert "not shown" in loud  # the failure is logged, by status only
    for text in (response.text, error, loud):
        assert "hunter2" not in text and "INTERNAL-SECRET" not in text
    assert "hunter2" not in log_text(logs)  # the DEBUG excerpt is redacted
    api.assert_nothing_stored()


def test_the_client_exception_and_logs_never_hold_the_body(secret_server, caplog):
    caplog.set_level(logging.DEBUG, logger="iiko_pipeline")
    with pytest.raises(IikoError) as info, IikoClient(secret_server, "user", "pw"):
        pass
    err = info.value
    assert err.status == 401
    for text in (str(err), repr(err), getattr(err, "text", ""), err.message):
        assert "hunter2" not in text and "INTERNAL-SECRET" not in text
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not any("INTERNAL-SECRET" in m or "hunter2" in m for m in loud), loud
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and "body excerpt" in r.getMessage()]
    assert debug and all("hunter2" not in m for m in debug), debug  # redacted even at DEBUG
