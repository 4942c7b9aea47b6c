"""`iiko-pipeline emulator` as a user starts it: a real process, one ready line, then real HTTP."""

from __future__ import annotations

import subprocess
import sys

from iiko_pipeline.iiko import IikoClient


def test_cli_prints_one_ready_line_and_serves_until_stopped():
    cmd = [sys.executable, "-m", "iiko_pipeline.cli", "emulator", "--host", "127.0.0.1", "--port", "0",
           "--login", "cli_user", "--password", "cli-пароль", "--seed", "5", "--scale", "tiny"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.removeprefix("listening on ")
        with IikoClient(url, "cli_user", "cli-пароль") as client:
            assert client.server_info().version
            assert client.suppliers().root == "employees"
        assert proc.poll() is None  # still serving
    finally:
        proc.terminate()
        proc.wait(timeout=10)
