"""The shipped reverse proxy (deploy/nginx/iiko-pipeline.conf) in front of real Dagster webservers.

Open-source Dagster's webserver has no authentication, so production puts it on loopback behind nginx. This runs
the shipped file itself (only its ports, paths and certificate substituted) with a real nginx over TLS, in front
of two real `dagster-webserver`s: the operators' one and a `--read-only` one for viewers. It proves that
nothing gets through without the right password, that the authenticated user reaches the upstream in
`X-Forwarded-User` and a client cannot forge it, that the UI's websocket works through the proxy, that a viewer
cannot launch a run while an operator's launch is not refused for permission, and that another site cannot make
a logged-in browser call the GraphQL API.

nginx is a system package: the test skips without it on a developer machine and fails without it under CI=true
(.ci/run installs it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests

from deploy.nginx.render import render
from iiko_pipeline.warehouse.crypto import generate_key
from tests.conftest import IN_CI, serving

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHIPPED = ROOT / "deploy" / "nginx" / "iiko-pipeline.conf"
OPERATORS_HOST, VIEWERS_HOST = "dagster.example.com", "dagster-view.example.com"
OPERATOR, OPERATOR_PASSWORD = "olga", "operator pass:1"
VIEWER, VIEWER_PASSWORD = "viktor", "viewer pass:2"
LOCATION = "iiko_pipeline.definitions"
STARTUP_S = 60

# a job that does not exist: Dagster checks the permission first, so an operator gets PipelineNotFoundError
NO_SUCH_JOB = {"selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                            "jobName": "no_such_job"}, "runConfigData": {}}
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on Error { message }
  }
}
"""


@pytest.fixture(scope="module")
def nginx_bin() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if os.access(p, os.X_OK)), None)
    if found is None:
        if IN_CI:
            pytest.fail("nginx must be installed in CI (.ci/run installs nginx-light)")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _htpasswd(path: Path, user: str, password: str) -> None:
    """One htpasswd line, made the way deploy/README.md says (`openssl passwd -6`) when openssl is here."""
    if shutil.which("openssl"):
        hashed = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True,
                                text=True, check=True, timeout=30).stdout.strip()
    else:
        hashed = "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()  # noqa: S324
    path.write_text(f"{user}:{hashed}\n")


