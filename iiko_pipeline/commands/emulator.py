"""`iiko-pipeline emulator`: serve the fake iiko Server until stopped."""

from __future__ import annotations

import argparse
import os

CONTROL_TOKEN_ENV = "IIKO_EMULATOR_CONTROL_TOKEN"  # noqa: S105 - the name of a variable, not a secret


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emulator", help="serve a faithful fake iiko Server (demo data source, test ground truth)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--login", default="admin")
    p.add_argument("--password", default="resto#test", help="the emulated server's password (demo data only)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", default="seed", help="tiny | seed | large")
    p.add_argument("--seats", type=int, default=1, help="API licence seats")
    p.add_argument("--token-ttl", type=float, default=3600.0, help="sliding token lifetime in seconds")
    p.add_argument("--control-token", default=os.environ.get(CONTROL_TOKEN_ENV) or None,
                   help=f"require this bearer token on the control API /_emulator (default: ${CONTROL_TOKEN_ENV}; "
                        "none on loopback)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from iiko_pipeline.emulator import SCALES, EmulatorConfig, serve

    if args.scale not in SCALES:
        raise SystemExit(f"--scale must be one of {', '.join(SCALES)}, not {args.scale!r}")
    serve(EmulatorConfig(host=args.host, port=args.port, login=args.login, password=args.password,
                         seed=args.seed, scale=args.scale, seats=args.seats, token_ttl=args.token_ttl,
                         control_token=args.control_token))
    return 0
