"""The Starlette app: the brief's integration endpoints over the existing connect and sync use cases.

Blocking work (iiko logins, SQL) runs in Starlette's thread pool, so one slow request does not stall others.
A sync is a Dagster run of the account's partition in a process of its own (`services.launcher`), visible in
the Dagster UI; syncs of different accounts run side by side, and the account's lock (in the warehouse,
shared by every process) refuses a second sync of a busy account with 409 and the run that holds it. The
answer is the brief's sync result with the run id once the run has ended, or, with `Prefer: respond-async`,
202 and the run id at once (`GET .../runs/{run_id}` then tells how it went).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
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
from iiko_pipeline.api.errors import ApiError, FieldError, not_found, validation_error
from iiko_pipeline.api.openapi import PREFIX, spec
from iiko_pipeline.api.security import GuardMiddleware, check_token
from iiko_pipeline.core.specs import ENTITY_NAMES
from iiko_pipeline.core.specs import spec as entity_spec
from iiko_pipeline.defs.constants import ACCOUNT_TAG, REQUESTED_TAG, TRIGGER_TAG
from iiko_pipeline.defs.onboarding import IN_PROGRESS
from iiko_pipeline.defs.partitions import accounts_partitions_def
from iiko_pipeline.iiko import ClientSettings
from iiko_pipeline.iiko.hosts import HostPolicyError
from iiko_pipeline.services.connect import CredentialTextError, IntegrationsDisabledError, connect_account
from iiko_pipeline.services.launcher import (
    AccountBusyError,
    Launch,
    disconnect_account,
    ensure_idle,
    settle,
    start_sync,
    wait,
)
from iiko_pipeline.services.run_config import invoice_run_config
from iiko_pipeline.services.sync import AccountSyncOutcome, read_outcome
from iiko_pipeline.warehouse import run_locks
from iiko_pipeline.warehouse.credentials import IIKO, AccountStatus, list_accounts
from iiko_pipeline.warehouse.crypto import KeyRing
from iiko_pipeline.warehouse.settings import INTEGRATIONS_ENABLED_ENV, integrations_enabled
from iiko_pipeline.warehouse.sqltypes import as_utc
from iiko_pipeline.warehouse.state import get_state

logger = logging.getLogger("iiko_pipeline.api")

BRIEF_RESULT_KEYS = ("total", "created", "updated", "errors", "error_details")
#: Threads that wait for sync runs (each run works in its own process; a waiting thread only polls it).
SYNC_THREADS = 64


class ApiContext:
    """What the handlers share: the Dagster instance, the warehouse, the key ring and the runs started async."""

    def __init__(self, instance: dg.DagsterInstance, engine_source: Callable[[], Engine], keyring: KeyRing,
                 connect_settings: ClientSettings | None) -> None:
        self.instance = instance
        self.keyring = keyring
        self.connect_settings = connect_settings
        self._watched: dict[str, Launch] = {}
        self._watch_lock = threading.Lock()
        self._watcher: threading.Thread | None = None
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

    def watch(self, launch: Launch) -> None:
        """Settle an async run as soon as its process ends (a run whose process died is marked failed and its
        account freed at once, without waiting for anyone to ask)."""
        with self._watch_lock:
            self._watched[launch.run_id] = launch
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._settle_loop, name="api-run-watcher", daemon=True)
                self._watcher.start()

    def watching(self, run_id: str) -> bool:
        """Whether a run started here is still being watched (its process may not have created the run yet)."""
        with self._watch_lock:
            return run_id in self._watched

    def _settle_loop(self) -> None:
        while True:
            time.sleep(0.5)
            with self._watch_lock:
                ended = [launch for launch in self._watched.values() if launch.process.poll() is not None]
                for launch in ended:
                    del self._watched[launch.run_id]
            for launch in ended:
                try:
                    settle(self.instance, self.engine, self.keyring, launch)
                except Exception:
                    logger.exception("settling run %s failed", launch.run_id)


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
        return as_utc(value).isoformat().replace("+00:00", "Z")
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
                                 allow_http=body.allow_http, settings=ctx.connect_settings,
                                 register_partition=ctx.register_partition)
        return result.as_dict()

    try:
        answer = await run_in_threadpool(work)
    except IntegrationsDisabledError as exc:
        raise ApiError(503, str(exc)) from None
    except HostPolicyError as exc:  # the environment changed since the request was validated
        raise validation_error([FieldError("base_url", "body", str(exc))]) from None
    except CredentialTextError as exc:  # validation refuses these first; never the value, only the field
        raise validation_error([FieldError(exc.field, "body", str(exc).removeprefix(exc.field + " "))]) from None
    if answer["is_connected"]:
        logger.info("account %s connected", account)
        return JSONResponse(answer)
    logger.info("account %s: connect failed: %s", account, answer["connection_error"])
    return JSONResponse(answer, status_code=502)


def sync_answer(account: str, entity: str, outcome: AccountSyncOutcome) -> tuple[int, dict[str, Any]]:
    """The status code and body a finished sync run answers with (also what `GET .../runs/{id}` reports).

    200 with the brief's result; 502 when iiko failed (the failed step said so: its failure kind); 409 when
    the run stored too little of what iiko returned (the account's state, e.g. reference data missing, with the
    brief's counts); 500 for anything else (ours)."""
    result = outcome.results.get(entity)
    brief = {k: result.get(k, [] if k == "error_details" else 0) for k in BRIEF_RESULT_KEYS} if result else {}
    if outcome.success and result is not None:
        logger.info("account %s: %s synced in run %s", account, entity, outcome.run_id)
        skipped = {"skipped": result["skipped"]} if result.get("skipped") else {}  # an optional entity not read
        return 200, {**brief, **skipped, "run_id": outcome.run_id}
    failure = outcome.iiko_failure()
    if failure is not None:
        logger.warning("account %s: %s sync run %s failed at iiko: %s", account, entity, outcome.run_id, failure)
        return 502, {"detail": f"iiko failed: {failure}", "run_id": outcome.run_id}
    if outcome.rejected:
        detail = "; ".join(f"{e}: {d}" for e, d in outcome.rejected.items())
        logger.warning("account %s: %s sync run %s stored too little: %s", account, entity, outcome.run_id, detail)
        return 409, {"detail": f"the sync stored too little of what iiko returned: {detail}",
                     "run_id": outcome.run_id, **brief}
    failures = "; ".join(f.splitlines()[0][:300] for f in outcome.failures) or "no result for the entity"
    logger.warning("account %s: %s sync run %s failed: %s", account, entity, outcome.run_id, failures)
    return 500, {"detail": f"the sync run failed: {failures} (details in the Dagster UI, run {outcome.run_id})",
                 "run_id": outcome.run_id}


def _prefers_async(request: Request) -> bool:
    return any(p.strip().lower() == "respond-async" for p in request.headers.get("prefer", "").split(","))


async def sync(request: Request, ctx: ApiContext) -> Response:
    account = validation.account_id(request.path_params["account_id"])
    entity = validation.entity(request.path_params["entity"])
    query = validation.no_query(request, validation.WINDOW_FIELDS if entity_spec(entity).windowed else ())
    window = validation.sync_request(entity, await validation.json_object(request, required=False), query)

    def start() -> Launch:
        _require_enabled()
        if ctx.account(account) is None:
            raise not_found(account)
        run_config = invoice_run_config(window.date_from, window.date_to) if entity_spec(entity).windowed else {}
        return start_sync(ctx.instance, ctx.engine, ctx.keyring, account, [entity], run_config=run_config,
                          extra_tags={TRIGGER_TAG: "api", REQUESTED_TAG: entity})

    try:
        launch = await run_in_threadpool(start)
    except AccountBusyError as exc:
        raise ApiError(409, str(exc), extra={"run_id": exc.run_id} if exc.run_id else None) from None
    if _prefers_async(request):
        ctx.watch(launch)
        url = f"{PREFIX.format(account_id=account)}/runs/{launch.run_id}"
        return JSONResponse({"run_id": launch.run_id, "status": "STARTING", "status_url": url}, status_code=202,
                            headers={"Location": url, "Preference-Applied": "respond-async"})
    outcome = await anyio.to_thread.run_sync(lambda: wait(ctx.instance, ctx.engine, ctx.keyring, launch),
                                             limiter=ctx.sync_limiter())
    code, body = sync_answer(account, entity, outcome)
    if code == 200:
        return JSONResponse(body)
    raise ApiError(code, body.pop("detail"), extra=body)


async def run_status(request: Request, ctx: ApiContext) -> Response:
    account = validation.account_id(request.path_params["account_id"])
    run_id = validation.account_id(request.path_params["run_id"], field="run_id")
    validation.no_query(request)

    def work() -> dict[str, Any]:
        run = ctx.instance.get_run_by_id(run_id)
        if run is None or run.tags.get(ACCOUNT_TAG) != account:
            holder = run_locks.current(ctx.engine, account)
            if run is None and holder is not None and holder.run_id == run_id:  # its process is starting
                return {"run_id": run_id, "account_id": account, "status": "STARTING", "done": False}
            raise ApiError(404, f"account {account} has no run {run_id}")
        entity = run.tags.get(REQUESTED_TAG)
        body: dict[str, Any] = {"run_id": run_id, "account_id": account, "entity": entity,
                                "status": run.status.value, "done": run.status not in IN_PROGRESS}
        if body["done"] and entity:
            outcome = read_outcome(ctx.instance, run_id, run.status == dg.DagsterRunStatus.SUCCESS, [entity])
            code, answer = sync_answer(account, entity, outcome)
            body["http_status"] = code
            body["result" if code == 200 else "error"] = answer
        return body

    return JSONResponse(await run_in_threadpool(work))


async def status(request: Request, ctx: ApiContext) -> Response:
    account = validation.account_id(request.path_params["account_id"])
    validation.no_query(request)

    def work() -> dict[str, Any]:
        row = ctx.account(account)
        if row is None:
            raise not_found(account)
        state = get_state(ctx.engine, uuid.UUID(account))
        try:
            ensure_idle(ctx.instance, ctx.engine, ctx.keyring, account)  # also takes back a dead run's account
            running = None
        except AccountBusyError as busy:
            running = busy.run_id
        entities = {}
        for name in [*ENTITY_NAMES, *sorted(set(state) - set(ENTITY_NAMES))]:
            st = state.get(name, {})
            entities[name] = {"last_success_at": _iso(st.get("last_success_at")), "last_run_id": st.get("last_run_id"),
                              "last_error": st.get("last_error"), "watermark": _iso(st.get("watermark"))}
        return {
            "account_id": account, "integration_type": row.integration_type, "is_connected": row.is_connected,
            "last_connected_at": _iso(row.last_connected_at), "connection_error": row.connection_error,
            "base_url": row.base_url, "allow_http": row.allow_http, "sync_running": running is not None,
            "running_run_id": running,
            "entities": entities,
        }

    return JSONResponse(await run_in_threadpool(work))


async def disconnect(request: Request, ctx: ApiContext) -> Response:
    account = validation.account_id(request.path_params["account_id"])
    validation.no_query(request)
    await validation.json_object(request, required=False)  # tolerated when empty, refused when malformed

    try:
        existed = await run_in_threadpool(disconnect_account, ctx.instance, ctx.engine, ctx.keyring, account)
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
        Route(f"{PREFIX}/runs/{{run_id}}", _endpoint(run_status), methods=["GET"]),
        Route(PREFIX, _endpoint(integration), methods=["GET", "DELETE"]),
    ]


