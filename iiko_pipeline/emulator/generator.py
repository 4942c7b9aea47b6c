"""Deterministic data generator.

Everything derives from (seed, scale) through `random.Random` seeded with strings (seeding from a
string hashes it with SHA-512, so it is stable across processes and Python builds). The dimensions
(corporate tree, stores, suppliers, catalogue) are built once; invoices are built per day on demand
from an RNG seeded with (seed, scale, day), so a year of history costs nothing until it is asked for
and the same day always comes out byte-identical.

Money is computed in integer cents / thousandths and turned into `Decimal` at the end, which is both
fast and exact; see `InvoiceItem` for the invariants.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from . import names
from .config import Scale
from .models import CorporateItem, Invoice, InvoiceItem, Product, Reference, Supplier


def rng_for(seed: int, scale: str, *parts: object) -> random.Random:
    """An RNG for one purpose; distinct `parts` give independent streams."""
    return random.Random("|".join([str(seed), scale, *map(str, parts)]))


def new_id(rng: random.Random) -> str:
    """A lowercase v4-shaped UUID drawn from `rng` (deterministic, unlike uuid4)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))


@dataclass
class Universe:
    """The generated dimensions. Never mutated: invoices are always generated from this pristine copy,
    so control-API edits to dimensions do not change what a given day's invoices look like."""

    corporate: list[CorporateItem]
    suppliers: list[Supplier]
    products: list[Product]
    delivery: Product
    units: list[Reference]
    conceptions: list[Reference]
    restaurants: list[CorporateItem]
    restaurant_stores: dict[str, list[CorporateItem]]
    external_suppliers: list[Supplier]
    internal_suppliers: list[Supplier]
    day_capacity: int
    number_prefix: dict[str, str] = field(default_factory=dict)


def build_universe(seed: int, scale: Scale) -> Universe:
    """Build the corporate tree, stores, suppliers and product catalogue for (seed, scale)."""
    rng = rng_for(seed, scale.name, "dimensions")

    corporation = CorporateItem(new_id(rng), None, "", names.CORPORATION_NAME, "CORPORATION", None)
    corporate: list[CorporateItem] = [corporation]
    jurs: list[CorporateItem] = []
    for j in range(scale.jurpersons):
        inn = _digits(rng, 10)
        name = names.JURPERSON_NAMES[j % len(names.JURPERSON_NAMES)]
        if j >= len(names.JURPERSON_NAMES):
            name = f"{name} {j + 1}"
        jurs.append(CorporateItem(new_id(rng), corporation.id, "", name, "JURPERSON", inn))

    restaurants: list[CorporateItem] = []
    restaurant_stores: dict[str, list[CorporateItem]] = {}
    dept_children: dict[str, list[CorporateItem]] = {j.id: [] for j in jurs}
    store_code = 0
    for i in range(scale.restaurants):
        jur = jurs[i % len(jurs)]
        location = names.LOCATIONS[i % len(names.LOCATIONS)]
        if i >= len(names.LOCATIONS):
            location = f"{location}-{i // len(names.LOCATIONS) + 1}"
        name = f"{rng.choice(names.RESTAURANT_KINDS)} «{rng.choice(names.BRANDS)}» {location}"
        # About half the restaurants repeat their legal entity's INN, the rest leave it empty.
        taxpayer = jur.taxpayer_id if rng.random() < 0.5 else ""
        dept = CorporateItem(new_id(rng), jur.id, f"{i + 1:03d}", name, "DEPARTMENT", taxpayer)
        restaurants.append(dept)
        dept_children[jur.id].append(dept)
        lo, hi = scale.stores_per_restaurant
        kinds = list(names.STORE_KINDS)
        stores: list[CorporateItem] = []
        for k in range(rng.randint(lo, hi)):
            kind = kinds[k] if k < 2 else rng.choice(kinds[2:])
            store_code += 1
            code = str(store_code) if rng.random() < 0.7 else ""
            stores.append(CorporateItem(new_id(rng), dept.id, code, f"{kind} {location}", "STORE", None))
        restaurant_stores[dept.id] = stores

    # Deleted stores: extra, unused by invoices, visible only as deleted:true in accounts/list.
    deleted_stores: dict[str, list[CorporateItem]] = {}
    for d in range(scale.deleted_stores):
        dept = restaurants[(d * 7) % len(restaurants)]
        store = CorporateItem(new_id(rng), dept.id, "", f"Старый склад (закрыт) {d + 1}", "STORE", None,
                              deleted=True)
        deleted_stores.setdefault(dept.id, []).append(store)

    # Tree order: corporation, each legal entity, its restaurants each followed by its stores.
    manufacture = None
    if scale.restaurants >= 10:
        manufacture = CorporateItem(new_id(rng), jurs[0].id, "", "Фабрика-кухня", "MANUFACTURE", None)
    for jur in jurs:
        corporate.append(jur)
        if manufacture is not None and jur is jurs[0]:
            corporate.append(manufacture)
        for dept in dept_children[jur.id]:
            corporate.append(dept)
            corporate.extend(restaurant_stores[dept.id])
            corporate.extend(deleted_stores.get(dept.id, []))

    units = [Reference(new_id(rng), "MeasureUnit", code, name)
             for code, name in (("kg", "кг"), ("l", "л"), ("pcs", "шт"), ("svc", "усл"))]
    unit_ids = {u.code: u.id for u in units}
    conceptions = [Reference(new_id(rng), "Conception", str(n + 1), name)
                   for n, name in enumerate(("Основная", "Доставка", "Банкеты"))]

    products = _build_products(rng, scale.products, unit_ids)
    delivery = Product(new_id(rng), "D0001", "D0001", "Доставка", unit_ids["svc"], "svc", 20, 50000)

    all_stores = [s for dept in restaurants for s in restaurant_stores[dept.id]]
    suppliers, external, internal = _build_suppliers(rng, scale, restaurants, restaurant_stores, all_stores)

    prefix = {dept.id: "ПН-" for n, dept in enumerate(restaurants) if n % 7 == 3}
    return Universe(corporate=corporate, suppliers=suppliers, products=products, delivery=delivery, units=units,
                    conceptions=conceptions, restaurants=restaurants, restaurant_stores=restaurant_stores,
                    external_suppliers=external, internal_suppliers=internal,
                    day_capacity=scale.restaurants * scale.invoices_per_restaurant_day[1], number_prefix=prefix)


