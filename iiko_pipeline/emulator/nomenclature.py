"""Deterministic nomenclature (products, product groups, measure units, categories) and staff (issue 14).

Everything here derives from `(seed, scale)` through RNG streams of its own (`rng_for(seed, scale,
"groups")`, `"product-fields"`, `"products-extra"`, `"categories"`, `"employees"`), never from the
dimensions' stream in `generator.py`. So adding these entities left the corporate tree, stores,
suppliers, the invoice catalogue and every invoice byte-for-byte what they were (a test pins digests).

The invoice catalogue (`Universe.products` and the delivery line) is re-served here under the same ids,
units and articles, so every generated invoice line resolves to a product of `v2/entities/products/list`;
the extra items (dishes, preparations, modifiers, services, ...) are never bought.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from . import names
from .config import Scale
from .generator import Universe, new_id, rng_for
from .models import Container, Employee, NomenclatureItem, Product, ProductGroup, Reference

PORTION_UNIT_CODE = "portion"
SYSTEM_LOGINS = ("admin", "system")

_ACCOUNTING = (("1", "Товары", "goods"), ("2", "Блюда", "dishes"), ("3", "Заготовки", "prepared"),
               ("4", "Услуги", "services"), ("5", "Модификаторы", "modifiers"))
_TAXES = (("1", "НДС 10%", 10), ("2", "НДС 20%", 20), ("3", "Без НДС", 0))
_PALETTE = ((255, 255, 255), (255, 224, 178), (200, 230, 201), (187, 222, 251), (248, 187, 208),
            (255, 249, 196), (209, 196, 233))


@dataclass
class Nomenclature:
    """The generated nomenclature and staff of one `(seed, scale)`."""

    groups: list[ProductGroup]
    items: list[NomenclatureItem]
    units: list[Reference]  # units added for the nomenclature (the universe's four come first)
    accounting_categories: list[Reference]
    tax_categories: list[Reference]
    roles: list[tuple[str, str, str]]  # (id, code, name)
    employees: list[Employee]


def build_nomenclature(seed: int, scale: Scale, u: Universe) -> Nomenclature:
    cat_rng = rng_for(seed, scale.name, "categories")
    accounting = [Reference(new_id(cat_rng), "AccountingCategory", code, name) for code, name, _ in _ACCOUNTING]
    accounting.append(Reference(new_id(cat_rng), "AccountingCategory", "6", "Тара (не используется)", deleted=True))
    acc = {key: ref.id for (_, _, key), ref in zip(_ACCOUNTING, accounting, strict=False)}
    taxes = [Reference(new_id(cat_rng), "TaxCategory", code, name, vat_percent=vat) for code, name, vat in _TAXES]
    tax = {ref.vat_percent: ref.id for ref in taxes}
    portion = Reference(new_id(cat_rng), "MeasureUnit", PORTION_UNIT_CODE, "порц")
    unit_ids = {ref.code: ref.id for ref in u.units}
    unit_ids[PORTION_UNIT_CODE] = portion.id

    groups, leaves, deleted_groups = _build_groups(seed, scale, u)
    items = _catalogue_items(seed, scale, u, leaves, acc, tax)
    items += _extra_items(seed, scale, leaves, deleted_groups, unit_ids, acc, tax)
    roles, employees = _build_staff(seed, scale, u)
    return Nomenclature(groups=groups, items=items, units=[portion], accounting_categories=accounting,
                        tax_categories=taxes, roles=roles, employees=employees)


# ------------------------------------------------------------------ groups

def _build_groups(seed: int, scale: Scale, u: Universe
                  ) -> tuple[list[ProductGroup], dict[str, list[str]], list[str]]:
    """A 2-3 level tree: fixed top groups, then second and third levels drawn at random.

    Returns (groups in tree order, live leaf ids per top key, deleted group ids). Deleted groups are
    leaves, so no live group or product hangs under a deleted one."""
    rng = rng_for(seed, scale.name, "groups")
    restaurant_ids = [r.id for r in u.restaurants]
    counter = 0

    def make(name: str, parent: str | None, deleted: bool = False) -> ProductGroup:
        nonlocal counter
        counter += 1
        r = rng.random()
        code = str(counter) if r < 0.6 else ("" if r < 0.9 else None)
        r = rng.random()
        description = None if r < 0.85 else ("" if r < 0.95 else rng.choice(names.DESCRIPTIONS))
        r = rng.random()
        visibility: tuple[str, ...] | None = None
        excluding = True
        if r >= 0.8 and restaurant_ids:
            if r < 0.93:
                visibility = ()
            else:
                visibility = tuple(rng.sample(restaurant_ids, min(len(restaurant_ids), rng.randint(1, 2))))
                excluding = rng.random() < 0.5
        return ProductGroup(id=new_id(rng), name=name, num=f"ГР-{counter:04d}", code=code, parent_id=parent,
                            description=description, deleted=deleted, visibility_departments=visibility,
                            visibility_excluding=excluding)

    tops: list[tuple[str, ProductGroup]] = [(key, make(name, None)) for key, name in names.GROUP_TOPS]
    remaining = max(0, scale.product_groups - len(tops))
    n_deleted = (1 if remaining else 0) + remaining // 30
    n_live = remaining - n_deleted
    n_second = (n_live * 55 + 99) // 100 if n_live > 1 else n_live
    n_third = n_live - n_second

    children: dict[str, list[ProductGroup]] = {g.id: [] for _, g in tops}
    key_of: dict[str, str] = {g.id: key for key, g in tops}
    per_top: dict[str, int] = {}
    second: list[ProductGroup] = []
    for i in range(n_second):
        key, top = tops[i % len(tops)] if i < len(tops) else rng.choice(tops)
        words = names.GROUP_WORDS[key]
        k = per_top.get(key, 0)
        per_top[key] = k + 1
        name = words[k % len(words)] + (f" {k // len(words) + 1}" if k >= len(words) else "")
        g = make(name, top.id)
        second.append(g)
        children[top.id].append(g)
        children[g.id] = []
        key_of[g.id] = key
    for _ in range(n_third):
        parent = rng.choice(second)
        taken = {c.name for c in children[parent.id]}
        name = rng.choice(names.GROUP_DEEP_WORDS)
        n = 2
        while name in taken:
            name = f"{rng.choice(names.GROUP_DEEP_WORDS)} {n}"
            n += 1
        g = make(name, parent.id)
        children[parent.id].append(g)
        children[g.id] = []
        key_of[g.id] = key_of[parent.id]
    deleted: list[ProductGroup] = []
    for d in range(n_deleted):
        parent_id = rng.choice([g.id for _, g in tops] + [g.id for g in second])
        g = make(f"Старое меню (удалено) {d + 1}", parent_id, deleted=True)
        children[parent_id].append(g)
        children[g.id] = []
        deleted.append(g)

    ordered: list[ProductGroup] = []

    def walk(g: ProductGroup) -> None:
        ordered.append(g)
        for child in children[g.id]:
            walk(child)

    for _, top in tops:
        walk(top)
    leaves: dict[str, list[str]] = {}
    for g in ordered:
        if g.deleted:
            continue
        live_children = [c for c in children[g.id] if not c.deleted]
        if not live_children:
            leaves.setdefault(key_of[g.id], []).append(g.id)
    return ordered, leaves, [g.id for g in deleted]


# ------------------------------------------------------------------ products

def _ean13(rng: random.Random) -> str:
    body = "46" + "".join(str(rng.randint(0, 9)) for _ in range(10))
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _containers(rng: random.Random, article: str, kind: str) -> tuple[Container, ...]:
    sizes = {"kg": (5, 10, 20, 25), "l": (6, 12, 20, 30, 50), "pcs": (6, 12, 24, 100)}.get(kind)
    if not sizes or rng.random() >= 0.15:
        return ()
    out: list[Container] = []
    for k in range(rng.randint(1, 2)):
        size = rng.choice(sizes)
        label = {"kg": "кг", "l": "л", "pcs": "шт"}[kind]
        out.append(Container(id=new_id(rng), num=f"{article}-{k + 1}",
                             name=f"{rng.choice(names.CONTAINER_NAMES)} {size} {label}", count=Decimal(size),
                             container_weight=Decimal(rng.randint(0, 900)).scaleb(-3),
                             deleted=rng.random() < 0.05))
    return tuple(out)


def _catalogue_items(seed: int, scale: Scale, u: Universe, leaves: dict[str, list[str]], acc: dict[str, str],
                     tax: dict[int | None, str]) -> list[NomenclatureItem]:
    """The invoice catalogue as GOODS (the delivery line as SERVICE), same ids, articles, codes, units."""
    rng = rng_for(seed, scale.name, "product-fields")
    combos = [(b, v) for v in range(len(names.PRODUCT_VARIANTS)) for b in range(len(names.PRODUCT_BASES))]
    items: list[NomenclatureItem] = []
    for n, p in enumerate([*u.products, u.delivery]):
        if p is u.delivery or p.unit_kind == "svc":
            key = "services"
        else:
            base = names.PRODUCT_BASES[combos[n % len(combos)][0]][0]
            key = names.BASE_GROUP.get(base, "dry")
        items.append(_goods(rng, p, key, leaves, acc, tax))
    return items


def _goods(rng: random.Random, p: Product, key: str, leaves: dict[str, list[str]], acc: dict[str, str],
           tax: dict[int | None, str]) -> NomenclatureItem:
    service = p.unit_kind == "svc"
    parent = None if rng.random() < 0.02 or not leaves.get(key) else rng.choice(leaves[key])
    r = rng.random()
    description = None if r < 0.8 else ("" if r < 0.95 else rng.choice(names.DESCRIPTIONS))
    sells = service or (key == "drinks" and rng.random() < 0.5)
    price = Decimal(p.base_price_cents * 2 // 1000 * 10) if sells else Decimal(0)
    weight = Decimal(0) if service else Decimal(1)
    if p.unit_kind == "pcs":
        weight = Decimal(rng.randint(5, 1000)).scaleb(-3)
    barcode_share = {"pcs": 0.6, "l": 0.4, "kg": 0.1}.get(p.unit_kind, 0.0)
    barcodes = tuple(_ean13(rng) for _ in range(rng.randint(1, 2))) if rng.random() < barcode_share else ()
    return NomenclatureItem(
        id=p.id, name=p.name, num=p.article, code=p.code, type="SERVICE" if service else "GOODS",
        main_unit_id=p.unit_id, parent_id=parent, description=description,
        accounting_category_id=acc["services" if service else "goods"],
        tax_category_id=None if rng.random() < 0.05 else tax.get(p.vat_percent),
        default_sale_price=price, unit_weight=weight, unit_capacity=Decimal(1) if p.unit_kind == "l" else Decimal(0),
        not_in_store_movement=service, containers=_containers(rng, p.article, p.unit_kind),
        barcodes=barcodes, color=(255, 255, 255), font_color=(0, 0, 0), front_font_size=0,
        default_included_in_menu=sells)


_EXTRA_TYPES = (("DISH", 0.58), ("PREPARED", 0.74), ("MODIFIER", 0.84), ("GOODS", 0.95), ("SERVICE", 0.98),
                ("OUTER", 0.99), ("RATE", 1.01))


def _extra_items(seed: int, scale: Scale, leaves: dict[str, list[str]], deleted_groups: list[str],
                 unit_ids: dict[str, str], acc: dict[str, str], tax: dict[int | None, str]) -> list[NomenclatureItem]:
    rng = rng_for(seed, scale.name, "products-extra")
    used: set[str] = set()
    items: list[NomenclatureItem] = []
    for k in range(scale.extra_products):
        r = rng.random()
        kind = next(t for t, bound in _EXTRA_TYPES if r < bound)
        number = scale.products + k + 1
        unit_kind = "pcs"
        price = Decimal(0)
        vat = 20
        if kind == "DISH":
            name = f"{rng.choice(names.DISH_NAMES)}{rng.choice(names.DISH_VARIANTS)}"
            key, unit_kind, price, vat = "kitchen", PORTION_UNIT_CODE, Decimal(rng.randint(15, 250) * 10), 10
        elif kind == "PREPARED":
            name, key, unit_kind, vat = rng.choice(names.PREPARED_NAMES), "prepared", "kg", 10
        elif kind == "MODIFIER":
            name, key, unit_kind = rng.choice(names.MODIFIER_NAMES), "modifiers", PORTION_UNIT_CODE
            price = Decimal(rng.randint(0, 15) * 10)
        elif kind == "GOODS":
            base, unit_kind, vat, _ = rng.choice(names.PRODUCT_BASES)
            name = f"{base}{rng.choice(names.PRODUCT_VARIANTS)} (не закупается)"
            key = names.BASE_GROUP.get(base, "dry")
        elif kind == "SERVICE":
            name, key, unit_kind = rng.choice(names.SERVICE_NAMES), "services", "svc"
            price = Decimal(rng.randint(1, 50) * 100)
        elif kind == "OUTER":
            name, key = rng.choice(names.OUTER_NAMES), "house"
        else:
            name, key, unit_kind = rng.choice(names.RATE_NAMES), "services", "svc"
            price = Decimal(rng.randint(5, 30) * 100)
        if name in used:
            name = f"{name} №{number}"
        used.add(name)
        deleted = rng.random() < 0.04 or k == 0  # at least one deleted item at every scale
        if deleted and deleted_groups and rng.random() < 0.5:
            parent: str | None = rng.choice(deleted_groups)
        else:
            parent = None if rng.random() < 0.02 or not leaves.get(key) else rng.choice(leaves[key])
        r = rng.random()
        description = None if r < 0.7 else ("" if r < 0.8 else rng.choice(names.DESCRIPTIONS))
        accounting = {"DISH": "dishes", "PREPARED": "prepared", "MODIFIER": "modifiers", "SERVICE": "services",
                      "RATE": "services"}.get(kind, "goods")
        on_menu = kind in ("DISH", "MODIFIER", "SERVICE", "RATE")
        if unit_kind == PORTION_UNIT_CODE:
            weight = Decimal(rng.randint(30, 500)).scaleb(-3)
        else:
            weight = Decimal(0) if unit_kind == "svc" else Decimal(1)
        items.append(NomenclatureItem(
            id=new_id(rng), name=name, num=f"{number:05d}", code=str(number) if rng.random() < 0.9 else "",
            type=kind, main_unit_id=unit_ids[unit_kind], parent_id=parent, deleted=deleted, description=description,
            accounting_category_id=acc[accounting], tax_category_id=None if rng.random() < 0.05 else tax.get(vat),
            default_sale_price=price, unit_weight=weight,
            unit_capacity=Decimal(1) if unit_kind == "l" else Decimal(0),
            not_in_store_movement=kind in ("SERVICE", "RATE"),
            containers=_containers(rng, f"{number:05d}", unit_kind) if kind == "GOODS" else (),
            barcodes=(_ean13(rng),) if kind in ("GOODS", "OUTER") and rng.random() < 0.4 else (),
            color=rng.choice(_PALETTE) if on_menu else (255, 255, 255), font_color=(0, 0, 0),
            front_font_size=rng.choice((0, 0, 0, 12, 14)) if on_menu else 0, default_included_in_menu=on_menu))
    return items


# ------------------------------------------------------------------ staff

def _translit(text: str) -> str:
    return "".join(names.TRANSLIT.get(ch, ch) for ch in text.lower() if ch.isalnum())


def _phone(rng: random.Random, mobile: bool) -> str:
    prefix = f"9{rng.randint(0, 99):02d}" if mobile else "495"
    return f"+7 ({prefix}) {rng.randint(100, 999)}-{rng.randint(0, 99):02d}-{rng.randint(0, 99):02d}"


def _build_staff(seed: int, scale: Scale, u: Universe) -> tuple[list[tuple[str, str, str]], list[Employee]]:
    """System accounts, the staff who are also suppliers (same ids as in `suppliers`), then generated staff."""
    rng = rng_for(seed, scale.name, "employees")
    roles = [(new_id(rng), code, name) for code, name in names.ROLES]
    role_id = {code: rid for rid, code, _ in roles}
    dept_codes = [r.code for r in u.restaurants if r.code]
    epoch = date(2015, 1, 1)

    employees: list[Employee] = [
        Employee(id=new_id(rng), code="", name="Администратор", first_name=None, middle_name=None, last_name=None,
                 login="admin", main_role_id=role_id["SYS"], main_role_code="SYS", role_codes=("SYS",),
                 department_codes=(), note="Системная учётная запись"),
        Employee(id=new_id(rng), code=None, name="Системный пользователь", first_name=None, middle_name=None,
                 last_name=None, login="system", main_role_id=None, main_role_code=None),
    ]
    staff_suppliers = [s for s in u.suppliers if s.is_employee and not s.represents_store]
    for s in staff_suppliers:
        parts = s.name.split(" ")
        employees.append(Employee(
            id=s.id, code=s.code, name=s.name, first_name=parts[1] if len(parts) > 1 else None,
            middle_name=parts[2] if len(parts) > 2 else None, last_name=parts[0], login=None,
            main_role_id=role_id["CUR"], main_role_code="CUR", role_codes=("CUR",),
            department_codes=(rng.choice(dept_codes),) if dept_codes else (),
            hire_date=epoch + timedelta(days=rng.randint(0, 3000)), deleted=s.deleted, is_supplier=True,
            is_client=s.is_client, cell_phone=_phone(rng, True), taxpayer_id=s.taxpayer_id))

    logins: set[str] = set(SYSTEM_LOGINS)
    common = [code for code, _ in names.ROLES[:9]]
    weights = [8, 6, 3, 3, 2, 2, 2, 2, 1]
    for i in range(max(0, scale.employees - len(employees))):
        female = rng.random() < 0.55
        surname = rng.choice(names.SURNAMES)
        last = f"{surname}а" if female else surname
        first = rng.choice(names.FEMALE_FIRST_NAMES if female else names.FIRST_NAMES)
        middle = rng.choice(names.FEMALE_PATRONYMICS if female else names.PATRONYMICS)
        name = f"{last} {first} {middle}" if rng.random() < 0.6 else f"{last} {first}"
        main = "ACC" if rng.random() < 0.03 else rng.choices(common, weights)[0]
        role_codes = [main]
        if rng.random() < 0.25:
            extra = rng.choice(common)
            if extra != main:
                role_codes.append(extra)
        if main == "ACC":
            depts = list(dept_codes)
        elif dept_codes and rng.random() < 0.1:
            depts = rng.sample(dept_codes, min(len(dept_codes), rng.randint(2, 3)))
        else:
            depts = [dept_codes[i % len(dept_codes)]] if dept_codes else []
        login: str | None = None
        if rng.random() < 0.7:
            login = _translit(first[0] + last)
            n = 2
            while login in logins:
                login = f"{_translit(first[0] + last)}{n}"
                n += 1
            logins.add(login)
        hired = epoch + timedelta(days=rng.randint(0, 3300))
        fired = hired + timedelta(days=rng.randint(30, 900)) if rng.random() < 0.12 else None
        deleted = (fired is not None and rng.random() < 0.5) or rng.random() < 0.03
        if i == 0:  # at every scale: one dismissed and deleted, one dismissed but still listed
            fired, deleted = hired + timedelta(days=400), True
        elif i == 1:
            fired, deleted = hired + timedelta(days=200), False
        latin = login or _translit(first[0] + last)
        employees.append(Employee(
            id=new_id(rng), code="" if rng.random() < 0.05 else str(100 + i), name=name, first_name=first,
            middle_name=middle if rng.random() < 0.9 else None, last_name=last, login=login,
            main_role_id=role_id[main], main_role_code=main, role_codes=tuple(role_codes),
            department_codes=tuple(depts), hire_date=hired, fire_date=fired, deleted=deleted,
            is_client=rng.random() < 0.08,
            phone=_phone(rng, False) if rng.random() < 0.4 else None,
            cell_phone=_phone(rng, True) if rng.random() < 0.85 else None,
            email=f"{latin}@rest-chain.example" if rng.random() < 0.5 else None,
            address=(f"г. Москва, {rng.choice(names.STREETS)}, д. {rng.randint(1, 150)}, кв. {rng.randint(1, 300)}"
                     if rng.random() < 0.35 else None),
            card_number=str(rng.randint(10 ** 9, 10 ** 10 - 1)) if rng.random() < 0.45 else None,
            birthday=date(1965, 1, 1) + timedelta(days=rng.randint(0, 14000)) if rng.random() < 0.6 else None,
            taxpayer_id="".join(str(rng.randint(0, 9)) for _ in range(12)) if rng.random() < 0.3 else None,
            note=rng.choice(("Стажёр", "Совместитель", "Медкнижка до 2025-03")) if rng.random() < 0.1 else None))
    return roles, employees
