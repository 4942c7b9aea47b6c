"""Emulator configuration: the start-up settings and the data scales.

`EmulatorConfig` is frozen so a running server can swap its runtime copy atomically
(`dataclasses.replace`) when the control API changes a setting; the original stays
available for `/_emulator/reset`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date

MODULE_ID = "28008806"
"""The iikoAPI Server licence module id quoted in every licence error."""

MODES = ("normal", "starting", "module_blocked")
CONCURRENCY_FAULTS = (None, "http_500")
MISSING_DATES = ("error", "empty")


@dataclass(frozen=True)
class Scale:
    """How big the generated chain is. Ranges are inclusive (lo, hi)."""

    name: str
    restaurants: int
    jurpersons: int
    stores_per_restaurant: tuple[int, int]
    deleted_stores: int
    suppliers: int
    deleted_suppliers: int
    internal_suppliers: int
    employee_suppliers: int
    client_suppliers: int
    invoices_per_restaurant_day: tuple[int, int]
    lines_per_invoice: tuple[int, int]
    products: int
    # Nomenclature and staff (issue 14). Drawn from their own RNG streams, never from the dimensions' one,
    # so adding them changed none of the data above.
    product_groups: int = 0  # v2 product groups, deleted ones included
    extra_products: int = 0  # nomenclature items never bought (dishes, preparations, modifiers, ...)
    employees: int = 0  # GET employees, system accounts and staff-suppliers included
    # Sales, cash shifts and stock (issue 15), from RNG streams of their own as well.
    orders_per_restaurant_day: tuple[int, int] = (0, 0)  # orders per restaurant per business day
    lines_per_order: tuple[int, int] = (1, 4)
    menu_dishes: tuple[int, int] = (0, 0)  # dishes on one restaurant's menu; (0, 0): every dish


SCALES: dict[str, Scale] = {
    # Small enough to read a whole export by eye; used by most tests.
    "tiny": Scale("tiny", restaurants=2, jurpersons=1, stores_per_restaurant=(2, 2), deleted_stores=0,
                  suppliers=12, deleted_suppliers=1, internal_suppliers=2, employee_suppliers=1,
                  client_suppliers=1, invoices_per_restaurant_day=(1, 3), lines_per_invoice=(1, 5),
                  products=40, product_groups=12, extra_products=16, employees=10,
                  orders_per_restaurant_day=(3, 8), lines_per_order=(1, 3)),
    # The product brief's account: 31 restaurants, 658 suppliers.
    "seed": Scale("seed", restaurants=31, jurpersons=3, stores_per_restaurant=(2, 4), deleted_stores=3,
                  suppliers=658, deleted_suppliers=40, internal_suppliers=24, employee_suppliers=6,
                  client_suppliers=10, invoices_per_restaurant_day=(5, 20), lines_per_invoice=(1, 40),
                  products=1200, product_groups=150, extra_products=1300, employees=80,
                  orders_per_restaurant_day=(60, 200), lines_per_order=(1, 4), menu_dishes=(40, 100)),
    # Load tests: >= 1,000,000 invoice lines over 365 days.
    "large": Scale("large", restaurants=40, jurpersons=4, stores_per_restaurant=(2, 4), deleted_stores=4,
                   suppliers=900, deleted_suppliers=55, internal_suppliers=30, employee_suppliers=8,
                   client_suppliers=12, invoices_per_restaurant_day=(10, 20), lines_per_invoice=(1, 40),
                   products=2000, product_groups=320, extra_products=2000, employees=300,
                   orders_per_restaurant_day=(150, 350), lines_per_order=(1, 4), menu_dishes=(60, 150)),
}


def parse_version(version: str) -> tuple[int, ...]:
    """'8.9.5012.0' -> (8, 9, 5012, 0); non-numeric parts count as 0 so odd strings still compare."""
    parts: list[int] = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator needs to start. Fields after `invoice_history_days` are knobs for tests.

    Runtime-changeable knobs (via `/_emulator/config` or `EmulatorState.configure`) are listed in
    `RUNTIME_KEYS`; the rest (host, port, seed, scale, ...) need a new server or `/_emulator/reset`.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    login: str = "admin"
    password: str = field(default="resto#test", repr=False)
    seed: int = 1
    scale: str = "tiny"
    seats: int = 1
    token_ttl: float = 3600.0
    today: date | None = None
    version: str = "8.9.5012.0"
    edition: str = "chain"
    invoice_history_days: int = 400
    # --- server identity (get_server_info.jsp) ---
    server_name: str = "Эмулятор iiko"
    computer_name: str = "IIKO-EMU-01"
    server_state: str = "STARTED_SUCCESSFULLY"
    # --- behaviour switches ---
    mode: str = "normal"  # normal | starting | module_blocked
    permission_denied: tuple[str, ...] = ()  # endpoint names answering 403 "Permission denied"
    charset_in_content_type: bool = False  # "application/xml;charset=UTF-8" instead of "application/xml"
    date_offset: str | None = None  # e.g. "+03:00": appended to dateIncoming / dueDate
    gzip: bool = True  # compress when the request sends Accept-Encoding: gzip
    missing_auth_params_status: int = 400  # /auth without login or pass: 400 or 401
    logout_unknown_status: int = 200  # /logout with an unknown token: 200 or 401
    missing_dates: str = "error"  # export without from/to: "error" (400) or "empty"
    concurrency_fault: str | None = None  # "http_500": reject a 2nd in-flight request on one token
    licence_info_requires_key: bool = False
    stream_threshold: int = 64 * 1024  # bodies larger than this go out chunked
    cache_days: int = 64  # generated invoice days kept in memory (LRU)
    # Stock accounting starts with an opening balance at 00:00 of `today - stock_history_days` (never before the
    # generated span): balances count the movements from there on (see README, "Stock balances").
    stock_history_days: int = 14
    fault_seed: int | None = None  # RNG for probability faults; None -> derived from seed
    certfile: str | None = None  # serve HTTPS with this certificate (optional)
    keyfile: str | None = None
    # When set, `/_emulator/` answers 401 unless `Authorization: Bearer <control_token>` comes with the request:
    # a server reachable beyond loopback must not let anyone rewrite its data or switch its faults on.
    control_token: str | None = field(default=None, repr=False)
    # What a newer (or patched) iiko may do to the products list, for the pipeline's "unknown field" and
    # "renamed field" behaviour: fields added to every item, and documented fields renamed (to a new name) or
    # dropped (to null).
    product_fields_added: dict[str, object] = field(default_factory=dict)
    product_fields_renamed: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"unknown scale {self.scale!r}; choose one of {sorted(SCALES)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {MODES}")
        if self.missing_dates not in MISSING_DATES:
            raise ValueError(f"missing_dates must be one of {MISSING_DATES}")
        if self.concurrency_fault not in CONCURRENCY_FAULTS:
            raise ValueError(f"concurrency_fault must be one of {CONCURRENCY_FAULTS}")
        if self.seats < 0:
            raise ValueError("seats must be >= 0")
        if self.token_ttl <= 0:
            raise ValueError("token_ttl must be > 0")
        if isinstance(self.stock_history_days, bool) or not isinstance(self.stock_history_days, int) \
                or self.stock_history_days < 0:
            raise ValueError("stock_history_days must be a whole number of days >= 0")
        if not isinstance(self.permission_denied, tuple):
            object.__setattr__(self, "permission_denied", tuple(self.permission_denied))
        if isinstance(self.today, str):
            object.__setattr__(self, "today", date.fromisoformat(self.today))

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return parse_version(self.version)

    def effective_today(self) -> date:
        """`today` if pinned, else the real date (so a long-running CLI server rolls over midnight)."""
        return self.today if self.today is not None else date.today()

    def public_dict(self) -> dict[str, object]:
        """The settings as JSON-able data, without the password."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            if f.name in ("password", "control_token"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        out["today_effective"] = self.effective_today().isoformat()
        return out


RUNTIME_KEYS = frozenset({
    "seats", "token_ttl", "mode", "permission_denied", "version", "edition", "charset_in_content_type",
    "date_offset", "gzip", "missing_auth_params_status", "logout_unknown_status", "missing_dates",
    "concurrency_fault", "licence_info_requires_key", "today", "server_name", "computer_name",
    "server_state", "stream_threshold", "invoice_history_days", "product_fields_added", "product_fields_renamed",
    "stock_history_days",
})
"""Settings that `/_emulator/config` may change on a running server."""
