"""Stock balances per store and product (issue 15): what `v2/reports/balance/stores` answers.

Balance at `T` = the opening balance + incoming invoice quantities (PROCESSED documents dated up to `T`, each line
at its own store, else the document's default store) - the goods consumed by the orders opened up to `T` (each
dish's recipe, taken from its restaurant's first store). Sums likewise: invoice line sums in, recipe cost out.

Why it is shaped like this: a real server keeps no snapshots and answers any point in time, and a pipeline asks
for one snapshot per business day; at `seed` scale a day of movements means ~8,000 invoice lines and ~10,000
order lines, so:

* Stock accounting starts at 00:00 of `start = today - stock_history_days` (never before the generated span)
  with an opening balance (every good each restaurant's menu uses, own RNG stream). Earlier timestamps answer
  an empty list. That bounds the work of a cold snapshot to `stock_history_days` days.
* Full-day movements of the *generated* data are computed once per day (`_deltas`, LRU) and cumulated into
  checkpoints (`_cumulative`, LRU), so consecutive daily snapshots cost one day each.
* Control-API edits are never cached: the documents created, edited (back-dated, re-stored, re-statused) or
  removed are applied as corrections on every answer (the original generated version out, the current one in),
  so an edit changes every balance from its date on and never invalidates a cache.

Quantities are integer thousandths and money integer kopecks; values are `(amount, sum)` tuples.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from .models import Invoice
from .sales import Sales

if TYPE_CHECKING:
    from .dataset import Dataset

Key = tuple[str, str]  # (store id, product id)
Balances = dict[Key, tuple[int, int]]
END_OF_DAY = time(23, 59, 59)


def _add(target: dict[Key, list[int]], key: Key, amount: int, cents: int) -> None:
    slot = target.get(key)
    if slot is None:
        target[key] = [amount, cents]
    else:
        slot[0] += amount
        slot[1] += cents


def invoice_lines(doc: Invoice, skip_products: frozenset[str]) -> Iterable[tuple[Key, int, int]]:
    """(store, product) movements of a PROCESSED document: base-unit amount in thousandths, sum in kopecks.
    Additional-expense lines and services (the delivery line) move no goods; a line without a store falls back
    to the document's default store, and one with neither is skipped."""
    if doc.status != "PROCESSED":
        return
    for item in doc.items:
        if item.is_additional_expense or item.product_id in skip_products:
            continue
        store = item.store_id or doc.default_store_id
        if store is None:
            continue
        yield ((store, item.product_id), int((item.amount * 1000).to_integral_value()),
               int((item.sum * 100).to_integral_value()))


