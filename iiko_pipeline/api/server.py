"""Serving the app with uvicorn: in the foreground (`iiko-pipeline api`) or on a background thread (tests).

uvicorn's own access log prints the full request target, query string included; a password sent there by
mistake would land in the log. It is switched off here: `GuardMiddleware` writes the access log instead,
with route templates only.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from typing import Any

import uvicorn
from starlette.types import ASGIApp

UVICORN_DEFAULTS: dict[str, Any] = {
    "access_log": False,  # see the module docstring
    "log_config": None,  # keep the process's logging configuration (the CLI sets one; tests use caplog)
    "server_header": False,
    "lifespan": "off",
    "proxy_headers": False,
    "workers": 1,  # one process serves many syncs (each runs in its own process); the account lock is in the DB
}


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0 picks a free port), IPv4 or IPv6 as the host says."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_for(sock: socket.socket, scheme: str = "http") -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _config(app: ASGIApp, **overrides: Any) -> uvicorn.Config:
    return uvicorn.Config(app, **{**UVICORN_DEFAULTS, **overrides})


def serve(app: ASGIApp, host: str, port: int, *, ssl_certfile: str | None = None,
          ssl_keyfile: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM. Prints one line, `listening on <url>`, once the socket is bound."""
    sock = bind(host, port)
    config = _config(app, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    server = uvicorn.Server(config)
    print(f"listening on {url_for(sock, 'https' if ssl_certfile else 'http')}", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class ApiServer:
    """`with ApiServer(app) as server: requests.get(server.url + "/health")`: uvicorn on a daemon thread."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, **uvicorn_options: Any) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.options = uvicorn_options
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.url = ""

    def start(self, timeout: float = 15.0) -> ApiServer:
        self._sock = bind(self.host, self.port)
        self.url = url_for(self._sock)
        self._server = uvicorn.Server(_config(self.app, **self.options))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"iiko-api-{self.url}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the API server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                print(f"warning: API server thread {self._thread.name} did not stop", file=sys.stderr)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
