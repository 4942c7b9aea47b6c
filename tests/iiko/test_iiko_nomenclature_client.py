"""Products, product groups, measure units and employees (issue 14) through the client against the emulator:
what it holds (deleted items included), the raw answer kept byte for byte, employees through the XML parsers,
403 re-checked, 404 on an old server as IikoNotAvailableError without a retry, and bad JSON answers as
IikoResponseError without a secret in any message."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests
from iiko_helpers import FAST_RETRY, TIMEOUT, Control

from iiko_pipeline.iiko import ClientSettings, IikoClient, IikoJsonResponse, IikoNotAvailableError
from iiko_pipeline.iiko.client import password_hash
from iiko_pipeline.iiko.errors import IikoApiError, IikoPermissionError, IikoResponseError, IikoTransportError
from iiko_pipeline.iiko.parsing import iter_employees
from tests.conftest import EMULATOR_PASSWORD, serving

MakeClient = Callable[..., IikoClient]
PRODUCTS = "v2/entities/products/list"
GROUPS = "v2/entities/products/group/list"


def _delete(control: Control, path: str) -> None:
    response = control.http.delete(f"{control.base}/{path}", timeout=TIMEOUT)
    assert response.status_code < 300, response.text


def _direct(url: str, path: str, **params: str) -> bytes:
    """The same answer fetched by hand with a token of its own (logged out after)."""
    with requests.Session() as http:
        token = http.get(f"{url}/resto/api/auth", timeout=TIMEOUT, params={
            "login": "etl_user", "pass": password_hash(EMULATOR_PASSWORD)}).text
        try:
            return http.get(f"{url}/resto/api/{path}", params={**params, "key": token}, timeout=TIMEOUT).content
        finally:
            http.get(f"{url}/resto/api/logout", params={"key": token}, timeout=TIMEOUT)


def test_the_lists_equal_the_emulator_truth_deleted_items_included(make_client: MakeClient, control: Control,
                                                                   emulator: Any) -> None:
    product, group = control.truth("products")[0]["id"], control.truth("product_groups")[0]["id"]
    _delete(control, f"products/{product}")
    _delete(control, f"product_groups/{group}")
    with make_client() as client:
        products, groups, units = client.products(), client.product_groups(), client.measure_units()
    for answer, truth in ((products, control.truth("products")), (groups, control.truth("product_groups"))):
        assert isinstance(answer, IikoJsonResponse) and answer.status == 200
        assert [item["id"] for item in answer.items] == [t["id"] for t in truth]
        assert {i["id"]: i["deleted"] for i in answer.items} == {t["id"]: t["deleted"] for t in truth}
    assert {p["id"] for p in products.items if p["deleted"]} >= {product}
    assert {g["id"] for g in groups.items if g["deleted"]} >= {group}
    by_id = {p["id"]: p for p in products.items}
    for t in control.truth("products"):
        assert (by_id[t["id"]]["name"], by_id[t["id"]]["type"], by_id[t["id"]]["mainUnit"]) == \
            (t["name"], t["type"], t["main_unit_id"])
        assert Decimal(str(by_id[t["id"]]["defaultSalePrice"])) == Decimal(t["default_sale_price"])
    truth_units = emulator.state.dataset.units()
    assert [(u["id"], u["name"], u["rootType"]) for u in units.items] == \
        [(u.id, u.name, "MeasureUnit") for u in truth_units]
    assert {p["mainUnit"] for p in products.items} <= {u["id"] for u in units.items}


def test_the_raw_answers_are_kept_byte_for_byte(make_client: MakeClient, emulator: Any) -> None:
    with make_client() as client:
        answers = {PRODUCTS: client.products(), GROUPS: client.product_groups(),
                   "v2/entities/list": client.measure_units(), "employees": client.employees()}
    extra = {"v2/entities/list": {"rootType": "MeasureUnit"}}
    for path, answer in answers.items():
        assert answer.endpoint == path
        assert answer.body == _direct(emulator.url, path, includeDeleted="true", **extra.get(path, {}))
        if isinstance(answer, IikoJsonResponse):
            assert list(answer.items) == json.loads(answer.body, parse_float=Decimal)


def test_employees_parse_through_the_xml_path(make_client: MakeClient, control: Control) -> None:
    fired = control.truth("employees")[-1]["id"]
    _delete(control, f"employees/{fired}")
    with make_client() as client:
        response = client.employees()
    assert response.root == "employees"
    records = list(iter_employees(response.body, endpoint=response.endpoint))
    truth = {e["id"]: e for e in control.truth("employees")}
    assert [r["id"] for r in records] == list(truth)
    assert {r["id"] for r in records if r["deleted"] == "true"} >= {fired}
    for record in records:
        expected = truth[record["id"]]
        assert record["name"] == expected["name"] and (record.get("code") or "") == (expected["code"] or "")
        roles = record.get("roleCodes", [])
        assert (roles if isinstance(roles, list) else [roles]) == expected["role_codes"]
        assert record["supplier"] == str(expected["is_supplier"]).lower()
        assert record["employee"] in ("true", "false")  # the nested flag, not a record


def test_a_permission_denial_is_re_checked_then_raised(make_client: MakeClient, control: Control) -> None:
    control.configure(permission_denied=[PRODUCTS])
    with make_client() as client, pytest.raises(IikoPermissionError) as info:
        client.products()
    assert info.value.definitive and info.value.endpoint == PRODUCTS and info.value.status == 403
    assert [r["status"] for r in control.requests(PRODUCTS)] == [403, 403]


@pytest.mark.parametrize("method, endpoint", [("products", PRODUCTS), ("product_groups", GROUPS)])
def test_an_old_server_is_not_available_after_one_request(make_client: MakeClient, control: Control,
                                                          method: str, endpoint: str) -> None:
    control.configure(version="6.0.0")
    with make_client() as client:
        with pytest.raises(IikoNotAvailableError) as info:
            getattr(client, method)()
        assert client.employees().root == "employees"  # the session goes on: skip the entity, not the run
    error = info.value
    assert isinstance(error, IikoApiError) and error.endpoint == endpoint and error.status == 404
    assert not error.transient and error.attempts is None and "not available on this iiko version" in str(error)
    assert [r["status"] for r in control.requests(endpoint)] == [404]


# ------------------------------------------------------------------------------- answers we cannot use

TOKEN = "tok-5f2a9c0d"
PASSWORD = "s3cret-Пароль"
BODIES: dict[str, tuple[str, bytes]] = {
    "object": ("application/json", b'{"error": "x", "items": []}'),
    "scalars": ("application/json", b'[{"id": "a"}, 42]'),
    "null": ("application/json", b"null"),
    "broken": ("application/json", b'[{"id": "a"'),
    "empty": ("application/json", b""),
    "xml": ("application/xml", b"<products/>"),
    "html": ("text/html", b"<html><body>Login</body></html>"),
    "ok": ("application/json;charset=UTF-8", b'[{"id": "a", "price": 1.10, "extra": {"x": [1]}}]'),
}


class _FakeIiko(BaseHTTPRequestHandler):
    """Logs in anyone (echoing the secrets back in error bodies would be a leak); `/<name>/resto/...`
    answers the data calls with `BODIES[name]`."""

    def log_message(self, *args) -> None:
        return None

    def do_GET(self) -> None:
        name, _, path = self.path.lstrip("/").partition("/")
        if "/auth" in path:
            status, ctype, body = 200, "text/plain", TOKEN.encode()
        elif "/logout" in path:
            status, ctype, body = 200, "text/plain", b""
        else:
            status, (ctype, body) = 200, BODIES[name]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


@pytest.fixture
def fake() -> Iterator[str]:
    with serving(_FakeIiko) as url:
        yield url


def _client(url: str, name: str) -> IikoClient:
    return IikoClient(f"{url}/{name}", "etl_user", PASSWORD,
                      settings=ClientSettings(connect_timeout=2.0, read_timeout=5.0, retry=FAST_RETRY))


def _secrets_absent(error: Exception) -> None:
    text = f"{error} {error!r} {getattr(error, 'message', '')}"
    for secret in (PASSWORD, password_hash(PASSWORD), TOKEN):
        assert secret not in text


@pytest.mark.parametrize("name, kind, transient", [
    ("object", "root", False), ("scalars", "root", False), ("null", "root", False),
    ("broken", "syntax", True), ("empty", "empty", True), ("xml", "content_type", False),
])
def test_an_answer_that_is_not_a_json_array_of_objects_is_a_response_error(fake: str, name: str, kind: str,
                                                                             transient: bool) -> None:
    with _client(fake, name) as client, pytest.raises(IikoResponseError) as info:
        client.products()
    error = info.value
    assert error.kind == kind and error.transient is transient and error.endpoint == PRODUCTS
    assert PRODUCTS in str(error) and (error.attempts == FAST_RETRY.max_attempts if transient else True)
    _secrets_absent(error)


def test_an_html_page_is_a_transport_error(fake: str) -> None:
    with _client(fake, "html") as client, pytest.raises(IikoTransportError) as info:
        client.measure_units()
    assert "HTML page" in str(info.value) and info.value.endpoint == "v2/entities/list"
    _secrets_absent(info.value)


def test_unknown_fields_are_kept_and_numbers_are_exact(fake: str) -> None:
    with _client(fake, "ok") as client:
        answer = client.product_groups()
    assert answer.body == BODIES["ok"][1]
    assert answer.items == ({"id": "a", "price": Decimal("1.10"), "extra": {"x": [1]}},)
    assert "items=<1>" in repr(answer) and "1.10" not in repr(answer)


def test_no_secret_in_the_errors_of_the_emulator(emulator: Any, control: Control,
                                                 fast_settings: ClientSettings) -> None:
    tokens: list[str | None] = []
    errors: list[Exception] = []
    control.configure(permission_denied=[GROUPS])
    with IikoClient(emulator.url, emulator.config.login, EMULATOR_PASSWORD, settings=fast_settings,
                    on_token=tokens.append) as client:
        with pytest.raises(IikoPermissionError) as denied:
            client.product_groups()
        errors.append(denied.value)
        control.configure(version="6.0.0")
        with pytest.raises(IikoNotAvailableError) as missing:
            client.products()
        errors.append(missing.value)
    secrets = [EMULATOR_PASSWORD, password_hash(EMULATOR_PASSWORD), *filter(None, tokens)]
    assert len(secrets) == 4  # the first login's token and the re-check's
    for error in errors:
        text = f"{error} {error!r} {error.message} {error.text}"
        assert not [secret for secret in secrets if secret in text]
