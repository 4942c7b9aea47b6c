"""`iiko-pipeline sync` and `backfill`: sync one account now, as a Dagster run the UI shows; print the results."""

from __future__ import annotations

import argparse
import sys

from iiko_pipeline import runner
from iiko_pipeline.commands import _common
from iiko_pipeline.core.specs import ENTITY_NAMES, windowed_specs

_DATED = ", ".join(s.name for s in windowed_specs())


def _entity(value: str) -> str:
    if value not in ENTITY_NAMES:
        raise argparse.ArgumentTypeError(f"unknown entity {value!r}; choose from {', '.join(ENTITY_NAMES)}")
    return value


def _dated_entity(value: str) -> str:
    if value not in {s.name for s in windowed_specs()}:
        raise argparse.ArgumentTypeError(f"{value!r} is not read by date; choose from {_DATED}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sync", help="sync one account now (a Dagster run the UI shows)",
                       description="Sync one account now, as a Dagster run the UI shows. Entities whose references "
                                   "have never synced bring them along.")
    p.add_argument("account_id", type=_common.account_arg, help="the account's UUID")
    p.add_argument("entities", nargs="*", type=_entity, metavar="ENTITY",
                   help=f"what to sync: {', '.join(ENTITY_NAMES)} (default: all, in this order)")
    p.add_argument("--from", dest="date_from", default=None, type=_common.date_arg,
                   help=f"re-sync {_DATED} from this date (YYYY-MM-DD) as a backfill: the watermark stays put")
    p.add_argument("--to", dest="date_to", default=None, type=_common.date_arg,
                   help=f"last {_DATED} date (YYYY-MM-DD; default today)")
    p.add_argument("--lookback-days", type=int, default=None, help="incremental: re-read this far before the "
                   "watermark (default: each entity's own, e.g. invoices 14, sales 7, balances 3)")
    p.add_argument("--history-days", type=int, default=None, help="first sync of an account: this much history "
                   "(default 90; balance snapshots always 3, older ones by backfill)")
    p.set_defaults(handler=run)

    b = sub.add_parser("backfill", help=f"re-sync an account's {_DATED} for a date range (watermark untouched)")
    b.add_argument("account_id", type=_common.account_arg, help="the account's UUID")
    b.add_argument("entities", nargs="*", type=_dated_entity, metavar="ENTITY",
                   help=f"which of {_DATED} (default: all)")
    b.add_argument("--from", dest="date_from", required=True, type=_common.date_arg,
                   help="first document date (YYYY-MM-DD)")
    b.add_argument("--to", dest="date_to", required=True, type=_common.date_arg,
                   help="last document date (YYYY-MM-DD)")
    b.set_defaults(handler=backfill)


def run(args: argparse.Namespace) -> int:
    runner.warm_up()  # the run's process is forked from it: its imports overlap ours
    from iiko_pipeline.services.run_config import invoice_run_config

    entities = [e for e in ENTITY_NAMES if e in (args.entities or ENTITY_NAMES)]
    config = invoice_run_config(args.date_from, args.date_to, history_days=args.history_days,
                                lookback_days=args.lookback_days)
    return _sync(args.account_id, entities, config, {})


def backfill(args: argparse.Namespace) -> int:
    runner.warm_up()  # the run's process is forked from it: its imports overlap ours
    from iiko_pipeline.services.run_config import invoice_run_config

    config = invoice_run_config(args.date_from, args.date_to, mode="backfill")
    tags = {"iiko/backfill": f"{args.date_from}..{args.date_to}"}
    wanted = args.entities or [s.name for s in windowed_specs()]
    return _sync(args.account_id, [s.name for s in windowed_specs() if s.name in wanted], config, tags)


def _refuse_before_anything(account: str, entities: list[str], run_config: dict) -> tuple:
    """Everything that would fail the run at once, checked before a partition, a run or a request exists:
    the key, the dates (by the policy the run would apply), and whether the account is connected here."""
    from iiko_pipeline.core.failures import SyncFailure
    from iiko_pipeline.core.policy import WindowPolicy
    from iiko_pipeline.warehouse.credentials import list_accounts

    keyring = _common.keyring()
    for spec in windowed_specs():
        config = run_config.get("ops", {}).get(f"raw_{spec.name}", {}).get("config")
        if spec.name in entities and config:
            try:
                WindowPolicy(**config).window(None)
            except SyncFailure as failure:
                raise SystemExit(f"error: {failure.reason}") from None
    engine = _common.engine()
    if not any(str(a.account_id) == account for a in list_accounts(engine)):
        raise SystemExit(f"error: account {account} is not connected here; connect it first: "
                         f"iiko-pipeline connect {account} --username USER --base-url URL")
    return engine, keyring


def _sync(account: str, entities: list[str], run_config: dict, tags: dict[str, str]) -> int:
    """One run in its own process (`services.launcher`), waited for here; progress on a terminal. Bad input is
    refused before Dagster is imported (a second and more), while the forkserver warms up beside it."""
    engine, keyring = _refuse_before_anything(account, entities, run_config)
    from iiko_pipeline.commands._progress import Progress
    from iiko_pipeline.services.launcher import AccountBusyError, settle, start_sync, wait

    instance = _common.instance()
    try:
        launch = start_sync(instance, engine, keyring, account, entities, run_config=run_config,
                            extra_tags={"iiko/trigger": "cli", **tags})
    except AccountBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"run {launch.run_id}: {', '.join(launch.entities)} of account {launch.account}", file=sys.stderr)
    try:
        outcome = wait(instance, engine, keyring, launch,
                       on_tick=Progress(instance, launch.run_id) if sys.stderr.isatty() else None)
    except KeyboardInterrupt:
        launch.process.terminate()
        launch.process.wait()
        settle(instance, engine, keyring, launch)
        print(f"interrupted: run {launch.run_id} stopped; committed windows stay committed", file=sys.stderr)
        return 130
    return _report(outcome)


def _report(outcome) -> int:
    _common.print_json({"run_id": outcome.run_id, "success": outcome.success, **outcome.results,
                        **({"synced_first": outcome.prerequisites} if outcome.prerequisites else {}),
                        **({"not_stored": outcome.rejected} if outcome.rejected else {}),
                        **({"failures": outcome.failures} if outcome.failures else {})})
    return 0 if outcome.success else 1
