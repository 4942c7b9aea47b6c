"""`iiko-pipeline dev`: the Dagster UI (webserver + daemon) on the embedded instance, with the demo emulator."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dev", help="Dagster UI on http://127.0.0.1:3000 with the emulator serving the demo account")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--scale", default="seed")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from iiko_pipeline.commands import _common
    from iiko_pipeline.commands.demo import DEMO_LOGIN, DEMO_PASSWORD, DEMO_PORT, ensure_demo_key

    ensure_demo_key()
    _common.instance()  # sets DAGSTER_HOME and creates the folder
    # This interpreter's own environment, not whatever PATH finds: `make dev` runs without an activated venv.
    emulator = subprocess.Popen([sys.executable, "-m", "iiko_pipeline.cli", "emulator", "--port", str(DEMO_PORT),
                                 "--login", DEMO_LOGIN, "--password", DEMO_PASSWORD, "--scale", args.scale,
                                 "--seed", "1"])
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    try:
        return subprocess.call([sys.executable, "-m", "dagster", "dev", "-m", "iiko_pipeline.definitions",
                                "-h", "127.0.0.1", "-p", str(args.port)], env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
