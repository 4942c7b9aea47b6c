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



def test_the_emulator_warns_loudly_when_it_listens_beyond_loopback():
    """Its control API has no authentication: bound beyond loopback, anyone who reaches it can drive it. (The
    warning is checked on the decision, not by binding a public interface in a test.)"""
    from iiko_pipeline.emulator.server import exposure_warning

    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert exposure_warning(host) is None, host
    for host in ("0.0.0.0", "", "192.168.1.10", "::", "emulator.example"):  # noqa: S104
        assert "WARNING: the emulator listens on" in exposure_warning(host), host
        assert "set --control-token" in exposure_warning(host), host
        assert "asks for the control token" in exposure_warning(host, "a-token"), host
    proc = subprocess.Popen([sys.executable, "-m", "iiko_pipeline.cli", "emulator", "--host", "127.0.0.1",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("listening on ")  # still exactly one line on stdout
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "WARNING" not in err
