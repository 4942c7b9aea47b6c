"""A running emulator in its own process (so its CPU and memory are not the worker's).

    python bench/emulator_proc.py --scale large --seed 1 --today 2026-11-26 --history-days 400

Prints exactly one line, `listening on http://127.0.0.1:PORT`, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import EMU_LOGIN, EMU_PASSWORD


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="large")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--today", required=True)
    parser.add_argument("--history-days", type=int, default=400)
    parser.add_argument("--seats", type=int, default=2)
    args = parser.parse_args()

    from iiko_pipeline.emulator import EmulatorConfig, serve

    serve(EmulatorConfig(host="127.0.0.1", port=0, login=EMU_LOGIN, password=EMU_PASSWORD, seed=args.seed,
                         scale=args.scale, seats=args.seats, today=date.fromisoformat(args.today),
                         invoice_history_days=args.history_days))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
