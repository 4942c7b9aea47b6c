"""Shared fixtures: a real emulator over localhost HTTP and real SQLite / PostgreSQL warehouses.

PostgreSQL tests skip on a developer machine without a server, but fail under CI=true: a CI run that
skipped them would claim coverage it does not have.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

# Retry waits sized for a test run, not for an outage: set before the Dagster definitions are imported.
os.environ.setdefault("IIKO_STEP_RETRY_DELAY_SECONDS", "0.2")
os.environ.setdefault("IIKO_RETRY_BASE_DELAY_SECONDS", "0.01")

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _pg_available() -> str | None:
    """Return None when PostgreSQL answers, else the reason it does not."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any driver or network error means "not available"
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of a reachable PostgreSQL server (skip locally, fail in CI)."""
    reason = _pg_available()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL must be reachable in CI ({PG_ADMIN_URL}): {reason}")
        pytest.skip(f"PostgreSQL not reachable: {reason}")
    return PG_ADMIN_URL


class _PgDatabases:
    """Creates the tests' databases, and drops them on a thread of its own: a DROP DATABASE mostly waits for the
    disk (about 0.15 s), and the next test need not wait with it. Every database is dropped before the session
    ends (`close`)."""

    def __init__(self, admin_url: str) -> None:
        import sqlalchemy as sa

        self.admin_url = admin_url
        self._admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self._drops: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._drop_each, name="pg-test-database-drops", daemon=True)
        self._thread.start()

    def create(self) -> str:
        import sqlalchemy as sa

        name = f"iiko_test_{uuid.uuid4().hex[:12]}"
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        return name

    def drop_later(self, name: str) -> None:
        self._drops.put(name)

    def _drop_each(self) -> None:
        import sqlalchemy as sa

        while (name := self._drops.get()) is not None:
            try:
                with self._admin.connect() as conn:
                    conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                                 {"n": name})
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            except Exception as exc:  # reported when the session ends
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        self._drops.put(None)
        self._thread.join()
        self._admin.dispose()


@pytest.fixture(scope="session")
def _pg_databases(pg_server: str) -> Iterator[_PgDatabases]:
    databases = _PgDatabases(pg_server)
    yield databases
    databases.close()
    assert not databases.errors, f"test databases left behind: {databases.errors}"


@pytest.fixture
def pg_url(_pg_databases: _PgDatabases) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = _pg_databases.create()
    try:
        yield _pg_databases.admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _pg_databases.drop_later(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs a test once on SQLite and once on PostgreSQL (unless the test names one backend, below)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated warehouse on SQLite and (second parametrisation) on PostgreSQL."""
    from iiko_pipeline.warehouse import make_engine, migrate

    eng = make_engine(db_url)
    migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()


# One backend for an end-to-end scenario (a Dagster run, an API or CLI process) whose point is not a difference
# between the warehouse's backends: those differences have tests of their own on both backends (tests/warehouse,
# tests/core, tests/pipeline/test_entity_upsert.py), and a second run of the same scenario proves nothing new.
# The scenarios of a file are spread over both backends, so each still sees the whole path end to end; a scenario
# with something PostgreSQL-specific to prove runs on PostgreSQL (and fails rather than skips in CI).
ON_SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
ON_POSTGRESQL = pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                                        indirect=True)


EMULATOR_LOGIN = "etl_user"
EMULATOR_PASSWORD = "пароль#Test1"  # non-ASCII on purpose: the SHA-1 must be over UTF-8 bytes


def connect_settings():
    """The connect check's client settings (`services.connect`'s defaults) with the retry wait sized for a test
    run, as IIKO_RETRY_BASE_DELAY_SECONDS above does for runs: a refused login is believed after a second one,
    4 x base_delay later (2 s with the default 0.5 s), and tests refuse many logins on purpose."""
    from iiko_pipeline.iiko import ClientSettings, RetryPolicy

    return ClientSettings(connect_timeout=10.0, read_timeout=30.0,
                          retry=RetryPolicy(max_attempts=2, max_total=20.0, base_delay=0.01))


@pytest.fixture
def emulator():
    """A tiny-scale emulator serving real HTTP on a free localhost port."""
    from iiko_pipeline.emulator import EmulatorConfig, EmulatorServer

    cfg = EmulatorConfig(host="127.0.0.1", port=0, login=EMULATOR_LOGIN, password=EMULATOR_PASSWORD,
                         seed=7, scale="tiny")
    with EmulatorServer(cfg) as emu:
        yield emu


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A throw-away self-signed certificate for 127.0.0.1 (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A throw-away HTTP server on loopback, in a thread of its own, for servers that misbehave on purpose
    (the emulator covers iiko itself): its base URL for the block, shut down after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests (end-to-end runs, some near a minute) first, the many quick ones after: with two workers
    (`make test`, `--dist worksteal` in pyproject.toml), a long test that starts near the end keeps its worker busy
    while the other one idles, and quick tests at the end are what a worker that ran out can take over. Stable, so
    the order within each group is the collection's (every worker must see the same order)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
