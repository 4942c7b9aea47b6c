"""PostgreSQL restarted in the middle of a sync (`pg_ctlcluster ... restart`), in the production shape: the real
command line, a run in a process of its own, the warehouse on PostgreSQL (issue 13, item 8).

The restart ends every connection ("terminating connection due to administrator command") while a window is
being written. The window's transaction rolls back, the step retries once the server is back, and the sync ends
complete: nothing lost, nothing duplicated, the watermark at today, the account connected, every login logged out.

The cluster is one of the test's own (`pg_createcluster` on a free port): restarting the machine's shared cluster
would break every other test running beside this one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from iiko_pipeline.warehouse import schema
from tests.pipeline import cli_runs as op

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass
class Cluster:
    url: str
    restart: Callable[[], None]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this test's own, trust auth on loopback, dropped afterwards."""
    if shutil.which("pg_createcluster") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pg_createcluster (Debian's postgresql-common) is needed for the restart test in CI")
        pytest.skip("pg_createcluster (Debian's postgresql-common) is not installed")
    version = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[-1]
    name, port = f"iikorestart{os.getpid()}", op.free_port()

    def ctl(*args: str) -> None:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, *args], check=True,
                       capture_output=True, timeout=120)

    subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True, timeout=120)  # a leftover
    subprocess.run(["pg_createcluster", version, name, "-p", str(port), "--", "--auth=trust"], check=True,
                   capture_output=True, timeout=120)
    try:
        ctl("start")
        yield Cluster(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres", lambda: ctl("restart"))
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True, timeout=120)


@pytest.fixture
def db_url(cluster: Cluster) -> str:
    """The warehouse on the test's own cluster (the `home` fixture puts it in DATABASE_URL)."""
    return cluster.url


def test_postgresql_restarted_mid_sync_loses_and_duplicates_nothing(home: Path, cluster: Cluster, monkeypatch):
    monkeypatch.setenv("IIKO_STEP_RETRY_DELAY_SECONDS", "2")  # the step's back-off spans the restart
    # Three windows: two are written at once, so the second commits right after the first; the restart lands after
    # the first commit, while the third is written (not after the last, in the checks).
    account, history = str(uuid.uuid4()), 21
    start = date.today() - timedelta(days=history - 1)
    windows = schema.sync_windows
    with op.emulator(scale="seed") as emu, dg.DagsterInstance.get() as instance:
        op.connect(account, emu)
        sync = op.start_cli("sync", account, "invoices", "--history-days", str(history))
        try:
            engine, deadline, committed = op.engine(), time.monotonic() + 240, 0
            while committed < 1:
                assert time.monotonic() < deadline and sync.poll() is None, "the sync ended before the restart"
                with engine.connect() as conn:
                    committed = conn.execute(sa.select(sa.func.count()).select_from(windows).where(
                        windows.c.account_id == uuid.UUID(account))).scalar_one()
                time.sleep(0.05)
            cluster.restart()  # fast shutdown: every connection of the run is terminated mid-transaction
            if sync.poll() is not None:
                ended, _ = sync.communicate()
                pytest.fail("the sync ended before the restart landed: " + ended.decode(errors="replace")[-3000:])
            output, _ = sync.communicate(timeout=300)
        finally:
            op.kill_group(sync)
        assert sync.returncode == 0, output.decode(errors="replace")
        op.assert_whole(emu, instance, account, start, killed_by_server=0)
