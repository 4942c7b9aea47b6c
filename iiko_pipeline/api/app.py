"""The Starlette app: the brief's integration endpoints over the existing connect and sync use cases.

Blocking work (iiko logins, SQL, Dagster runs) runs in Starlette's thread pool, so one slow sync does not
stall other requests. A sync is a Dagster run of the account's partition (`run_account_sync`), visible in the
Dagster UI, and answers the brief's sync result with the run id once the run has ended.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import anyio
import anyio.to_thread
import dagster as dg
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from iiko_pipeline.api import validation
from iiko_pipeline.api.errors import ApiError, not_found
from iiko_pipeline.api.openapi import PREFIX, spec
from iiko_pipeline.api.runs import AccountBusyError, SyncGuard, iiko_failure, one_run_at_a_time
from iiko_pipeline.api.security import GuardMiddleware, check_token
from iiko_pipeline.defs.constants import ENTITIES, TRIGGER_TAG
from iiko_pipeline.defs.partitions import accounts_partitions_def
from iiko_pipeline.iiko import ClientSettings
from iiko_pipeline.services.connect import IntegrationsDisabledError, connect_account
from iiko_pipeline.services.sync import AccountSyncOutcome, invoice_run_config, run_account_sync
from iiko_pipeline.warehouse.credentials import IIKO, AccountStatus, delete_credentials, list_accounts
from iiko_pipeline.warehouse.crypto import KeyRing
from iiko_pipeline.warehouse.settings import INTEGRATIONS_ENABLED_ENV, integrations_enabled
from iiko_pipeline.warehouse.state import get_state

logger = logging.getLogger("iiko_pipeline.api")

BRIEF_RESULT_KEYS = ("total", "created", "updated", "errors", "error_details")
#: Threads for syncs (one runs at a time, see runs.one_run_at_a_time; the others wait their turn in them).
SYNC_THREADS = 4


class ApiContext:
    """What the handlers share: the Dagster instance, the warehouse, the key ring and the sync guard."""

    def __init__(self, instance: dg.DagsterInstance, engine_source: Callable[[], Engine], keyring: KeyRing,
                 connect_settings: ClientSettings | None) -> None:
        self.instance = instance
        self.keyring = keyring
        self.connect_settings = connect_settings
        self.guard = SyncGuard(instance)
        self._engine_source = engine_source
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self._sync_limiter: anyio.CapacityLimiter | None = None

    @property
    def engine(self) -> Engine:
        with self._engine_lock:
            if self._engine is None:
                self._engine = self._engine_source()
            return self._engine

    def account(self, account: str) -> AccountStatus | None:
        return next((a for a in list_accounts(self.engine, IIKO) if str(a.account_id) == account), None)

    def sync_limiter(self) -> anyio.CapacityLimiter:
        """Created on first use, inside the server's event loop."""
        if self._sync_limiter is None:
            self._sync_limiter = anyio.CapacityLimiter(SYNC_THREADS)
        return self._sync_limiter

    def register_partition(self, account: str) -> None:
        self.instance.add_dynamic_partitions(accounts_partitions_def.name, [account])


