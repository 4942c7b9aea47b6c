"""The mutable truth: generated data plus control-API overrides.

Layout (why it looks like this):

* Dimensions (corporate nodes, stores, suppliers) are small, so they live in ordered dicts that are
  edited in place (an edited record keeps its position in the XML).
* Invoices are generated per day on demand (`generator.generate_day`) and kept in a bounded LRU, so a
  year of history costs nothing until asked for. Edits never touch the generated lists: an edited or
  created document lives in `_overrides`, a removed one in `_removed`, and readers merge the three.
  `_id_day` remembers the generated day of every document ever generated, so an edit can find a
  document by id after its day fell out of the cache.
* `revision` counts mutations; every generated record has revision 1 and each mutation stamps the
  touched record with a fresh, higher number, which is what `revisionFrom` filters on.
* Sales (orders, cash shifts) and stock balances (issue 15) live in `sales.py` / `stock.py`, built on first use
  (`self.sales`, `self.stock`) from RNG streams of their own; stock reads the invoices through
  `generated_invoices` and `changed_invoices`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from . import codec
from .config import SCALES
from .generator import LightInvoice, build_universe, day_for_number, generate_day, new_id, rng_for
from .models import (
    CorporateItem,
    Employee,
    Invoice,
    InvoiceItem,
    NomenclatureItem,
    Product,
    ProductGroup,
    Reference,
    Supplier,
)
from .nomenclature import build_nomenclature
from .sales import Sales
from .stock import Stock

BASE_REVISION = 1
_CENT = Decimal("0.01")


class NotFound(KeyError):
    """The id names no record (answered with 404 by the control API)."""


class Dataset:
    """Generated chain data plus the edits made through the control API. Thread-safe."""

    def __init__(self, seed: int, scale: str, today: Callable[[], date], history_days: Callable[[], int],
                 cache_days: int = 64, stock_days: Callable[[], int] = lambda: 14) -> None:
        self.seed = seed
        self.scale = SCALES[scale]
        self._today = today
        self._history_days = history_days
        self._cache_days = max(1, cache_days)
        self._lock = threading.RLock()
        self.universe = build_universe(seed, self.scale)
        self._products = {p.id: p for p in [*self.universe.products, self.universe.delivery]}
        self._corporate: dict[str, CorporateItem] = {c.id: c for c in self.universe.corporate}
        self._suppliers: dict[str, Supplier] = {s.id: s for s in self.universe.suppliers}
        # Issue 14: nomenclature and staff, from RNG streams of their own (the universe is untouched).
        self.nomenclature = build_nomenclature(seed, self.scale, self.universe)
        self._items: dict[str, NomenclatureItem] = {i.id: i for i in self.nomenclature.items}
        self._groups: dict[str, ProductGroup] = {g.id: g for g in self.nomenclature.groups}
        self._employees: dict[str, Employee] = {e.id: e for e in self.nomenclature.employees}
        self._days: OrderedDict[date, list[Invoice]] = OrderedDict()
        self._id_day: dict[str, date] = {}
        self._overrides: dict[str, Invoice] = {}
        self._removed: set[str] = set()
        self._revisions: dict[str, int] = {}
        self.revision = BASE_REVISION
        self._created = 0
        self._doc_counter = 0
        self._stock_days = stock_days
        self._sales: Sales | None = None
        self._stock: Stock | None = None

    # ------------------------------------------------------------------ sales and stock (issue 15)

    @property
    def sales(self) -> Sales:
        """Orders, business days and cash shifts (built on first use: most tests never ask)."""
        with self._lock:
            if self._sales is None:
                self._sales = Sales(self.seed, self.scale, self.universe, self.nomenclature.items,
                                    self.nomenclature.employees, today=self._today, history_days=self._history_days,
                                    cache_days=min(self._cache_days, 16))
            return self._sales

    @property
    def stock(self) -> Stock:
        """Stock balances per store and product (built on first use)."""
        sales = self.sales
        with self._lock:
            if self._stock is None:
                self._stock = Stock(self, sales, self._stock_days, cache_days=min(self._cache_days, 16))
            return self._stock

    def set_late_shift(self, department_id: str, day: date, until: datetime | None) -> None:
        """Keep a restaurant's shift of `day - 1` open until `until` on `day` (None: close it normally)."""
        key = department_id.lower()
        if self.sales.profile(key) is None:
            raise NotFound(department_id)
        with self._lock:
            self.revision += 1
            revision = self.revision
        self.sales.set_late_shift(key, day, until, revision)

    # ------------------------------------------------------------------ dimensions (read)

    def departments(self) -> list[CorporateItem]:
        """Every corporate node (corporation, legal entities, restaurants, stores, ...) in tree order."""
        with self._lock:
            return list(self._corporate.values())

    def restaurants(self) -> list[CorporateItem]:
        return [c for c in self.departments() if c.type == "DEPARTMENT"]

    def stores(self) -> list[CorporateItem]:
        """All stores, including ones flagged `deleted` (that flag only shows in accounts/list)."""
        return [c for c in self.departments() if c.type == "STORE"]

    def suppliers(self) -> list[Supplier]:
        with self._lock:
            return list(self._suppliers.values())

    def corporate_item(self, item_id: str) -> CorporateItem | None:
        with self._lock:
            return self._corporate.get(item_id.lower())

    def supplier(self, supplier_id: str) -> Supplier | None:
        with self._lock:
            return self._suppliers.get(supplier_id.lower())

    def products(self) -> list[Product]:
        return list(self._products.values())

    def units(self) -> list[Reference]:
        """Every measure unit: the catalogue's four, then the ones only the nomenclature uses (порц)."""
        return [*self.universe.units, *self.nomenclature.units]

    def accounting_categories(self) -> list[Reference]:
        return list(self.nomenclature.accounting_categories)

    def tax_categories(self) -> list[Reference]:
        return list(self.nomenclature.tax_categories)

    def nomenclature_items(self) -> list[NomenclatureItem]:
        """Every product of `v2/entities/products/list` (deleted ones included), in answer order."""
        with self._lock:
            return list(self._items.values())

    def nomenclature_item(self, item_id: str) -> NomenclatureItem | None:
        with self._lock:
            return self._items.get(item_id.lower())

    def product_groups(self) -> list[ProductGroup]:
        """Every product group (deleted ones included), parents before children."""
        with self._lock:
            return list(self._groups.values())

    def product_group(self, group_id: str) -> ProductGroup | None:
        with self._lock:
            return self._groups.get(group_id.lower())

    def employees(self) -> list[Employee]:
        """Every record of `GET employees` (deleted and system accounts included)."""
        with self._lock:
            return list(self._employees.values())

    def employee(self, employee_id: str) -> Employee | None:
        with self._lock:
            return self._employees.get(employee_id.lower())

    def conceptions(self) -> list[Reference]:
        return list(self.universe.conceptions)

    def revision_of(self, record_id: str) -> int:
        return self._revisions.get(record_id, BASE_REVISION)

    # ------------------------------------------------------------------ dimensions (write)

    def _bump(self, record_id: str) -> None:
        self.revision += 1
        self._revisions[record_id] = self.revision

    def _next_id(self, kind: str) -> str:
        self._created += 1
        return new_id(rng_for(self.seed, self.scale.name, "created", kind, self._created))

    def add_corporate(self, fields: Mapping[str, Any], default_type: str = "DEPARTMENT") -> CorporateItem:
        """Create a corporate node; missing fields get deterministic defaults by type."""
        data = codec.coerce(fields, codec.CORPORATE_FIELDS, "corporate item")
        with self._lock:
            kind = data.get("type", default_type)
            item_id = data.get("id") or self._next_id(kind)
            if item_id in self._corporate:
                raise codec.CoercionError(f"id {item_id} already exists")
            if kind == "STORE":
                parent = self.universe.restaurants[0].id
                defaults: dict[str, Any] = {"code": "", "name": f"Новый склад {self._created}", "taxpayer_id": None}
            elif kind == "DEPARTMENT":
                parent = next((c.id for c in self._corporate.values() if c.type == "JURPERSON"),
                              self.universe.corporate[0].id)
                n = sum(1 for c in self._corporate.values() if c.type == "DEPARTMENT") + 1
                defaults = {"code": f"{n:03d}", "name": f"Ресторан №{n}", "taxpayer_id": ""}
            else:
                parent = self.universe.corporate[0].id
                defaults = {"code": "", "name": f"{kind} {self._created}", "taxpayer_id": None}
            item = CorporateItem(id=item_id, parent_id=data.get("parent_id", parent),
                                 code=data.get("code", defaults["code"]), name=data.get("name", defaults["name"]),
                                 type=kind, taxpayer_id=data.get("taxpayer_id", defaults["taxpayer_id"]),
                                 deleted=data.get("deleted", False))
            self._corporate[item.id] = item
            self._bump(item.id)
            return item

    def edit_corporate(self, item_id: str, changes: Mapping[str, Any]) -> CorporateItem:
        data = codec.coerce(changes, codec.CORPORATE_FIELDS, "corporate item")
        with self._lock:
            current = self._corporate.get(item_id.lower())
            if current is None:
                raise NotFound(item_id)
            if data.get("id", current.id) != current.id:
                raise codec.CoercionError("id cannot be changed")
            item = dataclasses.replace(current, **data)
            self._corporate[item.id] = item
            self._bump(item.id)
            return item

    def remove_corporate(self, item_id: str) -> bool:
        with self._lock:
            removed = self._corporate.pop(item_id.lower(), None)
            if removed is not None:
                self._bump(removed.id)
            return removed is not None

    def add_supplier(self, fields: Mapping[str, Any]) -> Supplier:
        data = codec.coerce(fields, codec.SUPPLIER_FIELDS, "supplier")
        with self._lock:
            supplier_id = data.get("id") or self._next_id("supplier")
            if supplier_id in self._suppliers:
                raise codec.CoercionError(f"id {supplier_id} already exists")
            values: dict[str, Any] = {
                "id": supplier_id, "code": "", "name": f"ООО «Новый поставщик {self._created}»", "deleted": False,
                "is_supplier": True, "is_employee": False, "is_client": False, "represents_store": False,
                "represented_store_id": None, "taxpayer_id": None, "note": None}
            values.update(data)
            supplier = Supplier(**values)
            self._suppliers[supplier.id] = supplier
            self._bump(supplier.id)
            return supplier

    def edit_supplier(self, supplier_id: str, changes: Mapping[str, Any]) -> Supplier:
        data = codec.coerce(changes, codec.SUPPLIER_FIELDS, "supplier")
        with self._lock:
            current = self._suppliers.get(supplier_id.lower())
            if current is None:
                raise NotFound(supplier_id)
            if data.get("id", current.id) != current.id:
                raise codec.CoercionError("id cannot be changed")
            supplier = dataclasses.replace(current, **data)
            self._suppliers[supplier.id] = supplier
            self._bump(supplier.id)
            return supplier

    def remove_supplier(self, supplier_id: str) -> bool:
        with self._lock:
            removed = self._suppliers.pop(supplier_id.lower(), None)
            if removed is not None:
                self._bump(removed.id)
            return removed is not None

    # ------------------------------------------------------------------ nomenclature and staff (write)

    def _put(self, store: dict[str, Any], record: Any) -> Any:
        store[record.id] = record
        self._bump(record.id)
        return record

    def _edit(self, store: dict[str, Any], record_id: str, data: Mapping[str, Any]) -> Any:
        current = store.get(record_id.lower())
        if current is None:
            raise NotFound(record_id)
        if data.get("id", current.id) != current.id:
            raise codec.CoercionError("id cannot be changed")
        return self._put(store, dataclasses.replace(current, **data))

    def _remove(self, store: dict[str, Any], record_id: str, purge: bool) -> bool:
        """iiko never erases these: removing marks the record deleted (it then shows only with
        includeDeleted=true). `purge` makes it vanish instead."""
        current = store.get(record_id.lower())
        if current is None:
            return False
        if purge:
            del store[current.id]
            self._bump(current.id)
        else:
            self._put(store, dataclasses.replace(current, deleted=True))
        return True

    def add_nomenclature_item(self, fields: Mapping[str, Any]) -> NomenclatureItem:
        """Create a product; defaults: GOODS in шт, top level, the next free article."""
        data = codec.coerce(fields, codec.PRODUCT_FIELDS, "product")
        with self._lock:
            item_id = data.get("id") or self._next_id("product")
            if item_id in self._items:
                raise codec.CoercionError(f"id {item_id} already exists")
            number = len(self._items) + 1
            pcs = next(u.id for u in self.universe.units if u.code == "pcs")
            values: dict[str, Any] = {"id": item_id, "name": f"Новый товар {self._created}", "num": f"N{number:05d}",
                                      "code": str(90000 + number), "type": "GOODS", "main_unit_id": pcs,
                                      "parent_id": None}
            values.update(data)
            return self._put(self._items, NomenclatureItem(**values))

    def edit_nomenclature_item(self, item_id: str, changes: Mapping[str, Any]) -> NomenclatureItem:
        data = codec.coerce(changes, codec.PRODUCT_FIELDS, "product")
        with self._lock:
            return self._edit(self._items, item_id, data)

    def remove_nomenclature_item(self, item_id: str, purge: bool = False) -> bool:
        with self._lock:
            return self._remove(self._items, item_id, purge)

    def add_product_group(self, fields: Mapping[str, Any]) -> ProductGroup:
        data = codec.coerce(fields, codec.GROUP_FIELDS, "product group")
        with self._lock:
            group_id = data.get("id") or self._next_id("product_group")
            if group_id in self._groups:
                raise codec.CoercionError(f"id {group_id} already exists")
            number = len(self._groups) + 1
            values: dict[str, Any] = {"id": group_id, "name": f"Новая группа {self._created}",
                                      "num": f"ГР-{number:04d}", "code": str(number), "parent_id": None}
            values.update(data)
            return self._put(self._groups, ProductGroup(**values))

    def edit_product_group(self, group_id: str, changes: Mapping[str, Any]) -> ProductGroup:
        data = codec.coerce(changes, codec.GROUP_FIELDS, "product group")
        with self._lock:
            return self._edit(self._groups, group_id, data)

    def remove_product_group(self, group_id: str, purge: bool = False) -> bool:
        with self._lock:
            return self._remove(self._groups, group_id, purge)

    def add_employee(self, fields: Mapping[str, Any]) -> Employee:
        data = codec.coerce(fields, codec.EMPLOYEE_FIELDS, "employee")
        with self._lock:
            employee_id = data.get("id") or self._next_id("employee")
            if employee_id in self._employees:
                raise codec.CoercionError(f"id {employee_id} already exists")
            first_dept = self.universe.restaurants[0].code if self.universe.restaurants else None
            waiter = next((rid for rid, code, _ in self.nomenclature.roles if code == "WTR"), None)
            values: dict[str, Any] = {
                "id": employee_id, "code": str(900 + self._created), "name": f"Новиков Новый {self._created}",
                "first_name": "Новый", "middle_name": None, "last_name": "Новиков", "login": None,
                "main_role_id": waiter, "main_role_code": "WTR", "role_codes": ("WTR",),
                "department_codes": (first_dept,) if first_dept else (), "hire_date": self._today()}
            values.update(data)
            return self._put(self._employees, Employee(**values))

    def edit_employee(self, employee_id: str, changes: Mapping[str, Any]) -> Employee:
        data = codec.coerce(changes, codec.EMPLOYEE_FIELDS, "employee")
        with self._lock:
            return self._edit(self._employees, employee_id, data)

    def remove_employee(self, employee_id: str, purge: bool = False) -> bool:
        with self._lock:
            return self._remove(self._employees, employee_id, purge)

    # ------------------------------------------------------------------ invoices (read)

    def generated_span(self) -> tuple[date, date]:
        """First and last day that have generated invoices: [today - invoice_history_days, today]."""
        today = self._today()
        return today - timedelta(days=max(0, self._history_days())), today

    def _generated(self, day: date) -> list[Invoice]:
        with self._lock:
            docs = self._days.get(day)
            if docs is not None:
                self._days.move_to_end(day)
                return docs
        docs = generate_day(self.universe, self.seed, self.scale, day)  # outside the lock: can be slow
        with self._lock:
            self._days[day] = docs
            for doc in docs:
                self._id_day[doc.id] = day
            while len(self._days) > self._cache_days:
                self._days.popitem(last=False)
        return docs

    def iter_invoice_days(self, date_from: date, date_to: date, supplier_ids: Iterable[str] | None = None,
                          revision_from: int = -1) -> Iterator[list[Invoice]]:
        """Yield the effective documents of each day in [date_from, date_to] that has any, oldest first.

        Only days inside the generated span or holding an override are visited, so absurd ranges
        (year 1 to 9999) are cheap.
        """
        if date_from > date_to:
            return
        suppliers = {s.lower() for s in supplier_ids} if supplier_ids else None
        with self._lock:
            changed = set(self._overrides) | self._removed
            extra: dict[date, list[Invoice]] = {}
            for doc in self._overrides.values():
                if date_from <= doc.document_date <= date_to:
                    extra.setdefault(doc.document_date, []).append(doc)
            revisions = dict(self._revisions) if revision_from >= 0 else {}
        first, last = self.generated_span()
        lo, hi = max(first, date_from), min(last, date_to)
        days = set(extra)
        day = lo
        while day <= hi:
            days.add(day)
            day += timedelta(days=1)
        for day in sorted(days):
            docs = [d for d in self._generated(day) if d.id not in changed] if first <= day <= last else []
            if day in extra:
                docs = sorted([*docs, *extra[day]], key=lambda d: (d.date_incoming, d.id))
            if suppliers is not None:
                docs = [d for d in docs if d.supplier_id in suppliers]
            if revision_from >= 0:
                docs = [d for d in docs if revisions.get(d.id, BASE_REVISION) > revision_from]
            if docs:
                yield docs

    def generated_light(self, day: date) -> list[LightInvoice]:
        """The documents generated for `day` (pristine, edits not applied) as `LightInvoice` tuples: from the day
        cache when an export already built them, else by the light generator (no cache: stock caches its sums)."""
        first, last = self.generated_span()
        if not first <= day <= last:
            return []
        with self._lock:
            docs = self._days.get(day)
        if docs is None:
            return generate_day(self.universe, self.seed, self.scale, day, light=True)
        return [(d.id, d.date_incoming, d.status, d.default_store_id,
                 [(it.store_id, it.product_id, int((it.amount * 1000).to_integral_value()),
                   int((it.sum * 100).to_integral_value()), it.is_additional_expense) for it in d.items])
                for d in docs]

    def changed_invoices(self) -> list[tuple[Invoice | None, Invoice | None]]:
        """(generated original or None, current version or None) of every document created, edited or removed
        through the control API: what the stock balances correct the generated data by."""
        with self._lock:
            changed = sorted(set(self._overrides) | self._removed)
            current = {key: self._overrides.get(key) for key in changed}
            days = {key: self._id_day.get(key) for key in changed}
        out: list[tuple[Invoice | None, Invoice | None]] = []
        for key in changed:
            day = days[key]
            original = next((d for d in self._generated(day) if d.id == key), None) if day is not None else None
            out.append((original, current[key]))
        return out

    def invoices(self, date_from: date, date_to: date) -> list[Invoice]:
        """Every document dated within [date_from, date_to] after all edits (DELETED status included,
        removed documents excluded), ordered by dateIncoming."""
        return [doc for docs in self.iter_invoice_days(date_from, date_to) for doc in docs]

    def invoice(self, invoice_id: str) -> Invoice | None:
        """The current version of one document, or None if unknown or removed.

        A generated document is known once its day has been generated (by an export or a truth read).
        """
        key = invoice_id.lower()
        with self._lock:
            if key in self._removed:
                return None
            if key in self._overrides:
                return self._overrides[key]
            day = self._id_day.get(key)
        if day is None:
            return None
        return next((d for d in self._generated(day) if d.id == key), None)

    def find_by_number(self, number: str, date_from: date, date_to: date) -> list[Invoice]:
        """Documents numbered `number` dated within the range (numbers repeat across years)."""
        found: list[Invoice] = []
        with self._lock:
            changed = set(self._overrides) | self._removed
            found.extend(d for d in self._overrides.values()
                         if d.document_number == number and date_from <= d.document_date <= date_to)
        first, last = self.generated_span()
        for year in range(date_from.year, date_to.year + 1):
            day = day_for_number(number, year, self.universe.day_capacity)
            if day is None or day.year != year or not (date_from <= day <= date_to and first <= day <= last):
                continue
            found.extend(d for d in self._generated(day) if d.document_number == number and d.id not in changed)
        return sorted(found, key=lambda d: (d.date_incoming, d.id))

    # ------------------------------------------------------------------ invoices (write)

    def _default_store(self) -> str:
        first_dept = self.universe.restaurants[0].id
        return self.universe.restaurant_stores[first_dept][0].id

    def complete_items(self, raw_items: Iterable[Any], default_store: str | None) -> list[InvoiceItem]:
        """Turn partial item dicts into full lines: catalogue defaults, computed money (HALF_UP)."""
        if isinstance(raw_items, str | bytes) or not isinstance(raw_items, Iterable):
            raise codec.CoercionError("items must be a list")
        catalogue = self.universe.products
        items: list[InvoiceItem] = []
        for index, raw in enumerate(raw_items):
            if isinstance(raw, InvoiceItem):
                items.append(raw)
                continue
            data = codec.coerce(raw, codec.ITEM_FIELDS, "invoice item")
            num = data.get("num", index + 1)
            product = self._products.get(data.get("product_id", "")) or catalogue[(num - 1) % len(catalogue)]
            amount = data.get("amount", Decimal("1.000"))
            price = data.get("price", Decimal(product.base_price_cents).scaleb(-2))
            vat = data.get("vat_percent", Decimal(product.vat_percent))
            line_sum = data.get("sum", (amount * price).quantize(_CENT, ROUND_HALF_UP))
            vat_sum = data.get("vat_sum", (line_sum * vat / (100 + vat)).quantize(_CENT, ROUND_HALF_UP))
            pwv = data.get("price_without_vat", (price * 100 / (100 + vat)).quantize(_CENT, ROUND_HALF_UP))
            items.append(InvoiceItem(
                num=num, product_id=data.get("product_id", product.id),
                product_article=data.get("product_article", product.article), code=data.get("code", product.code),
                amount=amount, actual_amount=data.get("actual_amount", amount),
                amount_unit=data.get("amount_unit", product.unit_id), price=price, price_without_vat=pwv,
                sum=line_sum, vat_percent=vat, vat_sum=vat_sum,
                discount_sum=data.get("discount_sum", Decimal("0.00")),
                store_id=data.get("store_id", default_store or self._default_store()),
                is_additional_expense=data.get("is_additional_expense", False)))
        return items

    def add_invoice(self, fields: Mapping[str, Any]) -> Invoice:
        """Create a document. Only `date_incoming` is required; the rest gets deterministic defaults."""
        data = codec.coerce(fields, codec.INVOICE_FIELDS, "invoice", extra=frozenset({"items"}))
        if "date_incoming" not in data:
            raise codec.CoercionError("date_incoming is required")
        with self._lock:
            invoice_id = data.get("id") or self._next_id("invoice")
            if invoice_id in self._overrides or invoice_id in self._id_day:
                raise codec.CoercionError(f"id {invoice_id} already exists")
            self._doc_counter += 1
            n = self._doc_counter
            when: datetime = data["date_incoming"]
            default_store = data.get("default_store_id", self._default_store())
            items = self.complete_items(data.get("items", [{}]), default_store)
            doc = Invoice(
                id=invoice_id, document_number=data.get("document_number", f"EMU-{n}"), date_incoming=when,
                incoming_date=data.get("incoming_date", when.date()),
                incoming_document_number=data.get("incoming_document_number"),
                invoice_number=data.get("invoice_number"),
                supplier_id=data.get("supplier_id", self.universe.external_suppliers[0].id),
                default_store_id=default_store, due_date=data.get("due_date"),
                status=data.get("status", "PROCESSED"), comment=data.get("comment"),
                conception_id=data.get("conception_id"), items=items)
            self._removed.discard(invoice_id)
            self._overrides[invoice_id] = doc
            self._bump(invoice_id)
            return doc

    def edit_invoice(self, invoice_id: str, changes: Mapping[str, Any]) -> Invoice:
        """Replace any fields of a document (`items` is a full replacement list of partial dicts)."""
        data = codec.coerce(changes, codec.INVOICE_FIELDS, "invoice", extra=frozenset({"items"}))
        current = self.invoice(invoice_id)
        if current is None:
            raise NotFound(invoice_id)
        if data.get("id", current.id) != current.id:
            raise codec.CoercionError("id cannot be changed")
        if "items" in data:
            data["items"] = self.complete_items(data["items"], data.get("default_store_id", current.default_store_id))
        with self._lock:
            doc = dataclasses.replace(current, **data)
            self._overrides[doc.id] = doc
            self._bump(doc.id)
            return doc

    def set_status(self, invoice_id: str, status: str) -> Invoice:
        return self.edit_invoice(invoice_id, {"status": status})

    def remove_invoice(self, invoice_id: str) -> bool:
        """Make a document vanish from iiko (as opposed to status DELETED, which is still exported)."""
        if self.invoice(invoice_id) is None:
            return False
        key = invoice_id.lower()
        with self._lock:
            self._overrides.pop(key, None)
            self._removed.add(key)
            self._bump(key)
        return True