def _fixed(engine: Engine | None) -> Callable[[], Engine]:
    def source() -> Engine:
        assert engine is not None
        return engine

    return source


def create_app(*, instance: dg.DagsterInstance, keyring: KeyRing, api_token: str | None,
               engine: Engine | None = None, engine_factory: Callable[[], Engine] | None = None,
               insecure: bool = False, connect_settings: ClientSettings | None = None,
               ui_password: str | None = None, dagster_ui_url: str | None = None) -> Starlette:
    """The API over one Dagster instance and one warehouse, and the management pages under /ui/.

    `api_token` is required unless `insecure` (local development): without either this raises
    `InsecureConfigError`. Give the warehouse as `engine`, or as `engine_factory` (called once, on first use).
    The pages sign in with the API token or `ui_password`; `dagster_ui_url` is where their run links point.
    """
    from iiko_pipeline import ui

    if (engine is None) == (engine_factory is None):
        raise TypeError("give exactly one of engine and engine_factory")
    token = check_token(api_token, insecure=insecure)
    if token is None:
        logger.warning("the API is serving WITHOUT authentication (insecure local mode)")
    source = engine_factory if engine_factory is not None else _fixed(engine)
    table = [*routes(), *ui.routes()]
    app = Starlette(routes=table, middleware=[Middleware(ui.PageHeadersMiddleware),
                                              Middleware(GuardMiddleware, token=token, routes=table)],
                    exception_handlers={HTTPException: _http_error})
    app.router.redirect_slashes = False
    app.state.api = ApiContext(instance, source, keyring, connect_settings)
    app.state.ui = ui.UiContext(api_token=token, password=ui_password, dagster_url=dagster_ui_url)
    return app
