"""Which accounts are ready for which sync, from the warehouse's sync state (one query per question).

Onboarding keys on "has every entity ever synced successfully?", not on whether the account has a partition:
`connect` adds the partition itself, from any process, so "no partition yet" would miss every account connected
through the CLI or the API. A sync of an entity whose references never synced would store nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine

from iiko_pipeline.core.specs import REGISTRY, prerequisites
from iiko_pipeline.warehouse.state import last_successes


def not_fully_synced(engine: Engine, accounts: Sequence[str]) -> dict[str, list[str]]:
    """Accounts with entities that never synced successfully: {account: [entity, ...]}. Optional entities do
    not count (a server too old for products would be onboarded again every few minutes, for ever): the
    nightly reference schedule keeps trying them."""
    done = last_successes(engine, accounts)
    required = [s.name for s in REGISTRY if not s.optional]
    out = {}
    for account in accounts:
        missing = [e for e in required if e not in done.get(account, {})]
        if missing:
            out[account] = missing
    return out


def lacking_prerequisites(engine: Engine, accounts: Sequence[str], entities: Sequence[str]) -> set[str]:
    """Accounts for which a sync of these entities would be refused: something they reference never synced."""
    needed = {p for e in entities for p in prerequisites(e) if p not in entities}
    if not needed:
        return set()
    done = last_successes(engine, accounts)
    return {a for a in accounts if any(p not in done.get(a, {}) for p in needed)}
