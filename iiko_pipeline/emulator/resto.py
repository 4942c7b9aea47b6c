"""The iiko Server API surface under `/resto/`: routing, auth, licence rules and the endpoints.

Each endpoint is a function `(state, request, record) -> Reply`; `execute` wraps it with the rules every
real call goes through, in the order a real server applies them: server mode, token check (401),
licence module check (403), per-endpoint rights (403 `Permission denied`), then the handler. Faults are
applied around this by the HTTP layer (`server.py`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import Message

from . import olap, render
from .auth import SeatsExhausted, Session, SessionManager
from .config import MODULE_ID
from .models import Invoice
from .reply import JSON, TEXT, Reply, text
from .requestlog import RequestRecord
from .state import EmulatorState
from .stock import render_balances

LICENCE_EXHAUSTED = f"License enhancement is required: no connections available for module {MODULE_ID}"
MODULE_BLOCKED = f"Module {MODULE_ID} is blocked within current license"
PERMISSION_DENIED = "Permission denied"
UNAUTHORIZED = "Token is expired or invalid. Please log in again."
STARTING = "Server is starting and cannot check the password yet"
BAD_CREDENTIALS = "Неверное имя пользователя или пароль"


@dataclass
class Request:
    """A parsed HTTP request. `form` holds an `application/x-www-form-urlencoded` body."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    headers: Message | None = None
    body: bytes = b""  # the raw request body (JSON for the OLAP report)

    def param(self, name: str) -> str | None:
        """First value from the query string, else from the form body."""
        values = self.query.get(name) or self.form.get(name)
        return values[0] if values else None

    def params(self, name: str) -> list[str]:
        return [*self.query.get(name, []), *self.form.get(name, [])]

    def key(self) -> str | None:
        """The token: `key` query parameter, form field, or `key` cookie."""
        return self.param("key") or self.cookies.get("key") or None


Handler = Callable[[EmulatorState, Request, RequestRecord], Reply]


@dataclass(frozen=True)
class Route:
    name: str  # endpoint name used by faults, permission_denied and the request log
    handler: Handler
    methods: frozenset[str] = frozenset({"GET"})
    auth: bool = True
    # Servers older than this answer the path like any unknown one (404, see `available`).
    min_version: tuple[int, ...] | None = None


# ------------------------------------------------------------------ helpers

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?$")


def parse_day(value: str) -> date | None:
    """`YYYY-MM-DD`, optionally followed by a time part that is ignored; None if malformed."""
    m = _DATE.match(value.strip())
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def _xml(state: EmulatorState, body: str | Iterator[str]) -> Reply:
    data: bytes | Iterator[str] = body.encode("utf-8") if isinstance(body, str) else body
    return Reply(200, state.xml_content_type(), data)


def _revision(req: Request) -> int | Reply:
    raw = req.param("revisionFrom")
    if raw is None or raw == "":
        return -1
    try:
        return int(raw)
    except ValueError:
        return text(400, f"Wrong revision format: {raw}")


def _bool_param(req: Request, name: str, default: bool) -> bool:
    raw = req.param(name)
    return default if raw is None else raw.strip().lower() == "true"


def _not_null(name: str, endpoint: str) -> Reply:
    return text(400, f"Argument for @NotNull parameter '{name}' of resto/api/{endpoint} must not be null")


# ------------------------------------------------------------------ auth endpoints

