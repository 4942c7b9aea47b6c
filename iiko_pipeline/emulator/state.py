"""`EmulatorState`: everything a running emulator knows, and the Python twin of the control API.

In-process tests call these methods directly (`emu.state.edit_invoice(...)`); the JSON control API
(`control.py`) is a thin wrapper over the same methods, so both paths behave identically.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

from .auth import SessionManager
from .config import RUNTIME_KEYS, EmulatorConfig
from .dataset import Dataset
from .faults import FaultRegistry, FaultRule
from .models import CorporateItem, Employee, Invoice, NomenclatureItem, ProductGroup, Supplier
from .render import RenderOptions
from .requestlog import RequestLog
from .sales import late_until

_OFFSET = re.compile(r"^(Z|[+-]\d{2}:\d{2})$")


def _merge(fields: Mapping[str, Any] | None, kw: Mapping[str, Any]) -> dict[str, Any]:
    return {**(fields or {}), **kw}


class EmulatorState:
    """Truth (`dataset`), `log`, `faults`, `sessions` and the runtime `config` of one emulator."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.base_config = config
        self.config = config
        self.stop_event = threading.Event()  # set on shutdown: wakes `slow` faults
        self.log = RequestLog()
        self.sessions = SessionManager()
        self.faults = FaultRegistry(config.fault_seed if config.fault_seed is not None else config.seed)
        self.log.active_tokens_fn = lambda: self.sessions.live_count(self.config.token_ttl)
        self.dataset = self._new_dataset()

    def _new_dataset(self) -> Dataset:
        return Dataset(self.config.seed, self.config.scale, today=lambda: self.config.effective_today(),
                       history_days=lambda: self.config.invoice_history_days, cache_days=self.config.cache_days,
                       stock_days=lambda: self.config.stock_history_days)

    # ------------------------------------------------------------------ lifecycle

    def reset(self, seed: int | None = None, scale: str | None = None) -> None:
        """Back to the start-up state: regenerate data from the seed, drop edits, faults, tokens, log.

        `seed`/`scale` switch to another data set. Objects are cleared in place, except the dataset,
        which is rebuilt (re-read `state.dataset` after a reset).
        """
        changes: dict[str, Any] = {}
        if seed is not None:
            changes["seed"] = int(seed)
        if scale is not None:
            changes["scale"] = scale
        if changes:
            self.base_config = dataclasses.replace(self.base_config, **changes)
        self.config = self.base_config
        self.faults.clear()
        self.sessions.clear()
        self.log.clear()
        self.dataset = self._new_dataset()

    def restart(self) -> None:
        """Invalidate every token, as an iiko server restart does."""
        self.sessions.restart()

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change runtime settings (see `config.RUNTIME_KEYS`); returns the new config."""
        unknown = set(changes) - RUNTIME_KEYS
        if unknown:
            raise ValueError(f"not configurable at runtime: {sorted(unknown)}")
        if "today" in changes and isinstance(changes["today"], str):
            changes["today"] = date.fromisoformat(changes["today"])
        if "permission_denied" in changes:
            value = changes["permission_denied"]
            changes["permission_denied"] = tuple([value] if isinstance(value, str) else value or ())
        offset = changes.get("date_offset")
        if offset is not None and not _OFFSET.match(str(offset)):
            raise ValueError(f"date_offset must look like +03:00, not {offset!r}")
        if "seats" in changes:
            changes["seats"] = int(changes["seats"])
        if "token_ttl" in changes:
            changes["token_ttl"] = float(changes["token_ttl"])
        if "stock_history_days" in changes:
            value = changes["stock_history_days"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"stock_history_days must be a whole number of days >= 0, not {value!r}")
        self.config = dataclasses.replace(self.config, **changes)
        return self.config

    # ------------------------------------------------------------------ rendering helpers

    def render_options(self) -> RenderOptions:
        return RenderOptions(version=self.config.version_tuple, date_offset=self.config.date_offset)

    def xml_content_type(self) -> str:
        return "application/xml;charset=UTF-8" if self.config.charset_in_content_type else "application/xml"

    # ------------------------------------------------------------------ faults

    def add_fault(self, endpoint: str, kind: str, count: int | None = None, probability: float | None = None,
                  delay: float | None = None, after: int = 0) -> FaultRule:
        """Inject `kind` on `endpoint` (an endpoint name like `suppliers`, or `*`), after `after` good answers."""
        return self.faults.add(endpoint, kind, count=count, probability=probability, delay=delay, after=after)

    def clear_faults(self) -> None:
        self.faults.clear()

    # ------------------------------------------------------------------ invoices

    def add_invoice(self, fields: Mapping[str, Any] | None = None, **kw: Any) -> Invoice:
        """Create a document; only `date_incoming` is required."""
        return self.dataset.add_invoice(_merge(fields, kw))

    def edit_invoice(self, invoice_id: str, changes: Mapping[str, Any] | None = None, **kw: Any) -> Invoice:
        """Change any fields, e.g. `status`, `date_incoming` (back-date), `comment`, `items`."""
        return self.dataset.edit_invoice(invoice_id, _merge(changes, kw))

    def set_status(self, invoice_id: str, status: str) -> Invoice:
        return self.dataset.set_status(invoice_id, status)

    def remove_invoice(self, invoice_id: str) -> bool:
        """The document vanishes from iiko (unlike status DELETED, which is still exported)."""
        return self.dataset.remove_invoice(invoice_id)

    # ------------------------------------------------------------------ dimensions

    def add_supplier(self, fields: Mapping[str, Any] | None = None, **kw: Any) -> Supplier:
        return self.dataset.add_supplier(_merge(fields, kw))

    def edit_supplier(self, supplier_id: str, changes: Mapping[str, Any] | None = None, **kw: Any) -> Supplier:
        return self.dataset.edit_supplier(supplier_id, _merge(changes, kw))

    def remove_supplier(self, supplier_id: str) -> bool:
        return self.dataset.remove_supplier(supplier_id)

    def add_department(self, fields: Mapping[str, Any] | None = None, **kw: Any) -> CorporateItem:
        return self.dataset.add_corporate(_merge(fields, kw), default_type="DEPARTMENT")

    def add_store(self, fields: Mapping[str, Any] | None = None, **kw: Any) -> CorporateItem:
        data = _merge(fields, kw)
        data.setdefault("type", "STORE")
        return self.dataset.add_corporate(data, default_type="STORE")

    def edit_corporate(self, item_id: str, changes: Mapping[str, Any] | None = None, **kw: Any) -> CorporateItem:
        """Edit any corporate node (department, store, legal entity, ...)."""
        return self.dataset.edit_corporate(item_id, _merge(changes, kw))

    def remove_corporate(self, item_id: str) -> bool:
        return self.dataset.remove_corporate(item_id)

    # aliases that read naturally in tests
    edit_department = edit_corporate
    edit_store = edit_corporate
    remove_department = remove_corporate
    remove_store = remove_corporate

    # ------------------------------------------------------------------ nomenclature and staff (issue 14)

    def add_product(self, fields: Mapping[str, Any] | None = None, **kw: Any) -> NomenclatureItem:
        """A new `v2/entities/products/list` item (GOODS in шт at the top level unless told otherwise)."""
        return self.dataset.add_nomenclature_item(_merge(fields, kw))

    def edit_product(self, product_id: str, changes: Mapping[str, Any] | None = None, **kw: Any) -> NomenclatureItem:
        return self.dataset.edit_nomenclature_item(product_id, _merge(changes, kw))

    def remove_product(self, product_id: str, purge: bool = False) -> bool:
        """Delete as iiko does: the product stays, `deleted: true` (seen with includeDeleted=true).
        `purge=True` makes it vanish instead."""
        return self.dataset.remove_nomenclature_item(product_id, purge)

    def add_product_group(self, fields: Mapping[str, Any] | None = None, **kw: Any) -> ProductGroup:
        return self.dataset.add_product_group(_merge(fields, kw))

    def edit_product_group(self, group_id: str, changes: Mapping[str, Any] | None = None, **kw: Any
                           ) -> ProductGroup:
        return self.dataset.edit_product_group(group_id, _merge(changes, kw))

    def remove_product_group(self, group_id: str, purge: bool = False) -> bool:
        return self.dataset.remove_product_group(group_id, purge)

    def add_employee(self, fields: Mapping[str, Any] | None = None, **kw: Any) -> Employee:
        return self.dataset.add_employee(_merge(fields, kw))

    def edit_employee(self, employee_id: str, changes: Mapping[str, Any] | None = None, **kw: Any) -> Employee:
        return self.dataset.edit_employee(employee_id, _merge(changes, kw))

    def remove_employee(self, employee_id: str, purge: bool = False) -> bool:
        return self.dataset.remove_employee(employee_id, purge)

    # ------------------------------------------------------------------ sales (issue 15)

    def late_shift(self, department: str, day: date | str, until: time | datetime | str | None = "15:00:00") -> None:
        """Keep `department`'s shift of `day - 1` open over the night until `until` on `day` (a time, `HH:MM:SS`,
        or a date-time): that day's orders opened before it then belong to business day `day - 1`. `None`
        closes that shift the normal way (it also cancels a late night the generator made)."""
        day = date.fromisoformat(day[:10]) if isinstance(day, str) else day
        moment = None if until is None else late_until(day, until)
        if moment is not None and moment.date() != day:
            raise ValueError(f"until must be a moment of {day.isoformat()}, not {moment.isoformat()}")
        self.dataset.set_late_shift(department, day, moment)
