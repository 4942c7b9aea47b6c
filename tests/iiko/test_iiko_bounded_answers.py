"""Answers are bounded (issue 13.2): a size cap on the decompressed body, enforced while streaming (memory
stays flat on a gzip bomb), and a deadline for the whole exchange (a server dripping a byte now and then no
longer keeps a call alive past it). Real HTTP on loopback: a small server that misbehaves on purpose."""

from __future__ import annotations

import gzip
import time
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
import requests
from iiko_helpers import Control

from iiko_pipeline.iiko.errors import IikoTransportError
from iiko_pipeline.iiko.transport import Limits, send
from tests.conftest import serving

BOMB = gzip.compress(b"<a>" + b"0" * (200 * 1024 * 1024) + b"</a>", compresslevel=9)  # ~200 KB -> 200 MB


class _Misbehaving(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        return None

    def do_GET(self) -> None:
        if self.path.startswith("/bomb"):
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(BOMB)))
            self.end_headers()
            self.wfile.write(BOMB)
        else:  # /drip: a valid start, then a byte every 0.2 s, for ever (well, 60 s)
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(300):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass


@pytest.fixture
def server() -> Iterator[str]:
    with serving(_Misbehaving) as url:
        yield url


def _send(url: str, limits: Limits, read_timeout: float = 5.0):
    with requests.Session() as session:
        return send(session, "GET", url, endpoint="x", display="GET /x", params=None, data=None,
                    timeout=(2.0, read_timeout), verify=True, secrets=(), limits=limits)


def test_a_gzip_bomb_is_refused_at_the_cap_with_flat_memory(server):
    tracemalloc.start()
    try:
        with pytest.raises(IikoTransportError) as info:
            _send(f"{server}/bomb", Limits(max_bytes=10 * 1024 * 1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not info.value.transient and "max_answer_bytes" in str(info.value)
    assert peak < 40 * 1024 * 1024  # a 10 MB cap, not the 200 MB the answer unpacks to


def test_a_dripping_server_is_cut_at_the_deadline_and_may_be_retried(server):
    started = time.monotonic()
    with pytest.raises(IikoTransportError) as info:
        _send(f"{server}/drip", Limits(deadline=1.5), read_timeout=1.0)  # each read is within its timeout
    assert info.value.transient and "request_deadline" in str(info.value)
    assert time.monotonic() - started < 10  # without the deadline: 60 s of drip


def test_a_normal_answer_passes_and_the_client_applies_its_cap(make_client, control: Control):
    with make_client() as client:
        assert client.suppliers().body  # the defaults leave real answers alone
    with make_client(max_answer_bytes=100) as client, pytest.raises(IikoTransportError) as info:
        client.suppliers()
    assert not info.value.transient and len(control.requests("suppliers")) == 2  # the capped one: once