def _render(folder: Path, *, http: int, https: int, operators: int, viewers: int,
            certificate: tuple[str, str]) -> Path:
    """The shipped file with this test's ports, password files, log folder and certificate, nothing else
    (deploy/nginx/render.py, which the proxy image runs too)."""
    _htpasswd(folder / "operators.htpasswd", OPERATOR, OPERATOR_PASSWORD)
    _htpasswd(folder / "viewers.htpasswd", VIEWER, VIEWER_PASSWORD)
    cert, key = certificate
    text = render(SHIPPED.read_text(), http=f"127.0.0.1:{http}", https=f"127.0.0.1:{https}",
                  operators=f"127.0.0.1:{operators}", viewers=f"127.0.0.1:{viewers}", certificate=cert, key=key,
                  operators_htpasswd=str(folder / "operators.htpasswd"),
                  viewers_htpasswd=str(folder / "viewers.htpasswd"), log_dir=str(folder))
    servers = folder / "iiko-pipeline.conf"
    servers.write_text(text)
    temp = folder / "temp"
    temp.mkdir()
    main = folder / "nginx.conf"
    main.write_text("\n".join([
        # as root, workers would drop to `nobody`, who cannot read this private temp folder's password files
        "user root;" if os.geteuid() == 0 else "",
        "worker_processes 1;",
        f"pid {folder}/nginx.pid;",
        f"error_log {folder}/error.log info;",
        "events { worker_connections 64; }",
        "http {",
        *(f"    {kind}_temp_path {temp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
        f"    include {servers};",  # the way /etc/nginx/nginx.conf includes conf.d/*.conf
        "}",
        "",
    ]))
    return main


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s:\n{log.read_text()[-4000:]}")


def _stop(*procs: subprocess.Popen) -> None:
    """SIGTERM to each process group at once (a webserver takes seconds to stop), SIGKILL what outlives 20 s."""
    def signal_group(proc: subprocess.Popen, sig: int) -> None:
        with suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(proc.pid, sig)  # the group: a webserver's code server is a child of its own

    for proc in procs:
        signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            proc.wait()


@contextmanager
def _nginx(nginx_bin: str, folder: Path, certificate: tuple[str, str], operators: int,
           viewers: int) -> Iterator[tuple[int, int]]:
    """The shipped config under a real nginx in the foreground: its (http, https) ports."""
    http, https = _free_port(), _free_port()
    main = _render(folder, http=http, https=https, operators=operators, viewers=viewers, certificate=certificate)
    log = folder / "error.log"
    log.touch()
    proc = subprocess.Popen([nginx_bin, "-p", str(folder), "-c", str(main), "-e", str(log), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_port(https, proc, log, "nginx", 15)
        yield http, https
    finally:
        _stop(proc)


@contextmanager
def _webservers(home: Path) -> Iterator[tuple[int, int]]:
    """The operators' and the viewers' (--read-only) dagster-webserver on loopback: their ports."""
    import dagster as dg

    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    # Create the SQLite instance first: two webservers creating it at once race in Dagster's schema setup.
    dg.DagsterInstance.from_config(str(home)).dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "PYTEST_"))}
    env.update({"DAGSTER_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'w.db'}",
                "CREDENTIAL_ENCRYPTION_KEY": generate_key()})
    procs: list[tuple[subprocess.Popen, int, Path]] = []
    try:
        for name, extra in (("operators", []), ("viewers", ["--read-only"])):
            port, log = _free_port(), home / f"webserver-{name}.log"
            with log.open("w") as out:
                proc = subprocess.Popen(
                    [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-m", LOCATION, *extra],
                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            procs.append((proc, port, log))
        deadline = time.monotonic() + STARTUP_S
        for proc, port, log in procs:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"dagster-webserver exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
                try:
                    if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"dagster-webserver not up within {STARTUP_S} s:\n{log.read_text()[-4000:]}")
                time.sleep(0.2)
        yield procs[0][1], procs[1][1]
    finally:
        _stop(*(proc for proc, _port, _log in procs))


class _Proxied:
    """HTTPS requests to one of the proxy's two sites, the certificate checked against the test's own CA."""

    def __init__(self, https: int, host: str, ca: str):
        self.base, self.host, self.ca = f"https://127.0.0.1:{https}", host, ca

    def request(self, method: str, path: str, auth: tuple[str, str] | None = None, headers: dict | None = None,
                **kwargs) -> requests.Response:
        return requests.request(method, self.base + path, auth=auth, headers={"Host": self.host, **(headers or {})},
                                verify=self.ca, timeout=30, allow_redirects=False, **kwargs)

    def launch(self, auth: tuple[str, str]) -> dict:
        """A launchRun mutation for a job that does not exist: the permission check comes before the lookup."""
        answer = self.request("POST", "/graphql", auth=auth,
                              json={"query": LAUNCH, "variables": {"params": NO_SUCH_JOB}})
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]["launchRun"]


