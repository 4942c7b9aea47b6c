"""`iiko-pipeline dev`: the Dagster UI (webserver + daemon) and the management pages on the embedded instance,
with the emulator serving the demo account.

Three processes of this interpreter: the emulator, the API with its pages (local mode on loopback: no token,
no sign-in, unless API_TOKEN or UI_PASSWORD is set), and `dagster dev`. Ctrl-C stops all three.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dev", help="Dagster UI on http://127.0.0.1:3000 and the management pages on "
                                   "http://127.0.0.1:8000/ui/, with the emulator serving the demo account")
    p.add_argument("--port", type=int, default=3000, help="the Dagster UI's port")
    p.add_argument("--api-port", type=int, default=8000, help="the API's and the management pages' port")
    p.add_argument("--scale", default="seed")
    p.set_defaults(handler=run)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def _stop_group(process: subprocess.Popen) -> None:
    """SIGINT to the process's whole group, as Ctrl-C in a terminal would; SIGKILL to what is left after 30 s."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return
    time.sleep(5)  # the group leader may have gone first; give its children the moment they take
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def run(args: argparse.Namespace) -> int:
    from iiko_pipeline.commands import _common
    from iiko_pipeline.commands.demo import DEMO_LOGIN, DEMO_PASSWORD, DEMO_PORT, ensure_demo_key

    ensure_demo_key()
    _common.instance()  # sets DAGSTER_HOME and creates the folder
    # This interpreter's own environment, not whatever PATH finds: `make dev` runs without an activated venv.
    cli = [sys.executable, "-m", "iiko_pipeline.cli"]
    dagster_url = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "DAGSTER_UI_URL": os.environ.get("DAGSTER_UI_URL", dagster_url)}
    emulator = subprocess.Popen([*cli, "emulator", "--port", str(DEMO_PORT), "--login", DEMO_LOGIN,
                                 "--password", DEMO_PASSWORD, "--scale", args.scale, "--seed", "1"])
    api = subprocess.Popen([*cli, "api", "--host", "127.0.0.1", "--port", str(args.api_port), "--insecure-no-auth"],
                           env=env)
    print(f"management pages: http://127.0.0.1:{args.api_port}/ui/ (connect the demo emulator there: address "
          f"http://127.0.0.1:{DEMO_PORT}, user {DEMO_LOGIN}, password {DEMO_PASSWORD})\n"
          f"Dagster UI: {dagster_url}", flush=True)
    # A process group of its own: dagster dev expects Ctrl-C to reach its webserver, daemon and code servers
    # too (the terminal sends SIGINT to the whole foreground group), so stopping it signals the group.
    dagster = subprocess.Popen([*cli[:1], "-m", "dagster", "dev", "-m", "iiko_pipeline.definitions",
                                "-h", "127.0.0.1", "-p", str(args.port)], env=env, start_new_session=True)
    # SIGTERM (a service manager, `kill`) stops the three as Ctrl-C does, instead of orphaning them; SIGINT is set
    # explicitly too, because a process started in the background by a shell inherits it ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        return dagster.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop_group(dagster)
        _stop(api)
        _stop(emulator)
