"""Hardening from issue 13: the OpenAPI document says exactly what each sync endpoint accepts; credentials that
are not Unicode text are refused before any request; and the insecure local mode answers loopback Host headers
only (DNS rebinding).
"""

from __future__ import annotations

import io
import json
import uuid

import pytest
import requests

from iiko_pipeline.core.specs import REGISTRY
from tests.api.conftest import PREFIX, serve
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD

DOC_PREFIX = PREFIX.replace("{account}", "{account_id}")
WINDOW = ("from", "to")


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """The warehouse on SQLite only, here: these tests are about what the HTTP layer accepts, refuses and documents;
    the warehouse is only looked at to see that nothing was stored (its backends are compared in tests/warehouse,
    and the API's syncs and stores run on PostgreSQL in test_api_brief.py, test_api_accounts.py and
    test_api_named_hosts.py)."""
    return sqlite_url


# ---------------------------------------------------------------------------------------- the OpenAPI document


def _sync_operation(doc: dict, entity: str) -> dict:
    return doc["paths"][f"{DOC_PREFIX}/sync/{entity}"]["post"]


def _body_fields(doc: dict, operation: dict) -> set[str]:
    body = operation.get("requestBody")
    if body is None:
        return set()
    schema = body["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return set(schema.get("properties", {}))


def test_the_openapi_document_says_exactly_what_each_sync_endpoint_accepts(api):
    """No credentials are stored for the account, so a request the endpoint accepts answers 404 (after
    validation) and one it refuses answers 422: what the document offers must never be refused."""
    doc = api.request("GET", api.url + "/openapi.json").json()
    assert not [p for p in doc["paths"] if "{entity}" in p]
    for entity in REGISTRY:
        operation = _sync_operation(doc, entity.name)
        query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        body = _body_fields(doc, operation)
        if entity.windowed:
            assert query == set(WINDOW) and body == set(WINDOW), entity.name
        else:
            assert query == set() and body == set() and "requestBody" not in operation, entity.name
        # every documented field, in the query and in the body, is accepted
        documented = {name: "2024-01-01" if name == "from" else "2024-01-31" for name in query}
        answer = api.sync(entity.name, params=documented)
        assert answer.status_code == 404, (entity.name, answer.text)
        if body:
            answer = api.sync(entity.name, json={name: documented[name] for name in body})
            assert answer.status_code == 404, (entity.name, answer.text)
        answer = api.sync(entity.name)  # nothing at all is always accepted
        assert answer.status_code == 404, (entity.name, answer.text)
        # what the document does not offer is refused
        if not entity.windowed:
            assert api.sync(entity.name, params={"from": "2024-01-01"}).status_code == 422
            assert api.sync(entity.name, json={"from": "2024-01-01"}).status_code == 422
    api.assert_nothing_stored()


def test_openapi_examples_name_no_public_host(api):
    doc = api.request("GET", api.url + "/openapi.json").json()
    urls = set(_urls(doc))
    assert urls  # the connect example names a server
    for url in urls:
        host = url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        assert host in {"127.0.0.1", "localhost"} or host.endswith(".example"), url


def _urls(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _urls(value)
    elif isinstance(node, list):
        for value in node:
            yield from _urls(value)
    elif isinstance(node, str):
        for word in node.replace("(", " ").replace(")", " ").split():
            if "://" in word:
                yield word.rstrip(".,;")


# ------------------------------------------------------------------------- credentials that are not text


@pytest.mark.parametrize("field", ["password", "username"])
def test_credentials_that_are_not_unicode_text_are_refused_before_any_request(api, field):
    body = {**api.brief_connect_body(), field: "ab\ud800cd"}
    raw = json.dumps(body)  # ensure_ascii: the lone surrogate travels as the JSON escape \ud800
    assert "\\ud800" in raw
    response = api.request("POST", api.path("/connect"), data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [field]
    assert "valid Unicode text" in errors[0]["reason"]
    assert "ud800" not in response.text.lower() and "\ud800" not in response.text
    assert api.emulator.state.log.records() == []  # no request reached iiko
    api.assert_nothing_stored()


@pytest.mark.parametrize("field", ["password", "username"])
def test_the_cli_connect_refuses_credentials_that_are_not_unicode_text(backend, monkeypatch, capsys, field):
    from iiko_pipeline.cli import main

    username, password = EMULATOR_LOGIN, EMULATOR_PASSWORD
    if field == "username":
        username = "etl\ud800user"
    else:
        password = "pass\ud800word"
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    with pytest.raises(SystemExit) as exited:
        main(["connect", str(uuid.uuid4()), "--username", username, "--base-url", backend.emulator.url,
              "--password-stdin"])
    message = str(exited.value.code)
    assert exited.value.code not in (0, None)
    assert message.startswith(f"error: {field} ") and "valid Unicode text" in message and "\n" not in message
    assert "\ud800" not in message and "ud800" not in message
    out = capsys.readouterr()
    assert "\ud800" not in out.out + out.err
    assert backend.emulator.state.log.records() == []


# ------------------------------------------------------------------------------- Host header, insecure mode


def _get(url: str, host: str | None = None, token: str | None = None) -> requests.Response:
    headers = {"Host": host} if host is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(url, headers=headers, timeout=10)


def test_insecure_mode_answers_loopback_host_headers_only(backend):
    for api in serve(backend, api_token=None, insecure=True):
        port = api.url.rsplit(":", 1)[1]
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", "0.0.0.0",  # noqa: S104
                     f"[::2]:{port}", f"localhost:{port}:1", ""):
            for url in (api.url + "/health", api.path(), api.url + "/openapi.json"):
                refused = _get(url, host)
                assert refused.status_code == 400, (host, url, refused.text)
                assert "Host header" in refused.json()["detail"]
        refused = api.connect(token=None, headers={"Host": "evil.example"})
        assert refused.status_code == 400
        api.assert_nothing_stored()
        for host in (f"127.0.0.1:{port}", "127.0.0.1", "localhost", f"localhost:{port}", "[::1]", f"[::1]:{port}"):
            assert _get(api.url + "/health", host).status_code == 200, host
        assert _get(api.url + "/health").status_code == 200  # what requests sends: 127.0.0.1:PORT
        assert api.connect(token=None, headers={"Host": f"127.0.0.1:{port}"}).status_code == 200


def test_with_a_token_the_host_header_is_not_checked(api):
    assert _get(api.url + "/health", "evil.example").status_code == 200
    assert _get(api.path(), "evil.example").status_code == 401
    assert _get(api.url + "/openapi.json", "evil.example", api.token).status_code == 200