def _build_products(rng: random.Random, count: int, unit_ids: dict[str, str]) -> list[Product]:
    combos = [(b, v) for v in range(len(names.PRODUCT_VARIANTS)) for b in range(len(names.PRODUCT_BASES))]
    products: list[Product] = []
    for n in range(count):
        base_i, var_i = combos[n % len(combos)]
        base, kind, vat, price = names.PRODUCT_BASES[base_i]
        suffix = names.PRODUCT_VARIANTS[var_i]
        name = f"{base}{suffix}" + (f" {n // len(combos) + 1}" if n >= len(combos) else "")
        article = f"{n + 1:05d}"
        code = article if rng.random() < 0.9 else str(10000 + n)
        cents = max(100, int(price * 100 * (0.7 + 0.6 * rng.random())))
        products.append(Product(new_id(rng), article, code, name, unit_ids[kind], kind, vat, cents))
    return products


def _supplier_name(rng: random.Random, used: set[str]) -> tuple[str, str]:
    """A unique legal name and its form (ООО, ИП, ...)."""
    for _ in range(50):
        form = rng.choice(names.SUPPLIER_FORMS)
        if form == "ИП":
            name = (f"ИП {rng.choice(names.SURNAMES)} {rng.choice(names.FIRST_NAMES)[0]}."
                    f" {rng.choice(names.PATRONYMICS)[0]}.")
        else:
            left, right = ("«", "»") if rng.random() < 0.6 else ('"', '"')
            name = f"{form} {left}{rng.choice(names.SUPPLIER_WORDS)}{rng.choice(names.SUPPLIER_EXTRAS)}{right}"
        if name not in used:
            used.add(name)
            return name, form
    name = f"ООО «Поставщик №{len(used) + 1}»"
    used.add(name)
    return name, "ООО"


