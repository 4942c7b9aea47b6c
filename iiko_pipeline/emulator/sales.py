"""Deterministic restaurant sales (issue 15): orders, business days, cash shifts and dish recipes.

Everything comes from RNG streams of its own (`"sales-profile"`, `"recipes"`, `"orders"|day`, `"late-shifts"|day`,
`"shift"|department|day`), never from the streams of `generator.py` or `nomenclature.py`, so adding sales changed
no byte of the corporate tree, suppliers, catalogue, nomenclature or invoices.

The model, and why:

* Orders are generated per *nominal* day `d` (the day whose shift normally takes them), per restaurant, with
  calendar open times inside the restaurant's opening hours; bars close after midnight, so some of their orders
  have calendar times on `d + 1` and still belong to business day `d`.
* A shift may be left open over a night ("late shift"): shift `d - 1` then closes at `until` on calendar day `d`,
  and the orders of day `d` opened before that moment belong to business day `d - 1`. That is iiko's
  `OpenDate.Typed` quirk (the business day of the cash shift, not the order's calendar date). About 3 % of
  nights are late on their own; `late_shift()` (control API) forces or cancels one.
* One cash shift per restaurant (its one point of sale) and business day; session numbers grow by one a day.
  A shift's sales by pay type are the sums of its orders' live lines (`DishDiscountSumInt`, after discount).
* Each dish has a recipe of 1-4 goods from the invoice catalogue; a sold portion consumes them from the
  restaurant's first store (what `stock.py` subtracts), and their cost is the line's `ProductCostBase.ProductCost`.

Money is integer kopecks, quantities integer thousandths, turned into numbers only when rendered.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from .config import Scale
from .generator import Universe, new_id, rng_for
from .models import Employee, NomenclatureItem

ORDER_TYPES = (("Обычный заказ", 0.70), ("Доставка курьером", 0.88), ("Доставка самовывоз", 1.01))
PAY_TYPES = (("Наличные", 0.35), ("Банковские карты", 0.95), ("Кредит", 1.01))
CASH, CARD, CREDIT = (name for name, _ in PAY_TYPES)
NOT_DELETED, DELETED = "NOT_DELETED", "DELETED"
DELETED_WITH_WRITEOFF, DELETED_WITHOUT_WRITEOFF = "DELETED_WITH_WRITEOFF", "DELETED_WITHOUT_WRITEOFF"
DISCOUNT_PERCENTS = (5, 10, 10, 15, 20)
LATE_SHARE = 0.03  # nights on which a shift is left open into the next day (the OpenDate.Typed quirk)
DELETED_ORDER_SHARE = 0.015
DELETED_LINE_SHARE = 0.03
SESSION_EPOCH = date(2015, 1, 1)
STATUS_OPEN, STATUS_UNACCEPTED, STATUS_HASWARNINGS, STATUS_ACCEPTED = "OPEN", "UNACCEPTED", "HASWARNINGS", "ACCEPTED"
#: Shifts closed within this many days before today are not accepted yet.
UNACCEPTED_DAYS = 2


def _pick(table: tuple[tuple[str, float], ...], r: float) -> str:
    return next(name for name, bound in table if r < bound)


@dataclass(frozen=True, slots=True)
class Dish:
    """A menu item as sales see it: the pristine nomenclature item, its price and recipe."""

    index: int
    id: str
    name: str
    code: str | None
    price_c: int
    recipe: tuple[tuple[str, int, int], ...]  # (goods product id, thousandths per portion, kopecks per unit)
    costs: tuple[int, ...]  # cost in kopecks of 0, 1, 2, ... portions (rounded per good, as stock does)

    def cost(self, portions: int) -> int:
        if portions < len(self.costs):
            return self.costs[portions]
        return sum((qty * portions * price + 500) // 1000 for _, qty, price in self.recipe)


@dataclass(frozen=True, slots=True)
class Profile:
    """One restaurant's fixed sales set-up (its point of sale, hours, menu, cash register)."""

    department_id: str
    point_of_sale: str
    store_id: str | None  # where dishes consume their goods
    open_min: int  # minutes after midnight
    close_min: int  # may exceed 24 h: a bar closing after midnight
    menu: tuple[int, ...]  # dish indexes
    session_base: int
    fiscal_offset: int
    cash_reg_number: int
    cash_reg_serial: str
    start_cash: int  # kopecks
    conception: str | None
    staff: tuple[str, ...]  # employee ids (manager / cashier candidates)


