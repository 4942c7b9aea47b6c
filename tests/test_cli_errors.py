"""The CLI refuses bad input with one line saying what and how to fix it, before a partition, a run or a
request exists (issue 13.6): no traceback, no Dagster instance created, nothing sent anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iiko_pipeline.warehouse.crypto import generate_key

ACCOUNT = "3a5c99a2-eaca-56c9-821d-5510aecafb5a"
CLI = [sys.executable, "-m", "iiko_pipeline.cli"]


@pytest.mark.parametrize(("args", "key", "code", "says"), [
    (["sync", "not-a-uuid"], "good", 2, "'not-a-uuid' is not an account id: a UUID such as"),
    (["sync", ACCOUNT], "good", 1, f"account {ACCOUNT} is not connected here; connect it first: "
                                   f"iiko-pipeline connect {ACCOUNT}"),
    (["backfill", ACCOUNT, "--from", "2026-13-01", "--to", "2026-11-01"], "good", 2,
     "argument --from: '2026-13-01' is not a date: use YYYY-MM-DD"),
    (["backfill", ACCOUNT, "--from", "2026-11-05", "--to", "2026-11-01"], "good", 1,
     "invoice window is empty: date_from 2026-11-05 is after date_to 2026-11-01"),
    (["sync", ACCOUNT, "invoices", "--to", "2026-11-01", "--history-days", "0"], "good", 1, "window is empty"),
    (["sync", ACCOUNT], None, 1, "CREDENTIAL_ENCRYPTION_KEY is not set"),
    (["sync", ACCOUNT], "abc", 1, "CREDENTIAL_ENCRYPTION_KEY is malformed"),
])
def test_bad_input_is_one_line_and_touches_nothing(tmp_path: Path, args, key, code, says):
    home = tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if k not in ("CREDENTIAL_ENCRYPTION_KEY", "IIKO_DEFAULT_BASE_URL")}
    env.update(DAGSTER_HOME=str(home), DATABASE_URL=f"sqlite:///{tmp_path / 'warehouse.db'}")
    if key is not None:
        env["CREDENTIAL_ENCRYPTION_KEY"] = generate_key() if key == "good" else key
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert says in done.stderr.strip().splitlines()[-1]
    assert not home.exists()  # no instance, so no partition and no run