def _build_suppliers(rng: random.Random, scale: Scale, restaurants: list[CorporateItem],
                     restaurant_stores: dict[str, list[CorporateItem]], all_stores: list[CorporateItem],
                     ) -> tuple[list[Supplier], list[Supplier], list[Supplier]]:
    used: set[str] = set()
    by_dept = {d.id: d for d in restaurants}
    n_internal = min(scale.internal_suppliers, len(all_stores))
    n_regular = scale.suppliers - n_internal
    # Which regular slots are deleted / also staff / also clients: spread through the list.
    slots = list(range(n_regular))
    rng.shuffle(slots)
    deleted = set(slots[: scale.deleted_suppliers])
    staff = set(slots[scale.deleted_suppliers: scale.deleted_suppliers + scale.employee_suppliers])
    clients_from = scale.deleted_suppliers + scale.employee_suppliers
    clients = set(slots[clients_from: clients_from + scale.client_suppliers])

    suppliers: list[Supplier] = []
    external: list[Supplier] = []
    internal: list[Supplier] = []
    internal_at = set(rng.sample(range(scale.suppliers), n_internal))
    store_pick = rng.sample(all_stores, n_internal)
    regular_i = 0
    for n in range(scale.suppliers):
        sid = new_id(rng)
        code = "" if rng.random() < 0.15 else str(1000 + n)
        if n in internal_at:
            store = store_pick.pop()
            dept = by_dept[store.parent_id or ""]
            s = Supplier(sid, code, f"{dept.name}: {store.name}", False, True, False, False, True, store.id,
                         None, None)
            internal.append(s)
        else:
            is_staff = regular_i in staff
            if is_staff:
                name = (f"{rng.choice(names.SURNAMES)} {rng.choice(names.FIRST_NAMES)}"
                        f" {rng.choice(names.PATRONYMICS)}")
                form = "person"
                used.add(name)
            else:
                name, form = _supplier_name(rng, used)
            is_deleted = regular_i in deleted
            if is_deleted and rng.random() < 0.5:
                name = f"{name} (не работаем)"
            if form == "ИП" or form == "person":
                inn: str | None = _digits(rng, 12)
            else:
                inn = _digits(rng, 10)
            if rng.random() < 0.08:
                inn = None
            if form not in ("ИП", "person") and inn is not None:
                note: str | None = f"КПП: {inn[:4]}01001"
            elif rng.random() < 0.3:
                note = rng.choice(names.SUPPLIER_NOTES)
            else:
                note = None
            s = Supplier(sid, code, name, is_deleted, True, is_staff, regular_i in clients, False, None, inn, note)
            if not is_deleted:
                external.append(s)
            regular_i += 1
        suppliers.append(s)
    return suppliers, external, internal


# ----------------------------------------------------------------------------------------------
# Invoices

_STATUS_WEIGHTS = (("PROCESSED", 0.88), ("NEW", 0.08), ("DELETED", 0.04))


def _pick_status(r: float) -> str:
    acc = 0.0
    for status, weight in _STATUS_WEIGHTS:
        acc += weight
        if r < acc:
            return status
    return "PROCESSED"


def line_money(amount_m: int, price_c: int, vat: int) -> tuple[int, int, int, int]:
    """(price_c, sum_c, vat_sum_c, price_without_vat_c) in cents for an amount in thousandths.

    Rounds half up; nudges the price up a cent while any of the three roundings would sit exactly on
    a tie, so half-up and half-even agree and a checker can use either.
    """
    d = 100 + vat
    while True:
        num = amount_m * price_c
        if num % 1000 != 500:
            sum_c = (num + 500) // 1000
            if vat == 0 or ((sum_c * vat) * 2 % (2 * d) != d and (price_c * 100) * 2 % (2 * d) != d):
                vat_c = (2 * sum_c * vat + d) // (2 * d)
                pwv_c = (2 * price_c * 100 + d) // (2 * d)
                return price_c, sum_c, vat_c, pwv_c
        price_c += 1


_ZERO = Decimal("0.00")
_VAT = {v: Decimal(v) for v in (0, 10, 18, 20, 22)}


def _dec(value: int, places: int) -> Decimal:
    return Decimal(value).scaleb(-places)


def make_item(num: int, product: Product, amount_m: int, price_c: int, store_id: str | None,
              additional: bool = False, actual_m: int | None = None) -> InvoiceItem:
    """Build one line whose money fields satisfy the `InvoiceItem` invariants."""
    price_c, sum_c, vat_c, pwv_c = line_money(amount_m, price_c, product.vat_percent)
    amount = _dec(amount_m, 3)
    return InvoiceItem(
        num=num, product_id=product.id, product_article=product.article, code=product.code, amount=amount,
        actual_amount=amount if actual_m is None else _dec(actual_m, 3), amount_unit=product.unit_id,
        price=_dec(price_c, 2), price_without_vat=_dec(pwv_c, 2), sum=_dec(sum_c, 2),
        vat_percent=_VAT.get(product.vat_percent) or Decimal(product.vat_percent), vat_sum=_dec(vat_c, 2),
        discount_sum=_ZERO, store_id=store_id, is_additional_expense=additional)


def _amount_for(rng: random.Random, kind: str) -> int:
    if kind == "kg":
        return rng.randint(100, 30000)
    if kind == "l":
        return rng.randint(1, 40) * 500
    return rng.randint(1, 120) * 1000


#: What `generate_day(..., light=True)` gives per document: (id, dateIncoming, status, default store, lines), each
#: line (store, product id, amount in thousandths, sum in kopecks, is additional expense).
LightInvoice = tuple[str, datetime, str, "str | None", list[tuple["str | None", str, int, int, bool]]]


