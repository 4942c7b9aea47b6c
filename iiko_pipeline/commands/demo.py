"""`iiko-pipeline demo`: the main job end to end on the embedded default.

Starts the emulator, connects a demo account, syncs restaurants, stores, suppliers and the last 30 days of
invoices through the Dagster instance in $DAGSTER_HOME, and prints a summary. The runs stay in the instance,
so `make dev` shows them in the UI (and serves the same emulator, so the UI can run the job again).
"""

from __future__ import annotations

import argparse
import os
import uuid

from iiko_pipeline.commands import _common
from iiko_pipeline.core.specs import ENTITY_NAMES

DEMO_LOGIN = "demo"
DEMO_PASSWORD = "demo-пароль"  # noqa: S105 - the emulator's own demo password, not a real credential
DEMO_ACCOUNT = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://iiko-pipeline.local/demo-account"))
DEMO_PORT = 18080
DEMO_KEY_FILE = "demo.key"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job end to end against the emulator")
    p.add_argument("--scale", default="seed", help="emulator scale: tiny | seed | large")
    p.add_argument("--days", type=int, default=30, help="days of invoices to sync")
    p.add_argument("--port", type=int, default=DEMO_PORT, help="emulator port (0: any free port)")
    p.set_defaults(handler=run)


def ensure_demo_key() -> None:
    """A local key for the demo only, kept beside the instance (mode 0600); real deployments set the variable."""
    from iiko_pipeline.warehouse.crypto import KEY_ENV, generate_key
    from iiko_pipeline.warehouse.settings import dagster_home

    if os.environ.get(KEY_ENV):
        return
    path = dagster_home() / DEMO_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate_key())
    os.environ[KEY_ENV] = path.read_text().strip()


def run(args: argparse.Namespace) -> int:
    from iiko_pipeline.emulator import EmulatorConfig, EmulatorServer
    from iiko_pipeline.services.connect import connect_account
    from iiko_pipeline.services.run_config import invoice_run_config
    from iiko_pipeline.services.sync import run_account_sync

    ensure_demo_key()
    instance = _common.instance()
    cfg = EmulatorConfig(host="127.0.0.1", port=args.port, login=DEMO_LOGIN, password=DEMO_PASSWORD, seed=1,
                         scale=args.scale)
    with EmulatorServer(cfg) as emu:
        print(f"emulator:  {emu.url} (scale {args.scale})")
        print(f"dagster:   {instance.root_directory}")
        connected = connect_account(
            _common.engine(), _common.keyring(), DEMO_ACCOUNT, DEMO_LOGIN, DEMO_PASSWORD, emu.url,
            register_partition=lambda a: instance.add_dynamic_partitions("accounts", [a]))
        print(f"account:   {DEMO_ACCOUNT} connected={connected.is_connected}")
        if not connected.is_connected:
            print(f"error: {connected.connection_error}")
            return 1
        outcome = run_account_sync(instance, DEMO_ACCOUNT, run_config=invoice_run_config(history_days=args.days),
                                   log_level="WARNING")
        log = emu.state.log.summary()
    print(f"run:       {outcome.run_id} ({'success' if outcome.success else 'FAILED'})")
    print()
    width = max(len("entity"), *(len(e) for e in outcome.results)) + 2
    header = f"{'entity':<{width}}{'total':>8}{'created':>9}{'updated':>9}{'unchanged':>11}{'deleted':>9}{'errors':>8}"
    print(header)
    print("-" * len(header))
    for entity in sorted(outcome.results, key=ENTITY_NAMES.index):
        r = outcome.results[entity]
        print(f"{entity:<{width}}{r['total']:>8}{r['created']:>9}{r['updated']:>9}{r['unchanged']:>11}"
              f"{r['deleted']:>9}{r['errors']:>8}" + (f"  skipped: {r['skipped']}" if r.get("skipped") else ""))
    print()
    print(f"iiko requests: logins {log['logins']}, logouts {log['logouts']}, max concurrency "
          f"{log['max_concurrency']}")
    for failure in outcome.failures:
        print(f"failure: {failure}")
    print("see it in the UI: make dev, then http://127.0.0.1:3000 (Dagster) and http://127.0.0.1:8000/ui/ (accounts)")
    return 0 if outcome.success else 1