def _websocket_handshake(https: int, host: str, ca: str, auth: tuple[str, str] | None) -> str:
    """Open the UI's GraphQL websocket through the proxy: the server's first message, or why it failed."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    context = ssl.create_default_context(cafile=ca)
    headers = {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()} if auth else {}
    sock = socket.create_connection(("127.0.0.1", https), timeout=10)
    try:
        with connect(f"wss://{host}:{https}/graphql", sock=sock, ssl=context, server_hostname="127.0.0.1",
                     subprotocols=["graphql-ws"], additional_headers=headers, open_timeout=15) as ws:
            ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            return json.loads(ws.recv(timeout=15))["type"]
    except InvalidStatus as exc:
        return f"HTTP {exc.response.status_code}"
    finally:
        sock.close()


def test_forwarded_user_is_set_by_nginx_and_cannot_be_forged(nginx_bin, certificate, tmp_path):
    """Both sites pointed at a server that echoes the headers it receives: the upstream sees only what nginx sets."""
    seen: list[dict[str, list[str]]] = []

    class Echo(BaseHTTPRequestHandler):
        def do_GET(self):
            headers = {k.lower(): self.headers.get_all(k) for k in self.headers}
            seen.append(headers)
            body = json.dumps(headers).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with serving(Echo) as echo:
        port = int(echo.rsplit(":", 1)[1])
        with _nginx(nginx_bin, tmp_path, certificate, operators=port, viewers=port) as (http, https):
            ca = certificate[0]
            for host, user, password in ((OPERATORS_HOST, OPERATOR, OPERATOR_PASSWORD),
                                         (VIEWERS_HOST, VIEWER, VIEWER_PASSWORD)):
                site = _Proxied(https, host, ca)
                for path in ("/", "/graphql", "/runs"):
                    before = len(seen)
                    assert site.request("GET", path).status_code == 401
                    assert site.request("GET", path, auth=(user, "wrong")).status_code == 401
                    assert len(seen) == before  # refused at the proxy: the upstream never saw them

                    forged = {"X-Forwarded-User": "admin", "X_Forwarded_User": "admin", "X-Forwarded-For": "10.6.6.6"}
                    answer = site.request("GET", path, auth=(user, password), headers=forged)
                    assert answer.status_code == 200, answer.text
                    got = answer.json()
                    assert got["x-forwarded-user"] == [user]  # nginx's value, not the client's
                    assert "x_forwarded_user" not in got  # headers with underscores are dropped
                    assert got["x-forwarded-for"] == ["127.0.0.1"]
                    assert got["x-forwarded-proto"] == ["https"]
                    assert got["host"] == [host]
                    assert "authorization" not in got  # the password stops at the proxy

            # one site's users are not the other's
            for host, user, password in ((OPERATORS_HOST, VIEWER, VIEWER_PASSWORD),
                                         (VIEWERS_HOST, OPERATOR, OPERATOR_PASSWORD)):
                assert _Proxied(https, host, ca).request("GET", "/", auth=(user, password)).status_code == 401

            # plain HTTP only redirects to HTTPS, before any password is asked for
            redirect = requests.get(f"http://127.0.0.1:{http}/runs?x=1", headers={"Host": OPERATORS_HOST},
                                    timeout=10, allow_redirects=False)
            assert redirect.status_code == 301
            assert redirect.headers["Location"] == f"https://{OPERATORS_HOST}/runs?x=1"

            # the audit trail: the access log names the user of every request that got through
            access = (tmp_path / "iiko-pipeline.access.log").read_text()
            assert re.search(rf' - {OPERATOR} \[[^]]+\] "GET /graphql HTTP/1\.1" 200 ', access), access
            assert re.search(rf' - {VIEWER} \[[^]]+\] "GET /runs HTTP/1\.1" 200 ', access), access


def test_dagster_ui_behind_the_proxy(nginx_bin, certificate, tmp_path):
    """Real webservers: passwords, the UI, its websocket, read-only viewers, operators, cross-site calls."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    proxy = tmp_path / "nginx"
    proxy.mkdir()
    ca = certificate[0]
    with _webservers(home) as (operators_port, viewers_port), \
            _nginx(nginx_bin, proxy, certificate, operators_port, viewers_port) as (_http, https):
        operators, viewers = _Proxied(https, OPERATORS_HOST, ca), _Proxied(https, VIEWERS_HOST, ca)
        operator, viewer = (OPERATOR, OPERATOR_PASSWORD), (VIEWER, VIEWER_PASSWORD)

        for site, user in ((operators, operator), (viewers, viewer)):
            assert site.request("GET", "/").status_code == 401
            assert site.request("POST", "/graphql", json={"query": "{ version }"}).status_code == 401
            assert site.request("GET", "/", auth=(user[0], "not the password")).status_code == 401
            page = site.request("GET", "/", auth=user)
            assert page.status_code == 200
            assert re.search(r"<title[^>]*>Dagster</title>", page.text), page.text[:500]
            version = site.request("POST", "/graphql", auth=user, json={"query": "{ version }"})
            assert version.status_code == 200 and version.json()["data"]["version"], version.text

        # the UI's websocket: upgraded through the proxy, and only with the password
        assert _websocket_handshake(https, OPERATORS_HOST, ca, operator) == "connection_ack"
        assert _websocket_handshake(https, VIEWERS_HOST, ca, viewer) == "connection_ack"
        assert _websocket_handshake(https, OPERATORS_HOST, ca, None) == "HTTP 401"

        # viewers cannot launch; operators are not refused for permission (this job does not exist)
        refused = viewers.launch(viewer)
        assert refused["__typename"] == "UnauthorizedError", refused
        allowed = operators.launch(operator)
        assert allowed["__typename"] == "PipelineNotFoundError", allowed  # past the permission check

        # Dagster runs a mutation sent as a plain GET (what an <img> or a link on another site sends, with the
        # browser adding the cached password or SSO cookie): the proxy refuses the browser's cross-site calls
        query = {"query": LAUNCH, "variables": json.dumps({"params": NO_SUCH_JOB})}
        for fetch_site in ("cross-site", "same-site"):
            answer = operators.request("GET", "/graphql", auth=operator, params=query,
                                       headers={"Sec-Fetch-Site": fetch_site})
            assert answer.status_code == 403, answer.text
        same_origin = operators.request("GET", "/graphql", auth=operator, params=query,
                                        headers={"Sec-Fetch-Site": "same-origin"})
        assert same_origin.status_code == 200, same_origin.text
        assert same_origin.json()["data"]["launchRun"]["__typename"] == "PipelineNotFoundError", same_origin.text

        access = (proxy / "iiko-pipeline.access.log").read_text()
        assert re.search(rf' - {VIEWER} \[[^]]+\] "POST /graphql HTTP/1\.1" 200 ', access), access
        assert re.search(rf' - {OPERATOR} \[[^]]+\] "POST /graphql HTTP/1\.1" 200 ', access), access