def auth(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    cfg = state.config
    login, pass_hash = req.param("login"), req.param("pass")
    if login is None or pass_hash is None:
        state.log.note_login(False)
        return _not_null("login" if login is None else "pass", "auth") if cfg.missing_auth_params_status == 400 \
            else text(cfg.missing_auth_params_status, BAD_CREDENTIALS)
    if not SessionManager.check_credentials(login, pass_hash, cfg.login, cfg.password):
        state.log.note_login(False)
        return text(401, BAD_CREDENTIALS)
    if cfg.mode == "module_blocked":
        state.log.note_licence_denied()
        return text(403, MODULE_BLOCKED)
    try:
        token, label = state.sessions.login(cfg.seats, cfg.token_ttl)
    except SeatsExhausted:
        state.log.note_licence_denied()
        return text(403, LICENCE_EXHAUSTED)
    state.log.note_login(True)
    rec.token = label
    return Reply(200, TEXT, token.encode("ascii"), headers=[("Set-Cookie", f"key={token}; Path=/resto")])


def logout(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    token = req.key()
    rec.key_present = bool(token)
    session = state.sessions.logout(token)
    if session is None:
        status = state.config.logout_unknown_status
        return text(status, token or "") if status == 200 else text(status, UNAUTHORIZED)
    rec.token = session.label
    state.log.note_logout()
    return text(200, token or "")


def server_info(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    cfg = state.config
    server_state = "STARTING" if cfg.mode == "starting" else cfg.server_state
    return _xml(state, render.server_info(cfg.server_name, cfg.edition, cfg.version, cfg.computer_name, server_state))


def licence_info(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    cfg = state.config
    module = req.param("moduleId") or MODULE_ID
    seats = cfg.seats if module == MODULE_ID else 0
    used = state.sessions.live_count(cfg.token_ttl) if module == MODULE_ID else 0
    return _xml(state, render.licence_info(module, seats, used))


# ------------------------------------------------------------------ dimensions

def departments(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    rev = _revision(req)
    if isinstance(rev, Reply):
        return rev
    ds = state.dataset
    items = [i for i in ds.departments() if rev < 0 or ds.revision_of(i.id) > rev]
    return _xml(state, render.corporate_items(items))


def stores(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    rev = _revision(req)
    if isinstance(rev, Reply):
        return rev
    ds = state.dataset
    return _xml(state, render.corporate_items(s for s in ds.stores() if rev < 0 or ds.revision_of(s.id) > rev))


def _search(state: EmulatorState, req: Request, kind: str, endpoint: str) -> Reply:
    code = req.param("code")
    if code is None:
        return _not_null("code", endpoint)
    try:
        pattern = re.compile(code)
    except re.error:
        return text(400, f"Wrong regular expression: {code}")
    found = [i for i in state.dataset.departments() if i.type == kind and i.code and pattern.search(i.code)]
    return _xml(state, render.corporate_items(found))


def departments_search(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    return _search(state, req, "DEPARTMENT", "corporation/departments/search")


def stores_search(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    return _search(state, req, "STORE", "corporation/stores/search")


def suppliers(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    rev = _revision(req)
    if isinstance(rev, Reply):
        return rev
    ds = state.dataset
    return _xml(state, render.suppliers(s for s in ds.suppliers() if rev < 0 or ds.revision_of(s.id) > rev))


def accounts_list(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    ds = state.dataset
    body = render.accounts_list(ds.seed, ds.scale.name, ds.stores(), _bool_param(req, "includeDeleted", False))
    return Reply(200, JSON, body)


def entities_list(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    roots = [r for r in _list_param(req, "rootType") if r]
    if not roots:
        return _not_null("rootType", "v2/entities/list")
    ds = state.dataset
    known = {"MeasureUnit": ds.units, "Conception": ds.conceptions, "AccountingCategory": ds.accounting_categories,
             "TaxCategory": ds.tax_categories}
    refs = [ref for root in dict.fromkeys(roots) for ref in (known[root]() if root in known else [])]
    return Reply(200, JSON, render.entities_list(refs, _bool_param(req, "includeDeleted", True)))


# ------------------------------------------------------------------ nomenclature and staff (issue 14)

def _list_param(req: Request, name: str) -> list[str]:
    """A repeatable list parameter: `ids=a&ids=b` or `ids=a,b` (Spring binds both)."""
    return [v.strip() for raw in req.params(name) for v in raw.split(",") if v.strip()]


def _id_filter(req: Request, name: str) -> set[str] | None:
    values = _list_param(req, name)
    return {v.lower() for v in values} if values else None


def _form_revision(req: Request) -> int | Reply:
    """`revisionFrom` of the v2 lists' POST form variant (6.4+); a GET takes none (-1: everything)."""
    return _revision(req) if req.method == "POST" else -1


def products_list(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    """`v2/entities/products/list`: GET with `includeDeleted`, `ids`, `nums`, `types`, `categoryIds`,
    `parentIds`; the POST form variant (6.4+) also takes `revisionFrom` and `codes`."""
    ds = state.dataset
    include_deleted = _bool_param(req, "includeDeleted", False)
    ids, parents, categories = _id_filter(req, "ids"), _id_filter(req, "parentIds"), _id_filter(req, "categoryIds")
    nums, types = set(_list_param(req, "nums")), {t.upper() for t in _list_param(req, "types")}
    codes = set(_list_param(req, "codes")) if req.method == "POST" else set()
    rev = _form_revision(req)
    if isinstance(rev, Reply):
        return rev
    items = [p for p in ds.nomenclature_items()
             if (include_deleted or not p.deleted) and (ids is None or p.id in ids)
             and (parents is None or p.parent_id in parents) and (categories is None or p.category_id in categories)
             and (not nums or p.num in nums) and (not types or p.type in types) and (not codes or p.code in codes)
             and (rev < 0 or ds.revision_of(p.id) > rev)]
    cfg = state.config
    return Reply(200, JSON, render.nomenclature_items(items, cfg.version_tuple, cfg.product_fields_added,
                                                      cfg.product_fields_renamed))


def product_groups_list(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    """`v2/entities/products/group/list`: `includeDeleted`, `ids`, `parentIds` (POST: `revisionFrom`)."""
    ds = state.dataset
    include_deleted = _bool_param(req, "includeDeleted", False)
    ids, parents = _id_filter(req, "ids"), _id_filter(req, "parentIds")
    rev = _form_revision(req)
    if isinstance(rev, Reply):
        return rev
    groups = [g for g in ds.product_groups()
              if (include_deleted or not g.deleted) and (ids is None or g.id in ids)
              and (parents is None or g.parent_id in parents) and (rev < 0 or ds.revision_of(g.id) > rev)]
    return Reply(200, JSON, render.product_groups(groups))


def employees(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    """`employees`: XML in the suppliers' schema; `includeDeleted` (default false) and `revisionFrom`."""
    rev = _revision(req)
    if isinstance(rev, Reply):
        return rev
    ds = state.dataset
    include_deleted = _bool_param(req, "includeDeleted", False)
    found = (e for e in ds.employees()
             if (include_deleted or not e.deleted) and (rev < 0 or ds.revision_of(e.id) > rev))
    return _xml(state, render.employees(found, state.render_options()))


def server_type(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    return _xml(state, render.server_type(state.config.edition))


def corporation_settings(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    return Reply(200, JSON, b'{"vatAccounting":"VAT_INCLUDED_IN_PRICE"}')


# ------------------------------------------------------------------ invoices

def _export(state: EmulatorState, days: Iterator[list[Invoice]]) -> Reply:
    return _xml(state, render.invoice_export(days, state.render_options()))


def incoming_invoices(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    raw_from, raw_to = req.param("from"), req.param("to")
    rec.window = (raw_from or "", raw_to or "") if raw_from is not None or raw_to is not None else None
    if raw_from is None or raw_to is None:
        if state.config.missing_dates == "empty":
            return _export(state, iter(()))
        return _not_null("from" if raw_from is None else "to", "documents/export/incomingInvoice")
    for raw in (raw_from, raw_to):
        if parse_day(raw) is None:
            return text(400, f"Wrong date format: {raw}")
    rev = _revision(req)
    if isinstance(rev, Reply):
        return rev
    d_from, d_to = parse_day(raw_from), parse_day(raw_to)
    assert d_from is not None and d_to is not None
    days = state.dataset.iter_invoice_days(d_from, d_to, req.params("supplierId") or None, rev)
    return _export(state, days)


def incoming_invoice_by_number(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    endpoint = "documents/export/incomingInvoice/byNumber"
    number, current = req.param("number"), req.param("currentYear")
    raw_from, raw_to = req.param("from"), req.param("to")
    if number is None:
        return _not_null("number", endpoint)
    if current is None or current.strip().lower() not in ("true", "false"):
        return _not_null("currentYear", endpoint)
    if current.strip().lower() == "true":
        if raw_from is not None or raw_to is not None:
            return text(400, "Parameters 'from' and 'to' must not be set when currentYear=true")
        year = state.config.effective_today().year
        d_from, d_to = date(year, 1, 1), date(year, 12, 31)
    else:
        if raw_from is None or raw_to is None:
            return text(400, "Parameters 'from' and 'to' are required when currentYear=false")
        rec.window = (raw_from, raw_to)
        for raw in (raw_from, raw_to):
            if parse_day(raw) is None:
                return text(400, f"Wrong date format: {raw}")
        d_from, d_to = parse_day(raw_from), parse_day(raw_to)  # type: ignore[assignment]
        assert d_from is not None and d_to is not None
    docs = state.dataset.find_by_number(number, d_from, d_to)
    return _export(state, iter([docs]))


# ------------------------------------------------------------------ reports and cash shifts (issue 15)

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?$")
CASH_SHIFT_STATUSES = ("ANY", "OPEN", "CLOSED", "ACCEPTED", "UNACCEPTED", "HASWARNINGS")


def olap_report(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    """`POST v2/reports/olap` (4.1+): the SALES report over the generated orders (see `olap.py`)."""
    media = (req.headers.get("Content-Type", "") if req.headers is not None else "").split(";")[0].strip().lower()
    if media and media != "application/json":
        return text(415, f"Unsupported Media Type: {media} (send the report request as application/json)")
    if not req.body.strip():
        return text(400, "Wrong request body: the OLAP report request is empty")
    try:
        body = json.loads(req.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return text(400, f"Wrong request body: not valid JSON ({exc})")
    ds, cfg = state.dataset, state.config
    ctx = olap.Context(ds.sales, {d.id: d for d in ds.departments()})
    try:
        answer, parsed = olap.run(body, ctx, cfg.version_tuple, cfg.effective_today())
    except olap.OlapError as exc:
        return text(exc.status, exc.text)
    rec.window = parsed.window
    return Reply(200, JSON, json.dumps(answer, ensure_ascii=False).encode("utf-8"))


def olap_columns(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    """`GET v2/reports/olap/columns?reportType=SALES` (4.1+): the field catalogue."""
    report = req.param("reportType")
    if report is None:
        return _not_null("reportType", "v2/reports/olap/columns")
    if report not in olap.REPORT_TYPES:
        return text(404, f"Unknown report type: {report}")
    if report != "SALES":
        return text(400, f"Report type {report} is not served by this emulator: only SALES")
    return Reply(200, JSON, json.dumps(olap.columns(report), ensure_ascii=False).encode("utf-8"))


def store_balances(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    """`GET v2/reports/balance/stores?timestamp=yyyy-MM-ddTHH:mm:ss` (5.2+), optional repeatable `department`,
    `store`, `product`: the balances of every store and product at that moment, zero balances omitted."""
    raw = req.param("timestamp")
    if raw is None or raw == "":
        return _not_null("timestamp", "v2/reports/balance/stores")
    rec.window = (raw, raw)
    if not _TIMESTAMP.match(raw.strip()):
        return text(400, f"Wrong date format: {raw}")
    try:
        at = datetime.fromisoformat(raw.strip())
    except ValueError:
        return text(400, f"Wrong date format: {raw}")
    ds = state.dataset
    stores = _id_filter(req, "store")
    departments = _id_filter(req, "department")
    if departments is not None:
        in_departments = {s.id for s in ds.stores() if s.parent_id in departments}
        stores = in_departments if stores is None else stores & in_departments
    return Reply(200, JSON, render_balances(ds.stock.balances(at), stores, _id_filter(req, "product")))


def cash_shifts_list(state: EmulatorState, req: Request, rec: RequestRecord) -> Reply:
    """`GET v2/cashshifts/list?openDateFrom=&openDateTo=&status=` (both dates inclusive, status required),
    optional `departmentId` (repeatable) and `revisionFrom`; `groupId` is accepted and ignored."""
    endpoint = "v2/cashshifts/list"
    raw_from, raw_to, status = req.param("openDateFrom"), req.param("openDateTo"), req.param("status")
    if raw_from is not None or raw_to is not None:
        rec.window = (raw_from or "", raw_to or "")
    if raw_from is None or raw_to is None:
        return _not_null("openDateFrom" if raw_from is None else "openDateTo", endpoint)
    for raw in (raw_from, raw_to):
        if parse_day(raw) is None:
            return text(400, f"Wrong date format: {raw}")
    if status is None or not status.strip():
        return _not_null("status", endpoint)
    status = status.strip()
    if status not in CASH_SHIFT_STATUSES:
        return text(400, f"Wrong status: {status} (one of {', '.join(CASH_SHIFT_STATUSES)})")
    rev = _revision(req)
    if isinstance(rev, Reply):
        return rev
    d_from, d_to = parse_day(raw_from), parse_day(raw_to)
    assert d_from is not None and d_to is not None
    departments = _id_filter(req, "departmentId")
    # one department asked (how the pipeline asks): only its orders are generated, not every restaurant's
    only = next(iter(departments)) if departments is not None and len(departments) == 1 else None
    shifts = [s for s in state.dataset.sales.shifts(d_from, d_to, only)
              if d_from <= s.open_date.date() <= d_to
              and (departments is None or s.department_id in departments)
              and (rev < 0 or s.revision > rev) and _status_matches(status, s.session_status)]
    return Reply(200, JSON, render.cash_shifts(shifts))


def _status_matches(wanted: str, status: str) -> bool:
    """The `status` filter: CLOSED is every closed shift (accepted or not), UNACCEPTED every closed one not yet
    accepted (with warnings or not)."""
    if wanted == "ANY":
        return True
    if wanted == "CLOSED":
        return status != "OPEN"
    if wanted == "UNACCEPTED":
        return status in ("UNACCEPTED", "HASWARNINGS")
    return status == wanted


# ------------------------------------------------------------------ routing

_BOTH = frozenset({"GET", "POST"})
ROUTES: dict[str, Route] = {
    "/resto/get_server_info.jsp": Route("server_info", server_info, auth=False),
    "/resto/api/auth": Route("auth", auth, _BOTH, auth=False),
    "/resto/api/logout": Route("logout", logout, _BOTH, auth=False),
    "/resto/api/licence/info": Route("licence/info", licence_info, auth=False),
    "/resto/api/corporation/departments": Route("corporation/departments", departments),
    "/resto/api/corporation/departments/search": Route("corporation/departments/search", departments_search),
    "/resto/api/corporation/stores": Route("corporation/stores", stores),
    "/resto/api/corporation/stores/search": Route("corporation/stores/search", stores_search),
    "/resto/api/suppliers": Route("suppliers", suppliers),
    "/resto/api/employees": Route("employees", employees),
    "/resto/api/v2/entities/products/list":
        Route("v2/entities/products/list", products_list, _BOTH, min_version=(6, 1)),
    "/resto/api/v2/entities/products/group/list":
        Route("v2/entities/products/group/list", product_groups_list, _BOTH, min_version=(6, 1)),
    "/resto/api/v2/entities/accounts/list": Route("v2/entities/accounts/list", accounts_list),
    "/resto/api/v2/entities/list": Route("v2/entities/list", entities_list),
    "/resto/api/replication/serverType": Route("replication/serverType", server_type),
    "/resto/api/v2/corporation/settings": Route("v2/corporation/settings", corporation_settings),
    "/resto/api/documents/export/incomingInvoice": Route("documents/export/incomingInvoice", incoming_invoices),
    "/resto/api/documents/export/incomingInvoice/byNumber":
        Route("documents/export/incomingInvoice/byNumber", incoming_invoice_by_number),
    "/resto/api/v2/reports/olap": Route("v2/reports/olap", olap_report, frozenset({"POST"}), min_version=(4, 1)),
    "/resto/api/v2/reports/olap/columns": Route("v2/reports/olap/columns", olap_columns, min_version=(4, 1)),
    "/resto/api/v2/reports/balance/stores":
        Route("v2/reports/balance/stores", store_balances, min_version=(5, 2)),
    "/resto/api/v2/cashshifts/list": Route("v2/cashshifts/list", cash_shifts_list),
}
# Spellings the docs print both ways (with and without /v2/).
ROUTES["/resto/api/entities/accounts/list"] = ROUTES["/resto/api/v2/entities/accounts/list"]
ROUTES["/resto/api/entities/list"] = ROUTES["/resto/api/v2/entities/list"]
ROUTES["/resto/api/corporation/settings"] = ROUTES["/resto/api/v2/corporation/settings"]


def resolve(path: str) -> Route | None:
    """The route for a path, with or without a trailing slash."""
    return ROUTES.get(path.rstrip("/") or "/")


def available(state: EmulatorState, route: Route) -> bool:
    """False when the configured server version predates the endpoint: the path is then unknown to it."""
    return route.min_version is None or state.config.version_tuple >= route.min_version


def track(state: EmulatorState, route: Route, req: Request, rec: RequestRecord) -> tuple[Session | None, int]:
    """On arrival: resolve the token and count this request as in flight on it (the concurrency
    detector), before any fault delay, so a slow answer still overlaps the next request.

    Returns (session or None, the token's in-flight count including this request). The caller must
    release the session (`state.sessions.end`) once the answer has been sent.
    """
    cfg = state.config
    rec.key_present = bool(req.key())
    needs_auth = route.auth or (route.name == "licence/info" and cfg.licence_info_requires_key)
    if not needs_auth or cfg.mode == "starting":
        return None, 0
    session = state.sessions.lookup(req.key(), cfg.token_ttl)
    if session is None:
        return None, 0
    rec.token = session.label
    inflight = state.sessions.begin(session)
    state.log.note_token_concurrency(session.label, inflight)
    return session, inflight


def execute(state: EmulatorState, route: Route, req: Request, rec: RequestRecord, session: Session | None,
            inflight: int = 1) -> Reply:
    """Apply mode, token, licence and rights checks, then run the endpoint (`session` from `track`)."""
    cfg = state.config
    if req.method not in route.methods:
        return text(405, f"HTTP method {req.method} is not supported by this URL")
    if cfg.mode == "starting" and route.name != "server_info":
        return text(401, STARTING)
    needs_auth = route.auth or (route.name == "licence/info" and cfg.licence_info_requires_key)
    if not needs_auth:
        return route.handler(state, req, rec)
    if session is None or state.sessions.lookup(session.token, cfg.token_ttl) is None:
        return text(401, UNAUTHORIZED)
    if cfg.mode == "module_blocked":
        return text(403, MODULE_BLOCKED)
    if route.name in cfg.permission_denied:
        return text(403, PERMISSION_DENIED)
    if inflight > 1 and cfg.concurrency_fault == "http_500":
        return text(500, "Concurrent requests with one token are not allowed")
    return route.handler(state, req, rec)