class Order(NamedTuple):
    """One generated order, kept compact (a seed-scale day has ~4,000): the id as its 128 random bits, times as
    offsets from the nominal day's midnight (beyond 24 h for a bar's orders after midnight). `lines`: (dish
    index, portions, sum kopecks, discount kopecks, cost kopecks, DeletedWithWriteoff status). `day` is the
    nominal day: the business day unless a late shift of the day before takes the order."""

    id_bits: int
    department_id: str
    day: date
    num: int
    open_s: int  # seconds after the nominal day's midnight
    close_ms: int  # milliseconds after the nominal day's midnight
    order_type: str
    pay_type: str
    deleted: bool
    lines: tuple[tuple[int, int, int, int, int, str], ...]

    @property
    def id(self) -> str:
        return fast_id(self.id_bits)

    @property
    def open_time(self) -> datetime:
        return datetime(self.day.year, self.day.month, self.day.day) + timedelta(seconds=self.open_s)

    @property
    def close_time(self) -> datetime:
        return datetime(self.day.year, self.day.month, self.day.day) + timedelta(milliseconds=self.close_ms)

    def live_lines(self) -> Iterator[tuple[int, int, int, int, int, str]]:
        """The lines that count as sales (a live order's lines that were not deleted)."""
        if not self.deleted:
            yield from (line for line in self.lines if line[5] == NOT_DELETED)

    def consuming_lines(self) -> Iterator[tuple[int, int, int, int, int, str]]:
        """The lines that took goods from the store (sold, or deleted with a write-off)."""
        if not self.deleted:
            yield from (line for line in self.lines if line[5] in (NOT_DELETED, DELETED_WITH_WRITEOFF))


@dataclass(frozen=True, slots=True)
class CashShift:
    """One `v2/cashshifts/list` record (money in kopecks, `None` for JSON null)."""

    id: str
    department_id: str
    business_day: date
    session_number: int
    fiscal_number: int | None
    cash_reg_number: int
    cash_reg_serial: str
    open_date: datetime
    close_date: datetime | None
    accept_date: datetime | None
    manager_id: str | None
    responsible_user: str | None
    session_start_cash: int
    pay_orders: int
    sum_writeoff_orders: int
    sales_cash: int
    sales_credit: int
    sales_card: int
    pay_in: int
    pay_out: int
    pay_income: int
    cash_remain: int
    cash_diff: int
    session_status: str
    conception: str | None
    point_of_sale: str
    revision: int = 1