def generate_day(u: Universe, seed: int, scale: Scale, day: date, light: bool = False) -> list[Any]:
    """All generated invoices dated `day`, sorted by (dateIncoming, id).

    Document numbers restart every year and encode the day of the year, so the same numbers recur on
    the same day of every year (as real yearly numbering does) and a number can be mapped back to its
    day without generating the whole year (`day_for_number`).

    `light=True` (the stock balances' path) draws exactly the same random numbers but builds no `Invoice`
    objects: each document becomes a `LightInvoice` tuple, about twice as fast, the same money to the kopeck.
    """
    rng = rng_for(seed, scale.name, "invoices", day.isoformat())
    lo_inv, hi_inv = scale.invoices_per_restaurant_day
    lo_lines, hi_lines = scale.lines_per_invoice
    base_number = (day.timetuple().tm_yday - 1) * u.day_capacity
    products = u.products
    docs: list[Any] = []
    counter = 0
    midnight = datetime(day.year, day.month, day.day)
    for dept in u.restaurants:
        stores = u.restaurant_stores[dept.id]
        prefix = u.number_prefix.get(dept.id, "")
        for _ in range(rng.randint(lo_inv, hi_inv)):
            counter += 1
            doc_id = new_id(rng)
            when = midnight + timedelta(seconds=rng.randint(6 * 3600, 22 * 3600))
            if u.internal_suppliers and rng.random() < 0.03:
                supplier = rng.choice(u.internal_suppliers)
            else:
                supplier = rng.choice(u.external_suppliers)
            status = _pick_status(rng.random())
            main_store = rng.choice(stores)
            multi = len(stores) > 1 and rng.random() < 0.12
            other_store = rng.choice([s for s in stores if s is not main_store]) if multi else main_store
            default_store: str | None = None if multi or rng.random() < 0.05 else main_store.id

            n_lines = min(rng.randint(lo_lines, hi_lines), len(products))
            items: list[Any] = []
            for num, product in enumerate(rng.sample(products, n_lines), start=1):
                amount_m = _amount_for(rng, product.unit_kind)
                price_c = max(1, int(product.base_price_cents * (0.85 + 0.3 * rng.random())))
                actual_m = None
                if rng.random() < 0.03:
                    actual_m = amount_m * 9 // 10
                store = other_store.id if multi and num % 2 == 0 else main_store.id
                if light:
                    items.append((store, product.id, amount_m, line_money(amount_m, price_c, product.vat_percent)[1],
                                  False))
                else:
                    items.append(make_item(num, product, amount_m, price_c, store, actual_m=actual_m))
            if rng.random() < 0.10:
                delivery_c = rng.randint(300, 1500) * 100
                if light:
                    items.append((main_store.id, u.delivery.id, 1000,
                                  line_money(1000, delivery_c, u.delivery.vat_percent)[1], True))
                else:
                    items.append(make_item(len(items) + 1, u.delivery, 1000, delivery_c, main_store.id,
                                           additional=True))

            r = rng.random()
            incoming_date: date | None = None if r < 0.1 else day - timedelta(days=int(r * 10) % 4)
            r = rng.random()
            incoming_number: str | None
            if r < 0.15:
                incoming_number = None
            elif r < 0.6:
                incoming_number = f"УПД-{rng.randint(1000, 99999)}"
            else:
                incoming_number = f"{rng.randint(1, 9999)}/{day.year % 100:02d}"
            r = rng.random()
            invoice_number = None if r < 0.2 else ("" if r < 0.7 else f"СФ-{rng.randint(100, 99999)}")
            due = midnight + timedelta(days=rng.randint(7, 30)) if rng.random() < 0.6 else None
            comment = rng.choice(names.INVOICE_COMMENTS) if rng.random() < 0.35 else None
            conception = rng.choice(u.conceptions).id if rng.random() < 0.5 else None
            if light:
                docs.append((doc_id, when, status, default_store, items))
                continue
            docs.append(Invoice(
                id=doc_id, document_number=f"{prefix}{base_number + counter}", date_incoming=when,
                incoming_date=incoming_date, incoming_document_number=incoming_number,
                invoice_number=invoice_number, supplier_id=supplier.id, default_store_id=default_store,
                due_date=due, status=status, comment=comment, conception_id=conception, items=items))
    docs.sort(key=(lambda d: (d[1], d[0])) if light else (lambda d: (d.date_incoming, d.id)))
    return docs


def day_for_number(number: str, year: int, day_capacity: int) -> date | None:
    """The day of `year` whose generated documents could carry `number`, or None."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if not digits or day_capacity <= 0:
        return None
    n = int(digits)
    if n <= 0:
        return None
    doy = (n - 1) // day_capacity + 1
    try:
        return date(year, 1, 1) + timedelta(days=doy - 1) if doy <= 366 else None
    except OverflowError:
        return None
