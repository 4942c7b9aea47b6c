"""Refusals: no token, wrong token, credentials in the URL, malformed or invalid requests. Each answers the
right status with a clear message, and nothing is stored, logged in to, partitioned or run.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import date, timedelta

import pytest
import requests

from iiko_pipeline.api import InsecureConfigError, check_token, create_app
from iiko_pipeline.core.specs import ENTITY_NAMES, windowed_specs
from tests.api.conftest import log_text, serve
from tests.conftest import EMULATOR_PASSWORD

LONG = "x" * 70_000


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """The warehouse on SQLite only, here: these tests are about what the HTTP layer refuses and what it logs;
    the warehouse is only looked at to see that nothing was stored (its backends are compared in tests/warehouse,
    and the API's syncs and stores run on PostgreSQL in test_api_brief.py, test_api_accounts.py and
    test_api_named_hosts.py)."""
    return sqlite_url


def _routes(api) -> list[tuple[str, str]]:
    return [("GET", api.url + "/openapi.json"), ("POST", api.path("/connect")),
            ("POST", api.path("/sync/restaurants")), ("POST", api.path("/sync/invoices")),
            ("GET", api.path()), ("DELETE", api.path())]


def test_health_is_public_and_every_other_route_needs_the_token(api):
    health = requests.get(api.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    for method, url in _routes(api):
        for token, header, fragment in [
            (None, None, "missing bearer token"),
            ("wrong-token-0123456789", None, "invalid bearer token"),
            (None, f"Basic {api.token}", "must be 'Bearer <API_TOKEN>'"),
            (None, "Bearer", "must be 'Bearer <API_TOKEN>'"),
            (api.token + "x", None, "invalid bearer token"),
        ]:
            headers = {"Authorization": header} if header else {}
            response = api.request(method, url, token=token, headers=headers, json=api.brief_connect_body())
            assert response.status_code == 401, (method, url, token, header, response.text)
            assert fragment in response.json()["detail"]
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    api.assert_nothing_stored()


def test_tokens_are_compared_in_constant_time(api, monkeypatch):
    import hmac

    from iiko_pipeline.api import security

    calls = []
    original = hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return original(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    assert api.request("GET", api.path(), token="short-wrong-token-x").status_code == 401
    assert api.request("GET", api.path()).status_code == 404
    assert calls == [(32, 32), (32, 32)]  # digests of equal length, whatever the token's length


@pytest.mark.parametrize("name", ["password", "pass", "Password", "iiko_password", "token", "api_key", "username"])
def test_credentials_in_the_query_string_are_refused_even_with_a_valid_body(api, logs, name):
    secret = EMULATOR_PASSWORD + "-in-url"
    for method, url in [("POST", api.path("/connect")), ("POST", api.path("/sync/invoices")),
                        ("GET", api.url + "/health"), ("GET", api.path())]:
        response = api.request(method, url, params={name: secret}, json=api.brief_connect_body())
        assert response.status_code == 400, (name, url, response.text)
        detail = response.json()["detail"]
        assert "never in the URL" in detail and name in detail and secret not in detail
        # ... also without a token: the URL is refused before authentication
        assert api.request(method, url, token=None, params={name: secret}).status_code == 400
    api.assert_nothing_stored()
    text = log_text(logs)
    assert secret not in text and EMULATOR_PASSWORD not in text
    access = [r.getMessage() for r in logs.records if r.name == "iiko_pipeline.api.access"]
    assert access and all("?" not in line and name not in line for line in access)
    assert any("/connect 400" in line for line in access)


def _cases(api):
    """(description, method, url, kwargs, status, field or None, fragment of the message)."""
    good = api.brief_connect_body()
    connect, sync = api.path("/connect"), api.path("/sync/invoices")
    today = date.today()
    json_headers = {"Content-Type": "application/json"}
    return [
        ("malformed JSON", "POST", connect, {"data": '{"username": "a", "password": ', "headers": json_headers},
         400, None, "malformed JSON"),
        ("not UTF-8", "POST", connect, {"data": b'{"username": "\xff"}', "headers": json_headers}, 400, None,
         "not UTF-8"),
        ("NaN", "POST", sync, {"data": '{"from": NaN}', "headers": json_headers}, 400, None, "malformed JSON"),
        ("array body", "POST", connect, {"json": [good]}, 422, "body", "must be a JSON object"),
        ("empty body", "POST", connect, {}, 422, "body", "a JSON object is required"),
        ("form body", "POST", connect, {"data": good}, 415, None, "Content-Type: application/json"),
        ("too large", "POST", connect, {"json": {**good, "username": LONG}}, 413, None, "too large"),
        ("missing password", "POST", connect, {"json": {"username": "u", "base_url": good["base_url"]}}, 422,
         "password", "is required"),
        ("empty username", "POST", connect, {"json": {**good, "username": "  "}}, 422, "username", "must not be empty"),
        ("password not a string", "POST", connect, {"json": {**good, "password": 12345}}, 422, "password",
         "must be a string"),
        ("unknown field", "POST", connect, {"json": {**good, "pasword": "x"}}, 422, "pasword", "unknown field"),
        ("duplicate key", "POST", connect, {"data": '{"username": "a", "password": "b", "password": "c"}',
                                            "headers": json_headers}, 422, "password", "more than once"),
        ("bad base_url", "POST", connect, {"json": {**good, "base_url": "ftp://example.com"}}, 422, "base_url",
         "http(s) URL"),
        ("base_url with credentials", "POST", connect,
         {"json": {**good, "base_url": "https://user:secret@example.com"}}, 422, "base_url", "user name, password"),
        ("non-UUID account (connect)", "POST", api.path("/connect", "not-a-uuid"), {"json": good}, 422,
         "account_id", "must be a UUID"),
        ("non-UUID account (sync)", "POST", api.path("/sync/restaurants", "42"), {}, 422, "account_id",
         "must be a UUID"),
        ("non-UUID account (status)", "GET", api.path("", "x"), {}, 422, "account_id", "must be a UUID"),
        ("non-UUID account (delete)", "DELETE", api.path("", "x"), {}, 422, "account_id", "must be a UUID"),
        ("unknown entity", "POST", api.path("/sync/orders"), {}, 422, "entity",
         "choose one of " + ", ".join(ENTITY_NAMES)),
        ("bad from", "POST", sync, {"json": {"from": "01.06.2024"}}, 422, "from", "YYYY-MM-DD"),
        ("impossible date", "POST", sync, {"params": {"to": "2024-02-30"}}, 422, "to", "not a calendar date"),
        ("from after to", "POST", sync, {"json": {"from": "2024-06-10", "to": "2024-06-01"}}, 422, "from",
         "must not be after to"),
        ("from in the future", "POST", sync, {"json": {"from": (today + timedelta(days=3)).isoformat()}}, 422,
         "from", "must not be after today"),
        ("from both ways", "POST", sync, {"params": {"from": "2024-06-01"}, "json": {"from": "2024-06-01"}}, 422,
         "from", "both in the query and in the body"),
        ("dates for restaurants", "POST", api.path("/sync/restaurants"), {"json": {"from": "2024-06-01"}}, 422,
         "from", "only " + ", ".join(s.name for s in windowed_specs()) + " take from/to"),
        ("unknown query parameter", "POST", sync, {"params": {"days": "3"}}, 422, "query",
         "accepts only from, to"),
        ("query on connect", "POST", connect, {"params": {"verbose": "1"}, "json": good}, 422, "query",
         "accepts none"),
        ("unknown route", "GET", api.url + "/api/v1/accounts", {}, 404, None, "no such endpoint"),
        ("wrong method", "PUT", api.path("/connect"), {"json": good}, 405, None, "allowed: POST"),
    ]


def test_invalid_requests_answer_clear_errors_and_store_nothing(api, logs):
    for name, method, url, kwargs, status, field, fragment in _cases(api):
        response = api.request(method, url, **kwargs)
        assert response.status_code == status, (name, response.status_code, response.text)
        body = response.json()
        assert fragment in body["detail"], (name, body)
        if status == 422:
            assert field in {e["field"] for e in body["errors"]}, (name, body)
            assert all(set(e) == {"field", "location", "reason"} for e in body["errors"])
        assert EMULATOR_PASSWORD not in response.text, name
    api.assert_nothing_stored()
    assert EMULATOR_PASSWORD not in log_text(logs)


def test_requests_for_unknown_accounts_answer_404_and_start_nothing(api):
    other = str(uuid.uuid4())
    for response in (api.sync("restaurants", account=other), api.sync("invoices", account=other, json={}),
                     api.status(account=other), api.disconnect(account=other)):
        assert response.status_code == 404, response.text
        assert f"account {other} has no iiko integration" in response.json()["detail"]
    api.assert_nothing_stored()


def test_integrations_switched_off_answer_503(api, monkeypatch):
    assert api.connect().status_code == 200
    monkeypatch.setenv("INTEGRATIONS_ENABLED", "false")
    for response in (api.connect(), api.sync("restaurants")):
        assert response.status_code == 503, response.text
        assert "INTEGRATIONS_ENABLED" in response.json()["detail"]
    assert api.instance.get_runs() == []


def test_the_api_refuses_to_start_without_a_token(backend):
    for token in (None, "", "   "):
        with pytest.raises(InsecureConfigError, match="API_TOKEN is not set"):
            create_app(instance=backend.instance, engine=backend.engine, keyring=backend.keyring, api_token=token)
    with pytest.raises(InsecureConfigError, match="at least 16 characters"):
        check_token("short")
    with pytest.raises(InsecureConfigError, match="loopback"):
        check_token(None, insecure=True, host="0.0.0.0")  # noqa: S104 - the refused case
    assert check_token(None, insecure=True, host="127.0.0.1") is None
    assert check_token(None, insecure=True, host="::1") is None
    assert check_token("a-real-token-0123456789", insecure=True, host="0.0.0.0") == "a-real-token-0123456789"  # noqa: S104


def test_insecure_local_mode_serves_without_a_token(backend, caplog):
    caplog.set_level(logging.WARNING, logger="iiko_pipeline.api")
    for api in serve(backend, api_token=None, insecure=True):
        response = api.connect(token=None)
        assert response.status_code == 200, response.text
        assert api.status(token=None).status_code == 200
    assert any("WITHOUT authentication" in r.getMessage() for r in caplog.records)


def test_the_cli_refuses_to_start_without_a_token(monkeypatch, capsys):
    from iiko_pipeline.cli import main

    monkeypatch.delenv("API_TOKEN", raising=False)
    with pytest.raises(SystemExit, match="API_TOKEN is not set"):
        main(["api", "--port", "0"])
    with pytest.raises(SystemExit, match="loopback"):
        main(["api", "--port", "0", "--host", "0.0.0.0", "--insecure-no-auth"])  # noqa: S104
    monkeypatch.setenv("API_TOKEN", "short")
    with pytest.raises(SystemExit, match="at least 16"):
        main(["api", "--port", "0"])


def test_request_bodies_are_never_logged(api, logs):
    body = api.brief_connect_body()
    assert api.connect(body).status_code == 200
    assert api.connect({**body, "password": "wrong-" + EMULATOR_PASSWORD}).status_code == 502
    bad = json.dumps(body)[:-3]
    assert api.request("POST", api.path("/connect"), data=bad,
                       headers={"Content-Type": "application/json"}).status_code == 400
    text = log_text(logs)
    assert EMULATOR_PASSWORD not in text and '"password"' not in text
