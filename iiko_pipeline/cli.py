"""`iiko-pipeline`: connect iiko Server accounts, sync them into the warehouse; the demo, the API, the emulator."""

from __future__ import annotations

import argparse
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


def main(argv: Sequence[str] | None = None) -> int:
    private_umask()  # for this process and every one it starts (`dagster dev`, run processes)
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
