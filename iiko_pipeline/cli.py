"""`iiko-pipeline`: connect iiko Server accounts, sync them into the warehouse; the demo, the API, the emulator."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from iiko_pipeline.commands import REGISTRY
from iiko_pipeline.private_files import private_umask


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iiko-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in REGISTRY:
        command.register(sub)
    return parser


#: Commands that have nothing left to clean up once they return: the run they waited for has ended and its
#: outcome is printed. Tearing down an interpreter that imported Dagster took a second after the answer was out.
EXIT_AT_ONCE = frozenset({"sync", "backfill"})


def main(argv: Sequence[str] | None = None) -> int:
    return _run(argv)[1]


def _run(argv: Sequence[str] | None) -> tuple[str, int]:
    """The command's name and its exit code."""
    private_umask()  # for this process and every one it starts (`dagster dev`, run processes)
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.command, int(args.handler(args) or 0)


def entry() -> None:
    """The console script: `main`, then for `EXIT_AT_ONCE` commands an immediate exit once output is flushed
    (the other commands keep Python's normal shutdown: a server's runs, `dagster dev`'s children)."""
    command, code = _run(None)
    if command in EXIT_AT_ONCE:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
