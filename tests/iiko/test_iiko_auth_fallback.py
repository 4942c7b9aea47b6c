"""POST-login fallback to GET, against a minimal server that refuses POST on /auth.

The emulator accepts both forms of login and has no switch to refuse one, so this single behaviour is
checked against a tiny stdlib HTTP server (still real HTTP on localhost).
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest
from iiko_helpers import FAST_RETRY

from iiko_pipeline.iiko import ClientSettings, IikoClient
from iiko_pipeline.iiko.client import password_hash
from tests.conftest import serving

TOKEN = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
PASSWORD = "пароль"


class QueryOnlyServer(BaseHTTPRequestHandler):
    """Answers /auth only as GET with query parameters (POST gets `refuse_status`)."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str]]
    refuse_status = 405

    def log_message(self, format: str, *args: object) -> None:  # quiet; the line has `pass`
        pass

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        self.seen.append(("POST", path))
        if path == "/resto/api/auth":
            self._answer(self.refuse_status, "text/plain", b"HTTP method POST is not supported by this URL")
        else:
            self._answer(200, "text/plain", b"")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.seen.append(("GET", url.path))
        if url.path == "/resto/api/auth":
            ok = query.get("login") == ["etl"] and query.get("pass") == [password_hash(PASSWORD)]
            self._answer(200 if ok else 401, "text/plain", TOKEN.encode() if ok else b"bad")
        elif url.path == "/resto/api/logout":
            self._answer(200, "text/plain", b"")
        elif query.get("key") == [TOKEN]:
            self._answer(200, "application/xml", b'<?xml version="1.0" encoding="UTF-8"?><employees/>')
        else:
            self._answer(401, "text/plain", b"no key")


@pytest.fixture(params=[405, 400])
def query_only_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    seen: list[tuple[str, str]] = []
    handler = type("Handler", (QueryOnlyServer,), {"seen": seen, "refuse_status": request.param})
    with serving(handler) as url:
        yield url, seen


def test_post_login_falls_back_to_get(query_only_server: tuple[str, list[tuple[str, str]]]) -> None:
    url, seen = query_only_server
    settings = ClientSettings(connect_timeout=2, read_timeout=5, retry=FAST_RETRY)
    with IikoClient(url, "etl", PASSWORD, settings=settings) as client:
        assert client.suppliers().root == "employees"
    assert seen == [("POST", "/resto/api/auth"), ("GET", "/resto/api/auth"), ("GET", "/resto/api/suppliers"),
                    ("GET", "/resto/api/logout")]
