"""XML and JSON rendering of the truth, shaped like a real iiko Server (JAXB) answer.

Rendering is string building, not a DOM: a 7-day export at scale `large` is tens of MB and must start
streaming at once. Text is escaped with `xml.sax.saxutils.escape` (`&`, `<`, `>`; quotes stay raw in
text nodes, as JAXB writes them).

Quirks reproduced on purpose (see docs/iiko-server-api.md §4 and §7):
* element order differs between records (a fixed set of permutations picked by the record's id, so the
  output is deterministic yet never in XSD order for everyone);
* `None` optional values are absent, empty strings are self-closing tags (`<code/>`, `<invoice/>`);
* decimals have 9 fractional digits; booleans are lowercase;
* `incomingDate` is a date on 7.6.1+ and a date-time before; `dateIncoming`/`dueDate` carry the
  configured UTC offset, if any.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from xml.sax.saxutils import escape

from .generator import new_id, rng_for
from .models import (
    CorporateItem,
    Employee,
    Invoice,
    InvoiceItem,
    NomenclatureItem,
    ProductGroup,
    Reference,
    Supplier,
)
from .sales import CashShift, java_datetime
from .stock import number

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


@dataclass(frozen=True)
class RenderOptions:
    """Per-request rendering switches taken from the runtime config."""

    version: tuple[int, ...] = (8, 9, 5012, 0)
    date_offset: str | None = None


def _perms(n_keys: int, count: int, salt: str) -> list[tuple[int, ...]]:
    rng = random.Random(salt)
    perms: list[tuple[int, ...]] = []
    for _ in range(count):
        order = list(range(n_keys))
        rng.shuffle(order)
        perms.append(tuple(order))
    return perms


def _h(record_id: str) -> int:
    try:
        return int(record_id[:8], 16)
    except ValueError:
        return sum(map(ord, record_id))


def _el(indent: str, tag: str, text: str | None) -> str:
    """One leaf element: absent for None, self-closing for ''. `text` must already be escaped."""
    if text is None:
        return ""
    if text == "":
        return f"{indent}<{tag}/>\n"
    return f"{indent}<{tag}>{text}</{tag}>\n"


def _esc(text: str | None) -> str | None:
    return None if text is None else escape(text)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _dt(value: datetime | None, offset: str | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat(timespec="seconds")
    return text + offset if offset else text


# ------------------------------------------------------------------ server info / licence

def server_info(server_name: str, edition: str, version: str, computer_name: str, server_state: str) -> str:
    return (f"{XML_DECLARATION}<r>\n    <serverName>{escape(server_name)}</serverName>\n"
            f"    <edition>{escape(edition)}</edition>\n    <version>{escape(version)}</version>\n"
            f"    <computerName>{escape(computer_name)}</computerName>\n"
            f"    <serverState>{escape(server_state)}</serverState>\n</r>\n")


def licence_info(module_id: str, seats: int, used: int) -> str:
    """The real format is undocumented; this one just carries the counts."""
    return (f"{XML_DECLARATION}<licenceInfo>\n    <moduleId>{module_id}</moduleId>\n"
            f"    <moduleName>iikoAPI Server</moduleName>\n    <seats>{seats}</seats>\n"
            f"    <usedSeats>{used}</usedSeats>\n    <freeSeats>{max(0, seats - used)}</freeSeats>\n"
            "</licenceInfo>\n")


def server_type(edition: str) -> str:
    kind = "CHAIN" if edition.lower() == "chain" else "STANDALONE_RMS"
    return f"{XML_DECLARATION}<serverType>{kind}</serverType>\n"


# ------------------------------------------------------------------ corporate items

_CORP_PERMS = _perms(7, 6, "corporateItemDto")


def _jur_props(item: CorporateItem) -> str:
    rng = random.Random(item.id)
    inn = item.taxpayer_id or ""
    kpp = (inn[:4] or "7701") + "01001"
    i3, i4, i5 = " " * 8, " " * 12, " " * 16
    house = rng.randint(1, 120)
    return (f"{i3}<jurPersonAdditionalPropertiesDto>\n"
            f"{i4}<taxpayerId>{escape(inn)}</taxpayerId>\n"
            f"{i4}<accountingReasonCode>{kpp}</accountingReasonCode>\n"
            f"{i4}<businessClassificationCode>{rng.randint(10000000, 99999999)}</businessClassificationCode>\n"
            f"{i4}<address>г. Москва, ул. Тверская, д. {house}</address>\n"
            f"{i4}<bik>0445252{rng.randint(10, 99)}</bik>\n"
            f"{i4}<bank>ПАО «Сбербанк» &amp; Ко</bank>\n"
            f"{i4}<legalAddressDto>\n{i5}<zipCode>125009</zipCode>\n{i5}<city>Москва</city>\n"
            f"{i5}<street>Тверская</street>\n{i5}<house>{house}</house>\n{i5}<country>Россия</country>\n"
            f"{i4}</legalAddressDto>\n"
            f"{i4}<officialEmployees>\n"
            f"{i5}<i><role>LEADER</role><name>Иванов И. И.</name></i>\n"
            f"{i5}<i><role>ACCOUNTANT</role><name>Петрова А. С.</name></i>\n"
            f"{i4}</officialEmployees>\n"
            f"{i3}</jurPersonAdditionalPropertiesDto>\n")


def corporate_item(item: CorporateItem) -> str:
    ind = " " * 8
    parts = (
        _el(ind, "id", item.id),
        _el(ind, "parentId", item.parent_id),
        _el(ind, "code", _esc(item.code)),
        _el(ind, "name", escape(item.name)),
        _el(ind, "type", item.type),
        _el(ind, "taxpayerIdNumber", _esc(item.taxpayer_id)),
        _jur_props(item) if item.type == "JURPERSON" else "",
    )
    perm = _CORP_PERMS[_h(item.id) % len(_CORP_PERMS)]
    return "    <corporateItemDto>\n" + "".join(parts[i] for i in perm) + "    </corporateItemDto>\n"


def corporate_items(items: Iterable[CorporateItem]) -> str:
    body = "".join(corporate_item(i) for i in items)
    if not body:
        return f"{XML_DECLARATION}<corporateItemDtoes/>\n"
    return f"{XML_DECLARATION}<corporateItemDtoes>\n{body}</corporateItemDtoes>\n"


# ------------------------------------------------------------------ suppliers

_SUPPLIER_PERMS = _perms(13, 6, "employee")


def supplier(s: Supplier) -> str:
    ind = " " * 8
    h = _h(s.id)
    phone = f"+7 (9{h % 100:02d}) {h % 1000:03d}-{h % 97:02d}-{h % 89:02d}" if h % 3 == 0 else None
    represents = _bool(s.represents_store) if s.represents_store or h % 2 == 0 else None
    person = s.is_employee and " " in s.name and not s.name.startswith(("ООО", "АО", "ИП"))
    parts = (
        _el(ind, "id", s.id),
        _el(ind, "code", _esc(s.code)),
        _el(ind, "name", escape(s.name)),
        _el(ind, "taxpayerIdNumber", _esc(s.taxpayer_id)),
        _el(ind, "note", _esc(s.note)),
        _el(ind, "deleted", _bool(s.deleted)),
        _el(ind, "supplier", _bool(s.is_supplier)),
        _el(ind, "employee", _bool(s.is_employee)),
        _el(ind, "client", _bool(s.is_client)),
        _el(ind, "representsStore", represents),
        _el(ind, "representedStoreId", s.represented_store_id if s.represents_store else None),
        _el(ind, "phone", phone),
        _el(ind, "lastName", escape(s.name.split(" ")[0])) if person else "",
    )
    perm = _SUPPLIER_PERMS[h % len(_SUPPLIER_PERMS)]
    return "    <employee>\n" + "".join(parts[i] for i in perm) + "    </employee>\n"


def suppliers(items: Iterable[Supplier]) -> str:
    body = "".join(supplier(s) for s in items)
    if not body:
        return f"{XML_DECLARATION}<employees/>\n"
    return f"{XML_DECLARATION}<employees>\n{body}</employees>\n"


# ------------------------------------------------------------------ invoices

_DOC_PERMS = _perms(15, 8, "document")
_ITEM_PERMS = _perms(15, 6, "item")
_I2, _I4 = " " * 8, " " * 16


def invoice_item(it: InvoiceItem, h: int) -> str:
    parts = (
        f"{_I4}<num>{it.num}</num>\n",
        f"{_I4}<product>{it.product_id}</product>\n",
        _el(_I4, "productArticle", _esc(it.product_article)),
        _el(_I4, "code", _esc(it.code)),
        f"{_I4}<amount>{it.amount:.9f}</amount>\n",
        f"{_I4}<actualAmount>{it.actual_amount:.9f}</actualAmount>\n",
        f"{_I4}<amountUnit>{it.amount_unit}</amountUnit>\n",
        f"{_I4}<price>{it.price:.9f}</price>\n",
        f"{_I4}<priceWithoutVat>{it.price_without_vat:.9f}</priceWithoutVat>\n",
        f"{_I4}<sum>{it.sum:.9f}</sum>\n",
        f"{_I4}<vatPercent>{it.vat_percent:.9f}</vatPercent>\n",
        f"{_I4}<vatSum>{it.vat_sum:.9f}</vatSum>\n",
        f"{_I4}<discountSum>{it.discount_sum:.9f}</discountSum>\n",
        _el(_I4, "store", it.store_id),
        f"{_I4}<isAdditionalExpense>{'true' if it.is_additional_expense else 'false'}</isAdditionalExpense>\n",
    )
    perm = _ITEM_PERMS[(h + it.num) % len(_ITEM_PERMS)]
    return "            <item>\n" + "".join([parts[i] for i in perm]) + "            </item>\n"


def invoice_document(doc: Invoice, opts: RenderOptions) -> str:
    h = _h(doc.id)
    if doc.incoming_date is None:
        incoming_date = None
    elif opts.version >= (7, 6, 1):
        incoming_date = doc.incoming_date.isoformat()
    else:
        incoming_date = f"{doc.incoming_date.isoformat()}T00:00:00"
    if doc.items:
        items = (f"{_I2}<items>\n" + "".join([invoice_item(it, h) for it in doc.items]) + f"{_I2}</items>\n")
    else:
        items = f"{_I2}<items/>\n"
    parts = (
        f"{_I2}<id>{doc.id}</id>\n",
        _el(_I2, "documentNumber", escape(doc.document_number)),
        _el(_I2, "dateIncoming", _dt(doc.date_incoming, opts.date_offset)),
        _el(_I2, "incomingDate", incoming_date),
        _el(_I2, "incomingDocumentNumber", _esc(doc.incoming_document_number)),
        _el(_I2, "invoice", _esc(doc.invoice_number)),
        _el(_I2, "supplier", doc.supplier_id),
        _el(_I2, "defaultStore", doc.default_store_id),
        _el(_I2, "dueDate", _dt(doc.due_date, opts.date_offset)),
        _el(_I2, "status", doc.status),
        _el(_I2, "comment", _esc(doc.comment)),
        _el(_I2, "conception", doc.conception_id),
        _el(_I2, "useDefaultDocumentTime", "false" if h & 1 else None),
        _el(_I2, "distributionAlgorithm", "DISTRIBUTION_NOT_SPECIFIED" if h & 2 and opts.version >= (6,) else None),
        items,
    )
    perm = _DOC_PERMS[h % len(_DOC_PERMS)]
    return "    <document>\n" + "".join([parts[i] for i in perm]) + "    </document>\n"


def invoice_export(days: Iterable[list[Invoice]], opts: RenderOptions) -> Iterator[str]:
    """Stream an `incomingInvoiceDtoes` answer one day at a time (`<incomingInvoiceDtoes/>` if empty)."""
    opened = False
    for docs in days:
        chunk = "".join([invoice_document(d, opts) for d in docs])
        if not chunk:
            continue
        if not opened:
            opened = True
            yield f"{XML_DECLARATION}<incomingInvoiceDtoes>\n"
        yield chunk
    yield "</incomingInvoiceDtoes>\n" if opened else f"{XML_DECLARATION}<incomingInvoiceDtoes/>\n"


# ------------------------------------------------------------------ JSON (v2)

_PREDEFINED_ACCOUNTS = (
    ("1.10", "Касса", "CASH", False), ("2.10", "Расчеты с поставщиками", "ACCOUNTS_PAYABLE", False),
    ("4.01", "Выручка", "INCOME", False), ("5.01", "Себестоимость", "COST_OF_GOODS_SOLD", False),
    ("1.11", "Старая касса", "CASH", True),
)


def accounts_list(seed: int, scale: str, stores: Iterable[CorporateItem], include_deleted: bool) -> bytes:
    """`v2/entities/accounts/list`: predefined accounts plus every store as INVENTORY_ASSETS."""
    rng = rng_for(seed, scale, "accounts")
    out: list[dict[str, object]] = []
    for code, name, kind, deleted in _PREDEFINED_ACCOUNTS:
        out.append({"id": new_id(rng), "rootType": "Account", "deleted": deleted, "code": code, "name": name,
                    "type": kind, "system": True, "customTransactionsAllowed": kind != "CASH",
                    "accountParentId": None, "parentCorporateId": None})
    for store in stores:
        out.append({"id": store.id, "rootType": "Account", "deleted": store.deleted, "code": store.code or "",
                    "name": store.name, "type": "INVENTORY_ASSETS", "system": False,
                    "customTransactionsAllowed": False, "accountParentId": None,
                    "parentCorporateId": store.parent_id})
    if not include_deleted:
        out = [a for a in out if not a["deleted"]]
    return json.dumps(out, ensure_ascii=False).encode("utf-8")


def entities_list(refs: Iterable[Reference], include_deleted: bool) -> bytes:
    """`v2/entities/list?rootType=...` for the reference types the emulator knows."""
    out: list[dict[str, object]] = []
    for r in refs:
        if include_deleted or not r.deleted:
            rec: dict[str, object] = {"id": r.id, "rootType": r.root_type, "deleted": r.deleted, "code": r.code,
                                      "name": r.name}
            if r.root_type == "TaxCategory":
                rec["vatPercent"] = r.vat_percent
            out.append(rec)
    return json.dumps(out, ensure_ascii=False).encode("utf-8")


# ------------------------------------------------------------------ nomenclature (v2 JSON)

def _num(value: Decimal) -> int | float:
    """A JSON number: integral values as integers (`0`, `350`), the rest as floats (`0.25`)."""
    return int(value) if value == value.to_integral_value() else float(value)


def _rgb(colour: tuple[int, int, int]) -> dict[str, int]:
    return {"red": colour[0], "green": colour[1], "blue": colour[2]}


def nomenclature_item(p: NomenclatureItem, version: tuple[int, ...]) -> dict[str, object]:
    """One product as `v2/entities/products/list` writes it. `containers` exists from 6.2.4 and
    `barcodes` from 8.7.1; on older versions the keys are absent, not empty. The menu flag is spelled
    `defaultIncludedInMenu`, as the docs' example JSON has it (their field table says
    `defaultIncludeInMenu`)."""
    rec: dict[str, object] = {
        "id": p.id, "deleted": p.deleted, "name": p.name, "description": p.description, "num": p.num,
        "code": p.code, "parent": p.parent_id, "modifiers": [], "taxCategory": p.tax_category_id,
        "category": p.category_id, "accountingCategory": p.accounting_category_id, "color": _rgb(p.color),
        "fontColor": _rgb(p.font_color), "frontFontSize": p.front_font_size, "frontImageId": None,
        "position": None, "modifierSchemaId": None, "mainUnit": p.main_unit_id, "type": p.type,
        "unitWeight": _num(p.unit_weight), "unitCapacity": _num(p.unit_capacity),
        "notInStoreMovement": p.not_in_store_movement, "defaultSalePrice": _num(p.default_sale_price),
        "defaultIncludedInMenu": p.default_included_in_menu,
    }
    if version >= (6, 2, 4):
        rec["containers"] = [{"id": c.id, "num": c.num, "name": c.name, "count": _num(c.count),
                              "minContainerWeight": 0, "maxContainerWeight": 0,
                              "containerWeight": _num(c.container_weight),
                              "fullContainerWeight": _num(c.container_weight + c.count),
                              "backwardRecalculation": False, "deleted": c.deleted, "useInFront": False}
                             for c in p.containers]
    if version >= (8, 7, 1):
        rec["barcodes"] = [{"barcode": b, "containerName": None} for b in p.barcodes]
    return rec


def nomenclature_items(items: Iterable[NomenclatureItem], version: tuple[int, ...],
                       added: dict[str, object] | None = None, renamed: dict[str, str | None] | None = None) -> bytes:
    """The list; `added` fields go on every item, `renamed` fields move to their new name (None: dropped)."""
    out = []
    for p in items:
        rec = nomenclature_item(p, version)
        for old, new in (renamed or {}).items():
            if old in rec:
                value = rec.pop(old)
                if new:
                    rec[new] = value
        out.append({**rec, **(added or {})})
    return json.dumps(out, ensure_ascii=False).encode("utf-8")


def product_group(g: ProductGroup) -> dict[str, object]:
    visibility = None if g.visibility_departments is None else {
        "departments": list(g.visibility_departments), "excluding": g.visibility_excluding}
    return {"id": g.id, "deleted": g.deleted, "name": g.name, "description": g.description, "num": g.num,
            "code": g.code, "parent": g.parent_id, "modifiers": [], "taxCategory": None, "category": None,
            "accountingCategory": None, "color": _rgb((255, 255, 255)), "fontColor": _rgb((0, 0, 0)),
            "frontFontSize": 0, "frontImageId": None, "position": None, "modifierSchemaId": None,
            "visibilityFilter": visibility}


def product_groups(groups: Iterable[ProductGroup]) -> bytes:
    return json.dumps([product_group(g) for g in groups], ensure_ascii=False).encode("utf-8")


# ------------------------------------------------------------------ employees (XML, the suppliers' schema)

_EMPLOYEE_PERMS = _perms(24, 6, "staff")


def _day(value: date | None, offset: str | None) -> str | None:
    """Dates of the employee card are JAXB date-times at midnight (plus the configured offset)."""
    if value is None:
        return None
    text = f"{value.isoformat()}T00:00:00"
    return text + offset if offset else text


def employee(e: Employee, opts: RenderOptions) -> str:
    ind = " " * 8
    parts = (
        _el(ind, "id", e.id),
        _el(ind, "code", _esc(e.code)),
        _el(ind, "name", escape(e.name)),
        _el(ind, "login", _esc(e.login)),
        _el(ind, "mainRoleId", e.main_role_id),
        _el(ind, "mainRoleCode", _esc(e.main_role_code)),
        "".join(_el(ind, "roleCodes", escape(c)) for c in e.role_codes),
        _el(ind, "phone", _esc(e.phone)),
        _el(ind, "cellPhone", _esc(e.cell_phone)),
        _el(ind, "firstName", _esc(e.first_name)),
        _el(ind, "middleName", _esc(e.middle_name)),
        _el(ind, "lastName", _esc(e.last_name)),
        _el(ind, "birthday", _day(e.birthday, opts.date_offset)),
        _el(ind, "email", _esc(e.email)),
        _el(ind, "address", _esc(e.address)),
        _el(ind, "hireDate", _day(e.hire_date, opts.date_offset)),
        _el(ind, "fireDate", _day(e.fire_date, opts.date_offset)),
        _el(ind, "note", _esc(e.note)),
        _el(ind, "cardNumber", _esc(e.card_number)),
        _el(ind, "taxpayerIdNumber", _esc(e.taxpayer_id)),
        "".join(_el(ind, "departmentCodes", escape(c)) for c in e.department_codes),
        _el(ind, "deleted", _bool(e.deleted)),
        _el(ind, "supplier", _bool(e.is_supplier)) + _el(ind, "employee", _bool(e.is_employee)),
        _el(ind, "client", _bool(e.is_client)),
    )
    perm = _EMPLOYEE_PERMS[_h(e.id) % len(_EMPLOYEE_PERMS)]
    return "    <employee>\n" + "".join(parts[i] for i in perm) + "    </employee>\n"


def employees(items: Iterable[Employee], opts: RenderOptions) -> str:
    body = "".join(employee(e, opts) for e in items)
    if not body:
        return f"{XML_DECLARATION}<employees/>\n"
    return f"{XML_DECLARATION}<employees>\n{body}</employees>\n"




# ------------------------------------------------------------------ cash shifts (v2 JSON, issue 15)

def cash_shift(s: CashShift) -> dict[str, object]:
    """One `v2/cashshifts/list` record, keys in the docs' order (`salesCredit` and `sessionStatus` spelled as the
    JSON example has them; the docs' field table misspells both). Money as JSON numbers, dates iiko-style."""
    def money(kopecks: int) -> int | float:
        return number(kopecks, 2)

    return {
        "id": s.id, "sessionNumber": s.session_number, "fiscalNumber": s.fiscal_number,
        "cashRegNumber": s.cash_reg_number, "cashRegSerial": s.cash_reg_serial,
        "openDate": java_datetime(s.open_date), "closeDate": java_datetime(s.close_date) if s.close_date else None,
        "acceptDate": java_datetime(s.accept_date) if s.accept_date else None, "managerId": s.manager_id,
        "responsibleUser": s.responsible_user, "sessionStartCash": money(s.session_start_cash),
        "payOrders": money(s.pay_orders), "sumWriteoffOrders": money(s.sum_writeoff_orders),
        "salesCash": money(s.sales_cash), "salesCredit": money(s.sales_credit), "salesCard": money(s.sales_card),
        "payIn": money(s.pay_in), "payOut": money(s.pay_out), "payIncome": money(s.pay_income),
        "cashRemain": money(s.cash_remain), "cashDiff": money(s.cash_diff), "sessionStatus": s.session_status,
        "conception": s.conception, "pointOfSale": s.point_of_sale,
    }


def cash_shifts(shifts: Iterable[CashShift]) -> bytes:
    return json.dumps([cash_shift(s) for s in shifts], ensure_ascii=False).encode("utf-8")
