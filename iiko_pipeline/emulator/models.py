"""The emulator's truth as typed records.

These are what tests compare a pipeline's warehouse against, so they use the types a checker wants
(`Decimal`, `date`, `datetime`, lowercase id strings) rather than the XML's strings. They are frozen:
a cached generated day can be handed out to many readers, and control-API edits replace records
(`dataclasses.replace`) instead of mutating them.

Empty versus absent: a `None` optional value is rendered as an absent element; an empty string `""` is
rendered as a self-closing tag (`<code/>`, `<invoice/>`), exactly the two cases a client must treat alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

INVOICE_STATUSES = ("NEW", "PROCESSED", "DELETED")
CORPORATE_TYPES = ("CORPORATION", "JURPERSON", "ORGDEVELOPMENT", "DEPARTMENT", "MANUFACTURE",
                   "CENTRALSTORE", "CENTRALOFFICE", "SALEPOINT", "STORE")


@dataclass(frozen=True, slots=True)
class CorporateItem:
    """One `corporateItemDto`. `deleted` is not rendered in XML (iiko has no such element there); it
    only shows in `v2/entities/accounts/list` for stores."""

    id: str
    parent_id: str | None
    code: str | None
    name: str
    type: str
    taxpayer_id: str | None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Supplier:
    """One `employees/employee` record with `<supplier>true</supplier>` (usually)."""

    id: str
    code: str | None
    name: str
    deleted: bool
    is_supplier: bool
    is_employee: bool
    is_client: bool
    represents_store: bool
    represented_store_id: str | None
    taxpayer_id: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class InvoiceItem:
    """One `items/item` line.

    Invariants of generated lines (VAT included in the price, `vatAccounting = VAT_INCLUDED_IN_PRICE`),
    all with ROUND_HALF_UP to 2 places; generated values never sit on a rounding tie, so HALF_EVEN
    (Python's `round`) gives the same result:

    * ``sum == (amount * price).quantize(Decimal("0.01"))``
    * ``vat_sum == (sum * vat_percent / (100 + vat_percent)).quantize(Decimal("0.01"))``
    * ``price_without_vat == (price * 100 / (100 + vat_percent)).quantize(Decimal("0.01"))``
    * ``discount_sum == 0``

    Lines created or patched through the control API get the same computation for every money field
    the caller leaves out; values the caller sets explicitly are kept as given.
    """

    num: int
    product_id: str
    product_article: str | None
    code: str | None
    amount: Decimal
    actual_amount: Decimal
    amount_unit: str
    price: Decimal
    price_without_vat: Decimal
    sum: Decimal
    vat_percent: Decimal
    vat_sum: Decimal
    discount_sum: Decimal
    store_id: str | None
    is_additional_expense: bool


@dataclass(frozen=True, slots=True)
class Invoice:
    """One `incomingInvoiceDtoes/document`. The document date is `date_incoming.date()`."""

    id: str
    document_number: str
    date_incoming: datetime
    incoming_date: date | None
    incoming_document_number: str | None
    invoice_number: str | None
    supplier_id: str
    default_store_id: str | None
    due_date: datetime | None
    status: str
    comment: str | None
    conception_id: str | None
    items: list[InvoiceItem]

    @property
    def document_date(self) -> date:
        return self.date_incoming.date()


@dataclass(frozen=True, slots=True)
class Product:
    """A catalogue entry the generator draws invoice lines from (not served as XML)."""

    id: str
    article: str
    code: str
    name: str
    unit_id: str
    unit_kind: str  # "kg" | "l" | "pcs" | "svc"
    vat_percent: int
    base_price_cents: int


@dataclass(frozen=True, slots=True)
class Reference:
    """A `v2/entities/list` entry (MeasureUnit, Conception, AccountingCategory, TaxCategory).

    `vat_percent` is only rendered for TaxCategory (as `vatPercent`)."""

    id: str
    root_type: str
    code: str
    name: str
    deleted: bool = False
    vat_percent: int | None = None


PRODUCT_TYPES = ("GOODS", "DISH", "PREPARED", "SERVICE", "MODIFIER", "OUTER", "RATE")


@dataclass(frozen=True, slots=True)
class ProductGroup:
    """One `v2/entities/products/group/list` entry. `visibility_departments` None renders
    `visibilityFilter: null`; otherwise `{"departments": [...], "excluding": visibility_excluding}`."""

    id: str
    name: str
    num: str
    code: str | None
    parent_id: str | None
    description: str | None = None
    deleted: bool = False
    visibility_departments: tuple[str, ...] | None = None
    visibility_excluding: bool = True


@dataclass(frozen=True, slots=True)
class Container:
    """A packaging unit of a product (`containers[]`, 6.2.4+); `count` is in the product's main unit."""

    id: str
    num: str
    name: str
    count: Decimal
    container_weight: Decimal = Decimal("0")
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class NomenclatureItem:
    """One `v2/entities/products/list` entry: the served view of a product (nomenclature element).

    The invoice catalogue (`Product`) and the delivery line are all here under the same ids, so every
    generated invoice line resolves; extra DISH/PREPARED/MODIFIER/... items are never bought.
    Colours are (red, green, blue)."""

    id: str
    name: str
    num: str
    code: str | None
    type: str
    main_unit_id: str
    parent_id: str | None
    deleted: bool = False
    description: str | None = None
    category_id: str | None = None
    accounting_category_id: str | None = None
    tax_category_id: str | None = None
    default_sale_price: Decimal = Decimal("0")
    unit_weight: Decimal = Decimal("1")
    unit_capacity: Decimal = Decimal("0")
    not_in_store_movement: bool = False
    containers: tuple[Container, ...] = ()
    barcodes: tuple[str, ...] = ()
    color: tuple[int, int, int] = (255, 255, 255)
    font_color: tuple[int, int, int] = (0, 0, 0)
    front_font_size: int = 0
    default_included_in_menu: bool = False


@dataclass(frozen=True, slots=True)
class Employee:
    """One `employees/employee` record of `GET /resto/api/employees` (the suppliers' schema).

    Contact and card fields (`phone`, `cell_phone`, `email`, `address`, `card_number`, `birthday`) are
    personal data a real server sends; they are here so a consumer can prove it leaves them out."""

    id: str
    code: str | None
    name: str
    first_name: str | None
    middle_name: str | None
    last_name: str | None
    login: str | None
    main_role_id: str | None
    main_role_code: str | None
    role_codes: tuple[str, ...] = ()
    department_codes: tuple[str, ...] = ()
    hire_date: date | None = None
    fire_date: date | None = None
    deleted: bool = False
    is_supplier: bool = False
    is_employee: bool = True
    is_client: bool = False
    phone: str | None = None
    cell_phone: str | None = None
    email: str | None = None
    address: str | None = None
    card_number: str | None = None
    birthday: date | None = None
    taxpayer_id: str | None = None
    note: str | None = None