class Stock:
    """Balances of one dataset; see the module docstring. Thread-safe."""

    def __init__(self, dataset: Dataset, sales: Sales, history_days: Callable[[], int], cache_days: int = 16) -> None:
        self._dataset = dataset
        self._sales = sales
        self._history_days = history_days
        self._cache_days = max(2, cache_days)
        self._lock = threading.RLock()
        self._deltas: OrderedDict[date, Balances] = OrderedDict()
        self._cumulative: OrderedDict[tuple[date, date], Balances] = OrderedDict()
        self._opening: Balances | None = None
        self._skip = frozenset({dataset.universe.delivery.id})

    # ------------------------------------------------------------------ the parts

    def start(self) -> date:
        """The day whose 00:00 carries the opening balance: `today - stock_history_days`, within the span."""
        first, today = self._dataset.generated_span()
        return max(first, today - timedelta(days=max(0, self._history_days())))

    def opening(self) -> Balances:
        with self._lock:
            if self._opening is None:
                self._opening = {k: (v[0], v[1]) for k, v in self._sales.opening_stock().items()}
            return self._opening

    def incoming(self, day: date, until: datetime | None = None) -> dict[Key, list[int]]:
        """Goods received on `day` by the *generated* documents (up to `until`, inclusive); the same rules as
        `invoice_lines`, over the light generator's tuples."""
        out: dict[Key, list[int]] = {}
        skip = self._skip
        for _id, when, status, default_store, lines in self._dataset.generated_light(day):
            if status != "PROCESSED" or (until is not None and when > until):
                continue
            for store, product, amount, cents, additional in lines:
                store = store or default_store
                if additional or product in skip or store is None:
                    continue
                _add(out, (store, product), amount, cents)
        return out

    def delta(self, day: date) -> Balances:
        """One full day of generated movements: incoming - consumption (cached)."""
        with self._lock:
            known = self._deltas.get(day)
            if known is not None:
                self._deltas.move_to_end(day)
                return known
        moves = self.incoming(day)
        for key, (amount, cents) in self._sales.consumption(day).items():
            _add(moves, key, -amount, -cents)
        result = {k: (v[0], v[1]) for k, v in moves.items()}
        with self._lock:
            self._deltas[day] = result
            while len(self._deltas) > self._cache_days:
                self._deltas.popitem(last=False)
        return result

    def cumulative(self, start: date, day: date) -> Balances:
        """Opening balance + every generated full day in `[start, day]` (a checkpoint; do not mutate)."""
        if day < start:
            return self.opening()
        with self._lock:
            known = self._cumulative.get((start, day))
            if known is not None:
                self._cumulative.move_to_end((start, day))
                return known
            base_day = max((d for s, d in self._cumulative if s == start and d < day), default=None)
            base = self._cumulative[(start, base_day)] if base_day is not None else self.opening()
        current = dict(base)
        cursor = (base_day or start - timedelta(days=1)) + timedelta(days=1)
        while cursor <= day:
            for key, (amount, cents) in self.delta(cursor).items():
                old = current.get(key)
                current[key] = (amount, cents) if old is None else (old[0] + amount, old[1] + cents)
            cursor += timedelta(days=1)
        with self._lock:
            self._cumulative[(start, day)] = current
            while len(self._cumulative) > 6:
                self._cumulative.popitem(last=False)
        return current

    def _corrections(self, start: date, at: datetime, day: date | None = None) -> dict[Key, list[int]]:
        """The control API's edits as movements up to `at` (or on `day` only): current versions in, the generated
        originals they replace out. Documents dated before `start` do not count (stock starts there)."""
        out: dict[Key, list[int]] = {}
        low = datetime(start.year, start.month, start.day)

        def counts(doc: Invoice) -> bool:
            when = doc.date_incoming
            return low <= when <= at and (day is None or when.date() == day)

        for original, current in self._dataset.changed_invoices():
            if original is not None and counts(original):
                for key, amount, cents in invoice_lines(original, self._skip):
                    _add(out, key, -amount, -cents)
            if current is not None and counts(current):
                for key, amount, cents in invoice_lines(current, self._skip):
                    _add(out, key, amount, cents)
        return out

    # ------------------------------------------------------------------ answers

    def balances(self, at: datetime) -> Balances:
        """Every (store, product) balance at `at`, zero ones included (the endpoint drops them)."""
        start = self.start()
        if at < datetime(start.year, start.month, start.day):
            return {}
        today = self._dataset.generated_span()[1]
        full_to = min(at.date() if at.time() >= END_OF_DAY else at.date() - timedelta(days=1), today)
        result = dict(self.cumulative(start, full_to))
        partial: dict[Key, list[int]] = {}
        if at.date() <= today and at.time() < END_OF_DAY:
            partial = self.incoming(at.date(), at)
            for key, (amount, cents) in self._sales.consumption(at.date(), at).items():
                _add(partial, key, -amount, -cents)
        for moves in (partial, self._corrections(start, at)):
            for key, (amount, cents) in moves.items():
                old = result.get(key)
                result[key] = (amount, cents) if old is None else (old[0] + amount, old[1] + cents)
        return result

    def movements(self, day: date) -> dict[str, dict[Key, tuple[int, int]]]:
        """Calendar day `day` as the balances see it, edits included: {"incoming": ..., "consumption": ...}.
        A snapshot at the end of `day` minus one at the end of the day before is incoming - consumption."""
        start = self.start()
        today = self._dataset.generated_span()[1]
        incoming: dict[Key, list[int]] = self.incoming(day) if start <= day <= today else {}
        end = datetime(day.year, day.month, day.day, 23, 59, 59)
        for key, (amount, cents) in self._corrections(start, end, day).items():
            _add(incoming, key, amount, cents)
        consumption = self._sales.consumption(day) if start <= day <= today else {}
        return {"incoming": {k: (v[0], v[1]) for k, v in incoming.items() if v != [0, 0]},
                "consumption": {k: (v[0], v[1]) for k, v in consumption.items()}}


def number(value: int, places: int) -> int | float:
    """An integer count of 10**-places units as a JSON number (integral values as integers). `int / int` is
    correctly rounded, so the float's repr is exactly the decimal (`16101 / 1000` prints `16.101`)."""
    unit = 10 ** places
    return value // unit if value % unit == 0 else value / unit


def render_balances(balances: Mapping[Key, tuple[int, int]], stores: set[str] | None,
                    products: set[str] | None) -> bytes:
    """The `balance/stores` JSON array: zero balances omitted, negative ones kept, sorted by store then product.
    Written by hand (a seed-scale answer has ~60,000 rows; ids are UUIDs, numbers plain)."""
    parts = []
    quoted: dict[str, str] = {}
    for (store, product), (amount, cents) in sorted(balances.items()):
        if amount == 0 and cents == 0:
            continue
        if (stores is not None and store not in stores) or (products is not None and product not in products):
            continue
        s_json = quoted.get(store) or quoted.setdefault(store, json.dumps(store, ensure_ascii=False))
        p_json = quoted.get(product) or quoted.setdefault(product, json.dumps(product, ensure_ascii=False))
        parts.append(f'{{"store":{s_json},"product":{p_json},"amount":{number(amount, 3)!r},'
                     f'"sum":{number(cents, 2)!r}}}')
    return ("[" + ",".join(parts) + "]").encode("utf-8")
