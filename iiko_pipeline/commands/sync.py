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
    p.add_argument("--from", dest="date_from", default=None,
                   help="re-sync invoices from this date (YYYY-MM-DD) as a backfill: the watermark stays put")
    p.add_argument("--to", dest="date_to", default=None, help="last invoice date (YYYY-MM-DD; default today)")
    p.add_argument("--lookback-days", type=int, default=None, help="incremental: re-read this far before the "
                   "watermark (default 14)")
    p.add_argument("--history-days", type=int, default=None, help="first sync of an account: this much history "
                   "(default 90)")
    p.set_defaults(handler=run)

    b = sub.add_parser("backfill", help="re-sync an account's invoices for a date range (watermark untouched)")
    b.add_argument("account_id")
    b.add_argument("--from", dest="date_from", required=True, help="first document date (YYYY-MM-DD)")
    b.add_argument("--to", dest="date_to", required=True, help="last document date (YYYY-MM-DD)")
    b.set_defaults(handler=backfill)


def run(args: argparse.Namespace) -> int:
    from iiko_pipeline.services.sync import invoice_run_config, run_account_sync

    entities = [e for e in ENTITY_CHOICES if e in (args.entities or ENTITY_CHOICES)]
    config = invoice_run_config(args.date_from, args.date_to, history_days=args.history_days,
                                lookback_days=args.lookback_days)
    return _report(run_account_sync(_common.instance(), args.account_id, entities, run_config=config))


def backfill(args: argparse.Namespace) -> int:
    from iiko_pipeline.services.sync import invoice_run_config, run_account_sync

    config = invoice_run_config(args.date_from, args.date_to, mode="backfill")
    return _report(run_account_sync(_common.instance(), args.account_id, ["invoices"], run_config=config,
                                    extra_tags={"iiko/backfill": f"{args.date_from}..{args.date_to}"}))


def _report(outcome) -> int:
    _common.print_json({"run_id": outcome.run_id, "success": outcome.success, **outcome.results,
                        **({"synced_first": outcome.prerequisites} if outcome.prerequisites else {}),
                        **({"not_stored": outcome.rejected} if outcome.rejected else {}),
                        **({"failures": outcome.failures} if outcome.failures else {})})
    return 0 if outcome.success else 1