Handler = Callable[[Request, ApiContext], Awaitable[Response]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Turns ApiError into its answer and anything unexpected into a 500 that names no secret."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, request.app.state.api)
        except ApiError as exc:
            return exc.response()
        except Exception:
            reference = uuid.uuid4().hex[:12]
            logger.exception("unexpected error in %s %s (reference %s)", request.method,
                             getattr(request.scope.get("route"), "path", "?"), reference)
            return JSONResponse({"detail": f"internal error (reference {reference}); see the API log"},
                                status_code=500)

    endpoint.__name__ = handler.__name__
    return endpoint


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _require_enabled() -> None:
    if not integrations_enabled():
        raise ApiError(503, f"integrations are switched off ({INTEGRATIONS_ENABLED_ENV}=false)")


# ---------------------------------------------------------------------------------------------- handlers


async def health(request: Request, ctx: ApiContext) -> Response:
    return JSONResponse({"status": "ok"})


async def openapi(request: Request, ctx: ApiContext) -> Response:
    validation.no_query(request)
    return JSONResponse(spec())


async def connect(request: Request, ctx: ApiContext) -> Response:
    account = validation.account_id(request.path_params["account_id"])
    validation.no_query(request)
    body = validation.connect_request(await validation.json_object(request, required=True) or {})

    def work() -> dict[str, Any]:
        result = connect_account(ctx.engine, ctx.keyring, account, body.username, body.password, body.base_url,
                                 settings=ctx.connect_settings, register_partition=ctx.register_partition)
        return result.as_dict()

    try:
        answer = await run_in_threadpool(work)
    except IntegrationsDisabledError as exc:
        raise ApiError(503, str(exc)) from None
    if answer["is_connected"]:
        logger.info("account %s connected", account)
        return JSONResponse(answer)
    logger.info("account %s: connect failed: %s", account, answer["connection_error"])
    return JSONResponse(answer, status_code=502)


async def sync(request: Request, ctx: ApiContext) -> Response:
    account = validation.account_id(request.path_params["account_id"])
    entity = validation.entity(request.path_params["entity"])
    query = validation.no_query(request, validation.INVOICE_FIELDS if entity == "invoices" else ())
    window = validation.sync_request(entity, await validation.json_object(request, required=False), query)

    def work() -> AccountSyncOutcome:
        _require_enabled()
        if ctx.account(account) is None:
            raise not_found(account)
        ctx.guard.ensure_idle(account)
        with one_run_at_a_time():
            ctx.guard.ensure_idle(account)  # again: a run may have started elsewhere while this one waited
            run_config = invoice_run_config(window.date_from, window.date_to) if entity == "invoices" else {}
            return run_account_sync(ctx.instance, account, [entity], run_config=run_config,
                                    extra_tags={TRIGGER_TAG: "api"})

    try:
        with ctx.guard.claim(account):
            # Syncs take their own threads (a few), so waiting syncs never starve the other endpoints.
            outcome = await anyio.to_thread.run_sync(work, limiter=ctx.sync_limiter())
    except AccountBusyError as exc:
        raise ApiError(409, str(exc), extra={"run_id": exc.run_id} if exc.run_id else None) from None
    result = outcome.results.get(entity)
    if outcome.success and result is not None:
        logger.info("account %s: %s synced in run %s", account, entity, outcome.run_id)
        return JSONResponse({**{k: result.get(k, [] if k == "error_details" else 0) for k in BRIEF_RESULT_KEYS},
                             "run_id": outcome.run_id})
    reason = await run_in_threadpool(iiko_failure, ctx.instance, outcome.run_id)
    if reason is not None:
        logger.warning("account %s: %s sync run %s failed at iiko: %s", account, entity, outcome.run_id, reason)
        raise ApiError(502, f"iiko failed: {reason}", extra={"run_id": outcome.run_id})
    if outcome.rejected:  # the run worked, but stored too little of what iiko returned: the account's state
        detail = "; ".join(f"{e}: {d}" for e, d in outcome.rejected.items())
        logger.warning("account %s: %s sync run %s stored too little: %s", account, entity, outcome.run_id, detail)
        brief = {k: result.get(k, [] if k == "error_details" else 0) for k in BRIEF_RESULT_KEYS} if result else {}
        raise ApiError(409, f"the sync stored too little of what iiko returned: {detail}",
                       extra={"run_id": outcome.run_id, **brief})
    failures = "; ".join(f.splitlines()[0][:300] for f in outcome.failures) or "no result for the entity"
    logger.warning("account %s: %s sync run %s failed: %s", account, entity, outcome.run_id, failures)
    raise ApiError(500, f"the sync run failed: {failures} (details in the Dagster UI, run {outcome.run_id})",
                   extra={"run_id": outcome.run_id})


async def status(request: Request, ctx: ApiContext) -> Response:
    account = validation.account_id(request.path_params["account_id"])
    validation.no_query(request)

    def work() -> dict[str, Any]:
        row = ctx.account(account)
        if row is None:
            raise not_found(account)
        state = get_state(ctx.engine, uuid.UUID(account))
        running = ctx.guard.running_run(account)
        entities = {}
        for name in [*ENTITIES, *sorted(set(state) - set(ENTITIES))]:
            st = state.get(name, {})
            entities[name] = {"last_success_at": _iso(st.get("last_success_at")), "last_run_id": st.get("last_run_id"),
                              "last_error": st.get("last_error"), "watermark": _iso(st.get("watermark"))}
        return {
            "account_id": account, "integration_type": row.integration_type, "is_connected": row.is_connected,
            "last_connected_at": _iso(row.last_connected_at), "connection_error": row.connection_error,
            "base_url": row.base_url, "sync_running": running is not None or ctx.guard.is_busy(account),
            "running_run_id": running.run_id if running is not None else None, "entities": entities,
        }

    return JSONResponse(await run_in_threadpool(work))


async def disconnect(request: Request, ctx: ApiContext) -> Response:
    account = validation.account_id(request.path_params["account_id"])
    validation.no_query(request)
    await validation.json_object(request, required=False)  # tolerated when empty, refused when malformed

    def work() -> bool:
        ctx.guard.ensure_idle(account)
        return delete_credentials(ctx.engine, account, IIKO)

    try:
        with ctx.guard.claim(account):
            existed = await run_in_threadpool(work)
    except AccountBusyError as exc:
        raise ApiError(409, f"cannot disconnect while a sync runs: {exc}",
                       extra={"run_id": exc.run_id} if exc.run_id else None) from None
    if not existed:
        raise not_found(account)
    logger.info("account %s disconnected (credentials removed, data kept)", account)
    return JSONResponse({"account_id": account, "integration_type": IIKO, "is_connected": False,
                         "disconnected": True})


async def integration(request: Request, ctx: ApiContext) -> Response:
    return await (disconnect if request.method == "DELETE" else status)(request, ctx)


# ---------------------------------------------------------------------------------------------- the app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        detail = "no such endpoint; the API is described at /openapi.json"
    elif exc.status_code == 405:
        detail = f"method {request.method} is not allowed here (allowed: {(exc.headers or {}).get('Allow', '?')})"
    else:
        detail = str(exc.detail)
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


def routes() -> list[Route]:
    return [
        Route("/health", _endpoint(health), methods=["GET"]),
        Route("/openapi.json", _endpoint(openapi), methods=["GET"]),
        Route(f"{PREFIX}/connect", _endpoint(connect), methods=["POST"]),
        Route(f"{PREFIX}/sync/{{entity}}", _endpoint(sync), methods=["POST"]),
        Route(PREFIX, _endpoint(integration), methods=["GET", "DELETE"]),
    ]


def _fixed(engine: Engine | None) -> Callable[[], Engine]:
    def source() -> Engine:
        assert engine is not None
        return engine

    return source


def create_app(*, instance: dg.DagsterInstance, keyring: KeyRing, api_token: str | None,
               engine: Engine | None = None, engine_factory: Callable[[], Engine] | None = None,
               insecure: bool = False, connect_settings: ClientSettings | None = None) -> Starlette:
    """The API over one Dagster instance and one warehouse.

    `api_token` is required unless `insecure` (local development): without either this raises
    `InsecureConfigError`. Give the warehouse as `engine`, or as `engine_factory` (called once, on first use).
    """
    if (engine is None) == (engine_factory is None):
        raise TypeError("give exactly one of engine and engine_factory")
    token = check_token(api_token, insecure=insecure)
    if token is None:
        logger.warning("the API is serving WITHOUT authentication (insecure local mode)")
    source = engine_factory if engine_factory is not None else _fixed(engine)
    table = routes()
    app = Starlette(routes=table, middleware=[Middleware(GuardMiddleware, token=token, routes=table)],
                    exception_handlers={HTTPException: _http_error})
    app.router.redirect_slashes = False
    app.state.api = ApiContext(instance, source, keyring, connect_settings)
    return app
