"""The `/_emulator/` JSON control API (no auth): a thin HTTP skin over `EmulatorState`.

Lets a test running in another process (or a human with curl) steer the emulator the same way an
in-process test calls `emu.state.*`. See README.md in this package for every route with examples.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from .codec import CoercionError, to_jsonable
from .dataset import NotFound
from .reply import Reply, json_reply
from .resto import Request
from .sales import order_truth, shift_truth
from .state import EmulatorState

PREFIX = "/_emulator"


def refuse_unauthorised(control_token: str | None, authorization: str | None) -> Reply | None:
    """A 401 when the server has a control token and the request does not carry it as a bearer token, else None.

    Compared in constant time; the answer never says what was expected."""
    if not control_token:
        return None
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), control_token.encode()):
        return None
    reply = json_reply(401, {"error": "the control API needs the emulator's control token (Authorization: Bearer)"})
    reply.headers.append(("WWW-Authenticate", 'Bearer realm="iiko-emulator-control"'))
    return reply


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _HttpError(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _HttpError(400, "body must be a JSON object")
    return data


def _date_param(req: Request, name: str, default: date) -> date:
    raw = req.param(name)
    if raw is None:
        return default
    try:
        return date.fromisoformat(raw[:10])
    except ValueError as exc:
        raise _HttpError(400, f"{name}: not an ISO date: {raw!r}") from exc


def _ok(**extra: Any) -> Reply:
    return json_reply(200, {"ok": True, **extra})


def _faults(state: EmulatorState, method: str, rest: list[str], body: dict[str, Any]) -> Reply:
    if not rest:
        if method == "GET":
            return json_reply(200, {"faults": [r.to_json() for r in state.faults.list()]})
        if method == "POST":
            unknown = set(body) - {"endpoint", "kind", "count", "probability", "delay", "after"}
            if unknown:
                raise _HttpError(400, f"unknown fields: {sorted(unknown)}")
            if "endpoint" not in body or "kind" not in body:
                raise _HttpError(400, "endpoint and kind are required")
            rule = state.add_fault(body["endpoint"], body["kind"], count=body.get("count"),
                                   probability=body.get("probability"), delay=body.get("delay"),
                                   after=int(body.get("after") or 0))
            return json_reply(201, rule.to_json())
        if method == "DELETE":
            state.clear_faults()
            return _ok()
    elif len(rest) == 1 and method == "DELETE":
        try:
            rule_id = int(rest[0])
        except ValueError as exc:
            raise _HttpError(404, "no such fault") from exc
        if not state.faults.remove(rule_id):
            raise _HttpError(404, "no such fault")
        return _ok()
    raise _HttpError(405, f"{method} not supported here")


def _documents(state: EmulatorState, req: Request, rest: list[str], body: dict[str, Any]) -> Reply:
    method = req.method
    ds = state.dataset
    if not rest:
        if method == "GET":
            today = state.config.effective_today()
            d_from = _date_param(req, "from", today)
            d_to = _date_param(req, "to", d_from)
            return json_reply(200, to_jsonable(ds.invoices(d_from, d_to)))
        if method == "POST":
            return json_reply(201, to_jsonable(state.add_invoice(body)))
        raise _HttpError(405, f"{method} not supported here")
    doc_id = rest[0]
    if method == "GET":
        doc = ds.invoice(doc_id)
        if doc is None:
            raise NotFound(doc_id)
        return json_reply(200, to_jsonable(doc))
    if method == "PATCH":
        return json_reply(200, to_jsonable(state.edit_invoice(doc_id, body)))
    if method == "DELETE":
        if not state.remove_invoice(doc_id):
            raise NotFound(doc_id)
        return _ok()
    raise _HttpError(405, f"{method} not supported here")


def _sales(state: EmulatorState, req: Request, rest: list[str], body: dict[str, Any]) -> Reply:
    """Orders and cash shifts (truth), and late shifts (the OpenDate.Typed quirk on demand)."""
    method = req.method
    sales = state.dataset.sales
    if rest in (["orders"], ["shifts"]) and method == "GET":
        today = state.config.effective_today()
        d_from = _date_param(req, "from", today)
        d_to = _date_param(req, "to", d_from)
        department = (req.param("department") or "").strip().lower() or None
        if rest == ["orders"]:
            return json_reply(200, to_jsonable([order_truth(sales, business, order) for business, order
                                                in sales.orders_by_business_day(d_from, d_to, department)]))
        return json_reply(200, to_jsonable([shift_truth(s) for s in sales.shifts(d_from, d_to, department)]))
    if rest == ["late_shift"] and method == "POST":
        unknown = set(body) - {"department", "date", "until"}
        if unknown:
            raise _HttpError(400, f"unknown fields: {sorted(unknown)}")
        if "department" not in body or "date" not in body:
            raise _HttpError(400, "department and date are required")
        day = date.fromisoformat(str(body["date"])[:10])
        until = body.get("until", "15:00:00")
        state.late_shift(str(body["department"]), day, until)
        return _ok()
    if rest == ["late_shifts"] and method == "GET":
        return json_reply(200, to_jsonable([{"department": d, "date": day, "until": until}
                                            for d, day, until in sales.late_shifts()]))
    raise _HttpError(404, f"unknown control route {req.path} ({method})")


def _stock(state: EmulatorState, req: Request, rest: list[str]) -> Reply:
    """Where stock accounting starts, and one calendar day's movements (what a day's snapshots differ by)."""
    if req.method != "GET":
        raise _HttpError(405, f"{req.method} not supported here")
    stock = state.dataset.stock
    if not rest:
        return json_reply(200, {"start": stock.start().isoformat(),
                                "stock_history_days": state.config.stock_history_days,
                                "today": state.config.effective_today().isoformat()})
    if rest == ["movements"]:
        day = _date_param(req, "date", state.config.effective_today())
        moves = stock.movements(day)
        return json_reply(200, {kind: [{"store": store, "product": product, "amount": str(Decimal(amount).scaleb(-3)),
                                        "sum": str(Decimal(cents).scaleb(-2))}
                                       for (store, product), (amount, cents) in sorted(rows.items())]
                                for kind, rows in moves.items()})
    raise _HttpError(404, f"unknown control route {req.path}")


def _dimension(list_fn: Callable[[], list[Any]], get_fn: Callable[[str], Any], add_fn: Callable[[dict[str, Any]], Any],
               edit_fn: Callable[[str, dict[str, Any]], Any], remove_fn: Callable[[str], bool],
               method: str, rest: list[str], body: dict[str, Any]) -> Reply:
    if not rest:
        if method == "GET":
            return json_reply(200, to_jsonable(list_fn()))
        if method == "POST":
            return json_reply(201, to_jsonable(add_fn(body)))
        raise _HttpError(405, f"{method} not supported here")
    record_id = rest[0]
    if method == "GET":
        record = get_fn(record_id)
        if record is None:
            raise NotFound(record_id)
        return json_reply(200, to_jsonable(record))
    if method == "PATCH":
        if get_fn(record_id) is None:
            raise NotFound(record_id)
        return json_reply(200, to_jsonable(edit_fn(record_id, body)))
    if method == "DELETE":
        if get_fn(record_id) is None or not remove_fn(record_id):
            raise NotFound(record_id)
        return _ok()
    raise _HttpError(405, f"{method} not supported here")


def handle(state: EmulatorState, req: Request, raw_body: bytes) -> Reply:
    """Answer one control-API request; never raises (errors become JSON with 4xx/5xx)."""
    try:
        return _route(state, req, raw_body)
    except _HttpError as exc:
        return json_reply(exc.status, {"error": str(exc)})
    except NotFound as exc:
        return json_reply(404, {"error": f"not found: {exc.args[0] if exc.args else ''}"})
    except (CoercionError, ValueError, TypeError) as exc:
        return json_reply(400, {"error": str(exc)})


def _route(state: EmulatorState, req: Request, raw_body: bytes) -> Reply:
    parts = [p for p in req.path[len(PREFIX):].split("/") if p]
    method = req.method
    body = _body(raw_body) if method in ("POST", "PATCH", "PUT") else {}
    if not parts:
        raise _HttpError(404, "unknown control route")
    head, rest = parts[0], parts[1:]
    ds = state.dataset

    if head == "health" and method == "GET":
        return _ok()
    if head == "log" and not rest:
        if method == "GET":
            return json_reply(200, state.log.to_json())
        if method == "DELETE":
            state.log.clear()
            return _ok()
    if head == "reset" and method == "POST":
        state.reset(seed=body.get("seed"), scale=body.get("scale"))
        return _ok()
    if head == "restart" and method == "POST":
        state.restart()
        return _ok()
    if head == "config" and not rest:
        if method == "GET":
            return json_reply(200, state.config.public_dict())
        if method == "POST":
            return json_reply(200, state.configure(**body).public_dict())
    if head == "sessions" and method == "GET":
        ttl = state.config.token_ttl
        return json_reply(200, {"active": state.sessions.live_count(ttl), "labels": state.sessions.labels(ttl),
                                "seats": state.config.seats})
    if head == "faults":
        return _faults(state, method, rest, body)
    if head == "documents":
        return _documents(state, req, rest, body)
    if head == "suppliers":
        return _dimension(ds.suppliers, ds.supplier, state.add_supplier, state.edit_supplier, state.remove_supplier,
                          method, rest, body)
    if head == "departments":
        return _dimension(ds.departments, ds.corporate_item, state.add_department, state.edit_corporate,
                          state.remove_corporate, method, rest, body)
    if head == "stores":
        def get_store(item_id: str) -> Any:
            item = ds.corporate_item(item_id)
            return item if item is not None and item.type == "STORE" else None

        return _dimension(ds.stores, get_store, state.add_store, state.edit_corporate, state.remove_corporate,
                          method, rest, body)
    if head == "sales":
        return _sales(state, req, rest, body)
    if head == "stock":
        return _stock(state, req, rest)
    if head in ("products", "product_groups", "employees"):
        purge = (req.param("purge") or "").strip().lower() == "true"
        if head == "products":
            return _dimension(ds.nomenclature_items, ds.nomenclature_item, state.add_product, state.edit_product,
                              lambda i: state.remove_product(i, purge), method, rest, body)
        if head == "product_groups":
            return _dimension(ds.product_groups, ds.product_group, state.add_product_group,
                              state.edit_product_group, lambda i: state.remove_product_group(i, purge),
                              method, rest, body)
        return _dimension(ds.employees, ds.employee, state.add_employee, state.edit_employee,
                          lambda i: state.remove_employee(i, purge), method, rest, body)
    raise _HttpError(404, f"unknown control route {req.path} ({method})")