class Sales:
    """Orders, business days and cash shifts of one `(seed, scale)`, generated per day on demand. Thread-safe."""

    def __init__(self, seed: int, scale: Scale, universe: Universe, dishes: Iterable[NomenclatureItem],
                 employees: Iterable[Employee], today: Callable[[], date], history_days: Callable[[], int],
                 cache_days: int = 16) -> None:
        self.seed = seed
        self.scale = scale
        self.universe = universe
        self._today = today
        self._history_days = history_days
        self._cache_days = max(2, cache_days)
        self._lock = threading.RLock()
        self._days: OrderedDict[date, list[Order]] = OrderedDict()
        self._late_overrides: dict[tuple[str, date], datetime | None] = {}
        self._shift_revisions: dict[tuple[str, date], int] = {}
        self._natural: dict[date, dict[str, datetime]] = {}
        self._consumed: OrderedDict[date, tuple[dict[tuple[str, int, int], int], ...]] = OrderedDict()
        self.dishes = self._build_dishes(list(dishes))
        self.profiles = self._build_profiles(list(employees))
        self._by_department = {p.department_id: p for p in self.profiles}

    # ------------------------------------------------------------------ set-up

    def _build_dishes(self, items: list[NomenclatureItem]) -> list[Dish]:
        """Live DISH items with a price (fallback: anything on the menu with a price), each with a recipe."""
        menu = [i for i in items if i.type == "DISH" and not i.deleted and i.default_sale_price > 0]
        if not menu:
            menu = [i for i in items if i.default_included_in_menu and not i.deleted and i.default_sale_price > 0]
        goods = [p for p in self.universe.products if p.unit_kind != "svc"]
        rng = rng_for(self.seed, self.scale.name, "recipes")
        dishes: list[Dish] = []
        for index, item in enumerate(menu):
            price_c = int(item.default_sale_price * 100)
            picked = rng.sample(goods, min(len(goods), rng.randint(1, 4))) if goods else []
            raw: list[tuple[str, int, int]] = []
            for product in picked:
                if product.unit_kind == "kg":
                    qty = rng.randint(30, 400)
                elif product.unit_kind == "l":
                    qty = rng.randint(20, 300)
                else:
                    qty = rng.randint(1, 2) * 1000
                raw.append((product.id, qty, product.base_price_cents))
            # Food cost 20-40 % of the price, as a restaurant plans it: scale the quantities to that target.
            raw_cost = sum(qty * price for _, qty, price in raw) / 1000
            factor = price_c * (0.2 + 0.2 * rng.random()) / raw_cost if raw_cost else 1.0
            recipe = [(product, max(1, round(qty * factor)), price) for product, qty, price in raw]
            costs = tuple(sum((qty * n * price + 500) // 1000 for _, qty, price in recipe) for n in range(5))
            dishes.append(Dish(index, item.id, item.name, item.code, int(item.default_sale_price * 100),
                               tuple(recipe), costs))
        return dishes

    def _build_profiles(self, employees: list[Employee]) -> list[Profile]:
        rng = rng_for(self.seed, self.scale.name, "sales-profile")
        staff_by_code: dict[str, list[str]] = {}
        everyone: list[str] = []
        for e in employees:
            if e.deleted or e.login in ("admin", "system") or e.main_role_code not in ("MNG", "CSH", "WTR", "CHF"):
                continue
            everyone.append(e.id)
            for code in e.department_codes:
                staff_by_code.setdefault(code, []).append(e.id)
        lo, hi = self.scale.menu_dishes
        profiles: list[Profile] = []
        for dept in self.universe.restaurants:
            stores = self.universe.restaurant_stores.get(dept.id) or []
            bar = rng.random() < 0.2
            open_min = rng.choice((480, 540, 570, 600, 630, 660))
            close_min = rng.randint(25 * 60, 26 * 60 + 30) if bar else rng.randint(22 * 60, 23 * 60 + 30)
            indexes = list(range(len(self.dishes)))
            if hi and len(indexes) > lo:
                indexes = sorted(rng.sample(indexes, min(len(indexes), rng.randint(lo, hi))))
            profiles.append(Profile(
                department_id=dept.id, point_of_sale=new_id(rng), store_id=stores[0].id if stores else None,
                open_min=open_min, close_min=close_min, menu=tuple(indexes), session_base=rng.randint(100, 1500),
                fiscal_offset=rng.randint(0, 900), cash_reg_number=rng.randint(1, 9),
                cash_reg_serial=f"{rng.randint(100000, 999999)} ", start_cash=rng.choice((0, 0, 300000, 500000)),
                conception=rng.choice(self.universe.conceptions).id if rng.random() < 0.5 else None,
                staff=tuple(staff_by_code.get(dept.code or "") or everyone)))
        return profiles

    # ------------------------------------------------------------------ days

    def span(self) -> tuple[date, date]:
        """First and last day with orders: the invoices' span, `[today - invoice_history_days, today]`."""
        today = self._today()
        return today - timedelta(days=max(0, self._history_days())), today

    def profile(self, department_id: str) -> Profile | None:
        return self._by_department.get(department_id.lower())

    def day_orders(self, day: date) -> list[Order]:
        """The orders generated for nominal day `day` (every restaurant), by restaurant then open time."""
        first, last = self.span()
        if not first <= day <= last:
            return []
        with self._lock:
            orders = self._days.get(day)
            if orders is not None:
                self._days.move_to_end(day)
                return orders
        orders = self._generate(day)  # outside the lock: a seed-scale day takes tens of ms
        with self._lock:
            self._days[day] = orders
            while len(self._days) > self._cache_days:
                self._days.popitem(last=False)
        return orders

    def _generate(self, day: date) -> list[Order]:
        """Hot path (a seed-scale day is ~4,000 orders): plain `random()` arithmetic instead of randint/sample."""
        rng = rng_for(self.seed, self.scale.name, "orders", day.isoformat())
        rand, bits = rng.random, rng.getrandbits
        lo, hi = self.scale.orders_per_restaurant_day
        lo_lines, hi_lines = self.scale.lines_per_order
        dishes = self.dishes
        out: list[Order] = []
        for prof in self.profiles:
            count = lo + int(rand() * (hi - lo + 1)) if hi else 0
            menu = prof.menu
            if not menu or count <= 0:
                continue
            seconds = (prof.close_min - prof.open_min) * 60
            times = sorted(int(rand() * seconds) for _ in range(count))
            opened_at = prof.open_min * 60
            n_menu = len(menu)
            department = prof.department_id
            for num, offset in enumerate(times, start=1):
                order_bits = bits(128)
                open_s = opened_at + offset
                close_ms = (open_s + 300 + int(rand() * 5100)) * 1000 + int(rand() * 1000)
                r = rand()
                order_type = ORDER_TYPES[0][0] if r < 0.70 else (ORDER_TYPES[1][0] if r < 0.88 else ORDER_TYPES[2][0])
                r = rand()
                pay_type = CASH if r < 0.35 else (CARD if r < 0.95 else CREDIT)
                deleted = rand() < DELETED_ORDER_SHARE
                percent = DISCOUNT_PERCENTS[int(rand() * len(DISCOUNT_PERCENTS))] if rand() < 0.15 else 0
                wanted = min(n_menu, lo_lines + int(rand() * (hi_lines - lo_lines + 1)))
                chosen: list[int] = []
                while len(chosen) < wanted:
                    index = menu[int(rand() * n_menu)]
                    if index not in chosen:
                        chosen.append(index)
                lines = []
                for k, index in enumerate(chosen):
                    r = rand()
                    portions = 1 if r < 0.7 else (2 if r < 0.9 else 3 + int(rand() * 2))
                    dish = dishes[index]
                    sum_c = dish.price_c * portions
                    if deleted:
                        status = DELETED_WITHOUT_WRITEOFF
                    elif k > 0 and rand() < DELETED_LINE_SHARE:  # the first line always stays
                        status = DELETED_WITH_WRITEOFF if rand() < 0.5 else DELETED_WITHOUT_WRITEOFF
                    else:
                        status = NOT_DELETED
                    lines.append((index, portions, sum_c, (sum_c * percent + 50) // 100, dish.cost(portions), status))
                out.append(Order(order_bits, department, day, num, open_s, close_ms, order_type, pay_type, deleted,
                                 tuple(lines)))
        return out

    # ------------------------------------------------------------------ late shifts and business days

    def _natural_late(self, day: date) -> dict[str, datetime]:
        """The restaurants whose shift of `day - 1` was left open into `day`, and until when (own stream)."""
        with self._lock:
            known = self._natural.get(day)
        if known is not None:
            return known
        rng = rng_for(self.seed, self.scale.name, "late-shifts", day.isoformat())
        midnight = datetime(day.year, day.month, day.day)
        late: dict[str, datetime] = {}
        for prof in self.profiles:
            r = rng.random()
            minutes = rng.randint(30, 300)
            if r < LATE_SHARE:
                late[prof.department_id] = midnight + timedelta(minutes=prof.open_min + minutes)
        with self._lock:
            self._natural[day] = late
        return late

    def late_close(self, department_id: str, day: date) -> datetime | None:
        """When the shift of `day - 1` closed on calendar day `day`, if it was left open over that night."""
        first, last = self.span()
        if not first < day <= last:
            return None
        key = (department_id, day)
        with self._lock:
            if key in self._late_overrides:
                return self._late_overrides[key]
        return self._natural_late(day).get(department_id)

    def set_late_shift(self, department_id: str, day: date, until: datetime | None, revision: int) -> None:
        """Keep the shift of `day - 1` open until `until` (on `day`), or (None) close it the normal way."""
        with self._lock:
            self._late_overrides[(department_id, day)] = until
            self._shift_revisions[(department_id, day - timedelta(days=1))] = revision
            self._shift_revisions[(department_id, day)] = revision

    def late_shifts(self) -> list[tuple[str, date, datetime | None]]:
        """The control API's overrides: (department, day, until or None)."""
        with self._lock:
            return [(d, day, until) for (d, day), until in sorted(self._late_overrides.items())]

    @staticmethod
    def business_day(order: Order, late: datetime | None) -> date:
        """`order.day`, or the day before when that day's shift was still open when the order was opened."""
        if late is None:
            return order.day
        late_s = (late - datetime(order.day.year, order.day.month, order.day.day)).total_seconds()
        return order.day - timedelta(days=1) if order.open_s < late_s else order.day

    def orders_by_business_day(self, day_from: date, day_to: date, department: str | None = None
                               ) -> Iterator[tuple[date, Order]]:
        """(business day, order) for every order whose business day is in `[day_from, day_to]` (deleted ones too),
        by nominal day, restaurant, time. Only days inside the span are generated."""
        first, last = self.span()
        lo, hi = max(day_from, first), min(day_to + timedelta(days=1), last)
        day = lo
        while day <= hi:
            lates: dict[str, datetime | None] = {}
            for order in self.day_orders(day):
                if department is not None and order.department_id != department:
                    continue
                if order.department_id not in lates:
                    lates[order.department_id] = self.late_close(order.department_id, day)
                business = self.business_day(order, lates[order.department_id])
                if day_from <= business <= day_to:
                    yield business, order
            day += timedelta(days=1)

    def session_number(self, prof: Profile, day: date) -> int:
        return prof.session_base + (day - SESSION_EPOCH).days

    # ------------------------------------------------------------------ cash shifts

    def shifts(self, day_from: date, day_to: date, department: str | None = None) -> list[CashShift]:
        """One shift per restaurant and business day in `[day_from, day_to]` ∩ span, by day then restaurant."""
        first, last = self.span()
        lo, hi = max(day_from, first), min(day_to, last)
        if lo > hi:
            return []
        grouped: dict[tuple[date, str], list[Order]] = {}
        for business, order in self.orders_by_business_day(lo, hi, department):
            grouped.setdefault((business, order.department_id), []).append(order)
        out: list[CashShift] = []
        day = lo
        while day <= hi:
            for prof in self.profiles:
                if department is not None and prof.department_id != department:
                    continue
                out.append(self._shift(prof, day, grouped.get((day, prof.department_id), [])))
            day += timedelta(days=1)
        return out

    def _shift(self, prof: Profile, day: date, orders: list[Order]) -> CashShift:
        rng = rng_for(self.seed, self.scale.name, "shift", prof.department_id, day.isoformat())
        shift_id = new_id(rng)
        midnight = datetime(day.year, day.month, day.day)
        orders = sorted(orders, key=lambda o: o.open_time)
        lead = timedelta(seconds=rng.randint(300, 1800), milliseconds=rng.randrange(1000))
        lag = timedelta(seconds=rng.randint(300, 2400), milliseconds=rng.randrange(1000))
        previous_late = self.late_close(prof.department_id, day)
        first_order = orders[0].open_time if orders else None
        if previous_late is not None:
            open_date = previous_late + timedelta(seconds=rng.randint(60, 600))
            if first_order is not None and first_order <= open_date:
                open_date = first_order - timedelta(seconds=1)
        elif first_order is not None:
            open_date = min(first_order, midnight + timedelta(minutes=prof.open_min)) - lead
        else:
            open_date = midnight + timedelta(minutes=prof.open_min) - lead
        open_date = min(open_date, midnight + timedelta(hours=23, minutes=59, seconds=59))  # opened on `day`
        last_close = max((o.close_time for o in orders), default=open_date)
        natural_close = max(last_close, midnight + timedelta(minutes=prof.close_min)) + lag
        next_late = self.late_close(prof.department_id, day + timedelta(days=1))
        close_date: datetime | None = max(next_late, last_close + timedelta(seconds=1)) if next_late else natural_close

        cash = card = credit = 0
        for order in orders:
            total = sum(line[2] - line[3] for line in order.live_lines())
            if order.pay_type == CASH:
                cash += total
            elif order.pay_type == CARD:
                card += total
            else:
                credit += total
        pay_in = rng.randint(10, 50) * 10000 if rng.random() < 0.1 else 0
        pay_out = rng.randint(2, 30) * 10000 if rng.random() < 0.15 else 0
        cash_diff = 0
        if rng.random() < 0.12:
            cash_diff = rng.choice((-1, 1)) * rng.randint(1, 500) * 100
        fiscal: int | None = self.session_number(prof, day) + prof.fiscal_offset if rng.random() < 0.95 else None
        manager = rng.choice(prof.staff) if prof.staff else None
        cashier = rng.choice(prof.staff) if prof.staff else None
        accept_lag = timedelta(hours=rng.randint(9, 14), minutes=rng.randint(0, 59), seconds=rng.randint(0, 59),
                               milliseconds=rng.randrange(1000))

        today = self._today()
        accept_date: datetime | None = None
        if day >= today:
            status, close_date = STATUS_OPEN, None
        elif day >= today - timedelta(days=UNACCEPTED_DAYS):
            status = STATUS_HASWARNINGS if cash_diff else STATUS_UNACCEPTED
        else:
            status = STATUS_ACCEPTED
            assert close_date is not None
            close_day = close_date.date() + timedelta(days=1)
            accept_date = datetime(close_day.year, close_day.month, close_day.day) + accept_lag
        cash_remain = prof.start_cash
        pay_income = 0 if close_date is None else -(prof.start_cash + cash + pay_in - pay_out + cash_diff - cash_remain)
        with self._lock:
            revision = self._shift_revisions.get((prof.department_id, day), 1)
        return CashShift(
            id=shift_id, department_id=prof.department_id, business_day=day,
            session_number=self.session_number(prof, day), fiscal_number=fiscal,
            cash_reg_number=prof.cash_reg_number, cash_reg_serial=prof.cash_reg_serial, open_date=open_date,
            close_date=close_date, accept_date=accept_date, manager_id=manager, responsible_user=cashier,
            session_start_cash=prof.start_cash, pay_orders=cash + card + credit, sum_writeoff_orders=0,
            sales_cash=cash, sales_credit=credit, sales_card=card, pay_in=pay_in, pay_out=pay_out,
            pay_income=pay_income, cash_remain=cash_remain, cash_diff=cash_diff, session_status=status,
            conception=prof.conception, point_of_sale=prof.point_of_sale, revision=revision)

    # ------------------------------------------------------------------ stock

    def _consumed_counts(self, nominal: date) -> tuple[dict[tuple[str, int, int], int], ...]:
        """Lines of nominal day `nominal` that took goods, counted per (store, dish, portions), split by the
        calendar day of their order (0: `nominal`, 1: the day after: a bar after midnight). Cached."""
        with self._lock:
            known = self._consumed.get(nominal)
            if known is not None:
                return known
        split: tuple[dict[tuple[str, int, int], int], ...] = ({}, {})
        for order in self.day_orders(nominal):
            if order.deleted:
                continue
            store = self._by_department[order.department_id].store_id
            if store is None:
                continue
            counts = split[order.open_s // 86400] if order.open_s < 2 * 86400 else split[1]
            for line in order.lines:
                if line[5] != DELETED_WITHOUT_WRITEOFF:
                    key = (store, line[0], line[1])
                    counts[key] = counts.get(key, 0) + 1
        with self._lock:
            self._consumed[nominal] = split
            while len(self._consumed) > 4 * self._cache_days:
                self._consumed.popitem(last=False)
        return split

    def consumption(self, day: date, until: datetime | None = None) -> dict[tuple[str, str], list[int]]:
        """Goods taken from the stores on calendar day `day` (up to `until`, inclusive, if given):
        {(store, product): [thousandths, kopecks]}. Orders consume at their open time; each line's goods are
        rounded to kopecks per good, exactly as its `ProductCostBase.ProductCost`."""
        counts: dict[tuple[str, int, int], int] = {}
        if until is None:
            for nominal, part in ((day - timedelta(days=1), 1), (day, 0)):
                for key, n in self._consumed_counts(nominal)[part].items():
                    counts[key] = counts.get(key, 0) + n
        else:
            start = datetime(day.year, day.month, day.day)
            end = min(start + timedelta(days=1), until + timedelta(microseconds=1))
            for nominal in (day - timedelta(days=1), day):
                base = datetime(nominal.year, nominal.month, nominal.day)
                low, high = (start - base).total_seconds(), (end - base).total_seconds()
                for order in self.day_orders(nominal):
                    if order.deleted or not low <= order.open_s < high:
                        continue
                    store = self._by_department[order.department_id].store_id
                    if store is None:
                        continue
                    for line in order.lines:
                        if line[5] != DELETED_WITHOUT_WRITEOFF:
                            key = (store, line[0], line[1])
                            counts[key] = counts.get(key, 0) + 1
        out: dict[tuple[str, str], list[int]] = {}
        dishes = self.dishes
        for (store, index, portions), n in counts.items():
            for product, qty, price in dishes[index].recipe:
                amount = qty * portions
                cents = (amount * price + 500) // 1000
                slot = out.get((store, product))
                if slot is None:
                    out[(store, product)] = [amount * n, cents * n]
                else:
                    slot[0] += amount * n
                    slot[1] += cents * n
        return out

    def opening_stock(self) -> dict[tuple[str, str], list[int]]:
        """The opening balance of each restaurant's first store: every good its menu uses (own stream)."""
        rng = rng_for(self.seed, self.scale.name, "stock-opening")
        kinds = {p.id: p.unit_kind for p in self.universe.products}
        out: dict[tuple[str, str], list[int]] = {}
        for prof in self.profiles:
            if prof.store_id is None:
                continue
            goods = sorted({(product, price) for index in prof.menu
                            for product, _q, price in self.dishes[index].recipe})
            for product, price in goods:
                kind = kinds.get(product, "pcs")
                amount = rng.randint(5, 40) * 1000 if kind in ("kg", "l") else rng.randint(20, 200) * 1000
                out[(prof.store_id, product)] = [amount, (amount * price + 500) // 1000]
        return out


def fast_id(n: int) -> str:
    """`str(uuid.UUID(int=n, version=4))` without building a UUID object (a few times faster)."""
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)
    n = (n & ~(0xF000 << 64)) | (4 << 76)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def kopecks(value: int) -> Decimal:
    return Decimal(value).scaleb(-2)


def order_truth(sales: Sales, business: date, order: Order) -> dict[str, Any]:
    """One order as the control API and tests see it (Decimal money, every line, deleted ones included)."""
    prof = sales.profile(order.department_id)
    lines = []
    for index, portions, sum_c, discount_c, cost_c, status in order.lines:
        dish = sales.dishes[index]
        lines.append({"dish_id": dish.id, "dish_name": dish.name, "dish_code": dish.code, "amount": portions,
                      "sum": kopecks(sum_c), "discount": kopecks(discount_c),
                      "sum_after_discount": kopecks(sum_c - discount_c), "cost": kopecks(cost_c),
                      "deleted_with_writeoff": status})
    return {"id": order.id, "department_id": order.department_id, "business_day": business,
            "nominal_day": order.day, "number": order.num,
            "session_number": sales.session_number(prof, business) if prof else None,
            "open_time": order.open_time, "close_time": order.close_time, "order_type": order.order_type,
            "pay_type": order.pay_type, "order_deleted": DELETED if order.deleted else NOT_DELETED, "lines": lines}


def shift_truth(shift: CashShift) -> dict[str, Any]:
    """One cash shift as the control API and tests see it (snake_case, Decimal money, its restaurant)."""
    out: dict[str, Any] = {}
    for name in CashShift.__dataclass_fields__:
        value = getattr(shift, name)
        money = name in _SHIFT_MONEY
        out[name] = kopecks(value) if money and value is not None else value
    return out


_SHIFT_MONEY = frozenset({"session_start_cash", "pay_orders", "sum_writeoff_orders", "sales_cash", "sales_credit",
                          "sales_card", "pay_in", "pay_out", "pay_income", "cash_remain", "cash_diff"})


def java_datetime(value: datetime) -> str:
    """A date-time the way iiko's JSON prints it: `2025-03-18T19:19:12.99` (milliseconds without trailing zeros,
    none at all on a whole second; seconds always)."""
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    millis = value.microsecond // 1000
    return f"{text}.{millis:03d}".rstrip("0") if millis else text


def late_until(day: date, value: time | datetime | str) -> datetime:
    """`until` of a late shift as a datetime on `day` (a time, `HH:MM[:SS]`, or a full date-time)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        text = value.strip()
        if "T" in text or len(text) > 8:
            return datetime.fromisoformat(text).replace(tzinfo=None)
        value = time.fromisoformat(text)
    return datetime.combine(day, value)

