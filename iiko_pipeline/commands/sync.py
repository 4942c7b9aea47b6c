"""`iiko-pipeline sync`: materialize an account's assets through the Dagster instance; print the results."""

from __future__ import annotations

import argparse

from iiko_pipeline.commands import _common

ENTITY_CHOICES = ("restaurants", "stores", "suppliers", "invoices")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sync", help="sync one account now (a Dagster run the UI shows)")
    p.add_argument("account_id")
    p.add_argument("entities", nargs="*", choices=[*ENTITY_CHOICES, []], default=[],
                   help="default: all four, in dependency order")
    p.add_argument("--from", dest="date_from", default=None, help="first invoice date (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", default=None, help="last invoice date (YYYY-MM-DD)")
    p.add_argument("--days", type=int, default=None, help="invoice days up to --to (default 30)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from iiko_pipeline.services.sync import invoice_run_config, run_account_sync

    entities = [e for e in ENTITY_CHOICES if e in (args.entities or ENTITY_CHOICES)]
    outcome = run_account_sync(_common.instance(), args.account_id, entities,
                               run_config=invoice_run_config(args.date_from, args.date_to, args.days))
    _common.print_json({"run_id": outcome.run_id, "success": outcome.success, **outcome.results,
                        **({"failures": outcome.failures} if outcome.failures else {})})
    return 0 if outcome.success else 1
