"""The management pages' handlers: server-rendered HTML over the same use cases as the JSON API.

Every page needs a signed-in session (`sessions`); every form posts its session's CSRF token and comes from our
own origin, or it is refused with 403 before anything happens. A handler that changes something answers with a
redirect (303, post/redirect/get), so a reload never repeats it; what happened is said on the next page.
Syncs started here are ordinary runs of the account (`services.launcher.start_sync`, tagged `iiko/trigger=ui`),
watched by the API's settle loop like the JSON API's async syncs.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import dagster as dg
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from iiko_pipeline.api.app import ApiContext
from iiko_pipeline.core.specs import ENTITY_NAMES
from iiko_pipeline.defs.constants import ACCOUNT_TAG, REQUESTED_TAG, TRIGGER_TAG
from iiko_pipeline.defs.onboarding import IN_PROGRESS
from iiko_pipeline.services.connect import IntegrationsDisabledError, connect_account
from iiko_pipeline.services.launcher import AccountBusyError, disconnect_account, start_sync
from iiko_pipeline.services.run_config import invoice_run_config
from iiko_pipeline.services.sync import read_outcome
from iiko_pipeline.ui import forms, overview
from iiko_pipeline.ui.context import UiContext
from iiko_pipeline.ui.sessions import CSRF_FIELD, Session, check_csrf, same_origin
from iiko_pipeline.warehouse.credentials import IIKO, CredentialsNotFoundError, load_credentials
from iiko_pipeline.warehouse.labels import set_display_name

logger = logging.getLogger("iiko_pipeline.ui")

#: What a failed login means for the operator, and the field it concerns ("" for the form as a whole).
CONNECT_FAILURES: dict[str, tuple[str, str]] = {
    "credentials": ("password", "iiko refused the login: the user name or the password is wrong."),
    "licence": ("", "iiko has no free API licence seat right now: all seats are taken (by another integration "
                    "or a sync in progress). Try again in a few minutes."),
    "module": ("", "The iiko API module is not licensed on this server: the restaurant group must enable it in its "
                   "iiko licence."),
    "rights": ("username", "This iiko user lacks the rights the API needs."),
    "transient": ("base_url", "The iiko server could not be reached at this address, or did not answer as iiko."),
    "tls": ("base_url", "The secure connection (TLS) to this address failed: its certificate could not be "
                        "verified."),
}
#: A failed sign-in waits this long before answering: guessing a token through the form is slow.
SIGN_IN_FAILURE_DELAY_S = 1.0

PageHandler = Callable[[Request, UiContext, ApiContext, Session], Awaitable[Response]]


# ------------------------------------------------------------------------------------------------ plumbing


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _account_url(account: str, suffix: str = "") -> str:
    return f"/ui/accounts/{account}{suffix}"


def _forbidden(ui: UiContext, request: Request, why: str) -> Response:
    logger.warning("page form refused: %s (%s %s)", why, request.method, request.url.path)
    return ui.render(request, None, "error.html", status=403, title="Request refused",
                     message=f"This request was refused: {why}. Go back, reload the page and try again.")


def page(handler: PageHandler, *, form: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """A handler behind the session (sign-in redirect) and, for a form, the origin and CSRF checks; the posted
    fields are in `request.state.form`."""

    async def endpoint(request: Request) -> Response:
        ui: UiContext = request.app.state.ui
        api: ApiContext = request.app.state.api
        session, new_cookie = ui.session(request)
        if session is None or not session.signed_in:
            if request.method != "GET":
                return _forbidden(ui, request, "you are not signed in (or your session ended)")
            return _redirect("/ui/sign-in?next=" + quote(request.url.path, safe="/"))
        if form:
            refusal = await _check_form(request, ui, session)
            if refusal is not None:
                return refusal
        try:
            response = await handler(request, ui, api, session)
        except _NotFound as exc:
            response = ui.render(request, session, "error.html", status=404, title="Not found", message=str(exc))
        except Exception:
            reference = uuid.uuid4().hex[:12]
            logger.exception("unexpected error on page %s %s (reference %s)", request.method,
                             getattr(request.scope.get("route"), "path", "?"), reference)
            response = ui.render(request, session, "error.html", status=500, title="Something went wrong",
                                 message=f"The server failed on this request (reference {reference}; the details "
                                         "are in the API's log). Nothing was changed by the failed step.")
        if new_cookie:
            ui.attach(request, response, new_cookie)
        return response

    endpoint.__name__ = handler.__name__
    return endpoint


async def _check_form(request: Request, ui: UiContext, session: Session) -> Response | None:
    if not same_origin(request):
        return _forbidden(ui, request, "it did not come from this site's own pages")
    try:
        request.state.form = await forms.read_form(request)
    except forms.FormError as exc:
        return _forbidden(ui, request, str(exc))
    if not check_csrf(session, request.state.form.get(CSRF_FIELD)):
        return _forbidden(ui, request, "its form token is missing or out of date")
    return None


class _NotFound(LookupError):
    pass


def _account_param(request: Request) -> str:
    try:
        return str(uuid.UUID(request.path_params["account_id"]))
    except ValueError:
        raise _NotFound("There is no account with this id (an account id is a UUID).") from None


def _known_account(api: ApiContext, account: str) -> None:
    if api.account(account) is None:
        raise _NotFound(f"Account {account} has no iiko integration. Connect it first.")


# ------------------------------------------------------------------------------------------------ sign in/out


async def sign_in_form(request: Request) -> Response:
    ui: UiContext = request.app.state.ui
    session, new_cookie = ui.session(request, create=True)
    assert session is not None
    if session.signed_in:
        return _redirect(ui.safe_next(request.query_params.get("next")))
    response = ui.render(request, session, "sign_in.html", title="Sign in", next=request.query_params.get("next"),
                         errors={})
    if new_cookie:
        ui.attach(request, response, new_cookie)
    return response


async def sign_in(request: Request) -> Response:
    ui: UiContext = request.app.state.ui
    session, _ = ui.session(request)
    if session is None:  # no cookie: the form was not loaded from us (or the session expired meanwhile)
        return _forbidden(ui, request, "your session ended before you signed in")
    refusal = await _check_form(request, ui, session)
    if refusal is not None:
        return refusal
    presented = request.state.form.get("secret", "")
    if not ui.secrets.matches(presented):
        await asyncio.sleep(SIGN_IN_FAILURE_DELAY_S)
        logger.warning("page sign-in refused: wrong token or password")
        return ui.render(request, session, "sign_in.html", status=401, title="Sign in",
                         next=request.state.form.get("next"),
                         errors={"secret": "This is not the API token or the operator password."})
    response = _redirect(ui.safe_next(request.state.form.get("next")))
    ui.sign_in(request, response)  # a new session id: the one before sign-in is dropped
    logger.info("page sign-in")
    return response


async def sign_out(request: Request, ui: UiContext, api: ApiContext, session: Session) -> Response:
    response = _redirect("/ui/sign-in")
    ui.sign_out(request, response)
    return response


# ------------------------------------------------------------------------------------------------ accounts


async def accounts(request: Request, ui: UiContext, api: ApiContext, session: Session) -> Response:
    only = request.query_params.get("state") or None
    if only not in (None, *overview.STATES):
        only = None
    rows = await run_in_threadpool(overview.accounts_overview, api.engine, api.instance, only=only)
    return ui.render(request, session, "accounts.html", title="iiko accounts", rows=rows, only=only,
                     states=overview.STATES, state_words=overview.STATE_WORDS, entities=ENTITY_NAMES,
                     freshness_hours=overview.freshness_hours())


async def _account_page(request: Request, ui: UiContext, api: ApiContext, session: Session, account_id: str, *,
                        status: int = 200, errors: dict[str, str] | None = None,
                        values: dict[str, str] | None = None) -> Response:
    """The account page: its entities, recent runs, and the progress of the run asked for or running now."""

    def work() -> dict[str, Any]:
        row = overview.account_overview(api.engine, api.instance, account_id)
        if row is None:
            raise _NotFound(f"Account {account_id} has no iiko integration. Connect it first.")
        watched = request.query_params.get("run") or row.running_run_id
        progress = _progress(api, account_id, watched) if watched else None
        return {"row": row, "runs": overview.recent_runs(api.instance, account_id), "progress": progress}

    data = await run_in_threadpool(work)
    return ui.render(request, session, "account.html", status=status, title=data["row"].label, **data,
                     dated=forms.dated_entities(), errors=errors or {}, values=values or {})


async def account(request: Request, ui: UiContext, api: ApiContext, session: Session) -> Response:
    return await _account_page(request, ui, api, session, _account_param(request))


async def rename(request: Request, ui: UiContext, api: ApiContext, session: Session) -> Response:
    account_id = _account_param(request)
    errors = forms.FormErrors()
    name = forms.display_name(request.state.form.get("display_name"), errors)
    if errors:
        session.flash("error", errors.by_field["display_name"])
        return _redirect(_account_url(account_id))
    await run_in_threadpool(set_display_name, api.engine, account_id, name)
    session.flash("info", f"Display name {'saved' if name else 'removed'}.")
    return _redirect(_account_url(account_id))


# ------------------------------------------------------------------------------------------------ connect


async def connect_form(request: Request, ui: UiContext, api: ApiContext, session: Session) -> Response:
    existing = request.path_params.get("account_id")
    values: dict[str, str] = {"account_id": str(uuid.uuid4()), "base_url": "", "username": "", "display_name": ""}
    if existing is not None:
        account_id = _account_param(request)
        values = await run_in_threadpool(_reconnect_values, api, account_id)
    return ui.render(request, session, "connect.html", title="Reconnect an account" if existing else
                     "Connect an account", values=values, errors={}, reconnect=existing is not None)


def _reconnect_values(api: ApiContext, account_id: str) -> dict[str, str]:
    """The stored address and user name (never the password) to start a reconnect from."""
    from iiko_pipeline.warehouse.labels import display_names

    row = api.account(account_id)
    if row is None:
        raise _NotFound(f"Account {account_id} has no iiko integration. Connect it first.")
    try:
        username = load_credentials(api.engine, api.keyring, account_id, IIKO).username
    except (CredentialsNotFoundError, ValueError):  # a key that is gone: the operator types it again
        username = ""
    return {"account_id": account_id, "base_url": row.base_url or "", "username": username,
            "display_name": display_names(api.engine, [account_id]).get(account_id, ""),
            "allow_http": "on" if row.allow_http else ""}


async def connect(request: Request, ui: UiContext, api: ApiContext, session: Session) -> Response:
    form = request.state.form
    reconnect = "account_id" in request.path_params
    errors = forms.FormErrors()
    account_id = _account_param(request) if reconnect else forms.account_id(form.get("account_id"), errors)
    name = forms.display_name(form.get("display_name"), errors)
    body = forms.connect_request(form, errors)
    values = {k: form.get(k, "") for k in ("base_url", "username", "display_name", "allow_http")}  # no password
    values["account_id"] = account_id or form.get("account_id", "")
    if errors or body is None or account_id is None:
        return ui.render(request, session, "connect.html", status=422, title="Connect an account", values=values,
                         errors=errors.by_field, reconnect=reconnect)

    def work() -> Any:
        had_working = (row := api.account(account_id)) is not None and row.is_connected
        result = connect_account(api.engine, api.keyring, account_id, body.username, body.password, body.base_url,
                                 allow_http=body.allow_http, settings=api.connect_settings,
                                 register_partition=api.register_partition)
        if result.is_connected and name:
            set_display_name(api.engine, account_id, name)
        return result, had_working

    try:
        result, had_working = await run_in_threadpool(work)
    except IntegrationsDisabledError as exc:
        errors.add("", str(exc))
        result = None
    if result is not None and result.is_connected:
        logger.info("account %s connected from the pages", account_id)
        session.flash("info", "Connected: iiko accepted the login. The account's first sync starts within minutes "
                              "(or start it now below).")
        return _redirect(_account_url(account_id))
    if result is not None:
        logger.info("account %s: connect from the pages failed: %s", account_id, result.connection_error)
        where, words = CONNECT_FAILURES.get(result.failure_kind or "", ("", "The login to iiko failed."))
        kept = " Nothing was changed: the account keeps its working credentials." if had_working else ""
        errors.add(where, f"{words}{kept} iiko's answer: {result.connection_error}")
    return ui.render(request, session, "connect.html", status=422, title="Connect an account", values=values,
                     errors=errors.by_field, reconnect=reconnect)


# ------------------------------------------------------------------------------------------------ runs


async def sync(request: Request, ui: UiContext, api: ApiContext, session: Session) -> Response:
    account_id = _account_param(request)
    errors = forms.FormErrors()
    entities = forms.sync_entities(request.state.form.get("entity"), errors)
    if entities is None:
        session.flash("error", errors.by_field["entity"])
        return _redirect(_account_url(account_id))
    what = request.state.form["entity"]
    return await _start(ui, api, session, account_id, entities, what, {}, f"Sync of {what} started.")


async def backfill(request: Request, ui: UiContext, api: ApiContext, session: Session) -> Response:
    account_id = _account_param(request)
    errors = forms.FormErrors()
    window = forms.backfill(request.state.form, errors)
    if window is None:
        values = {k: request.state.form.get(k, "") for k in ("entity", "date_from", "date_to")}
        return await _account_page(request, ui, api, session, account_id, status=422, errors=errors.by_field,
                                   values=values)
    run_config = invoice_run_config(window.date_from, window.date_to)
    return await _start(ui, api, session, account_id, [window.entity], window.entity, run_config,
                        f"Backfill of {window.entity} from {window.date_from} to {window.date_to} started.")


async def _start(ui: UiContext, api: ApiContext, session: Session, account_id: str, entities: list[str],
                 requested: str, run_config: dict, started: str) -> Response:
    def work() -> str:
        _known_account(api, account_id)
        launch = start_sync(api.instance, api.engine, api.keyring, account_id, entities, run_config=run_config,
                            extra_tags={TRIGGER_TAG: "ui", REQUESTED_TAG: requested})
        api.watch(launch)
        return launch.run_id

    try:
        run_id = await run_in_threadpool(work)
    except AccountBusyError as exc:
        session.flash("error", f"{exc}.")
        return _redirect(_account_url(account_id, f"?run={exc.run_id}" if exc.run_id else ""))
    except (IntegrationsDisabledError, ValueError) as exc:
        session.flash("error", str(exc))
        return _redirect(_account_url(account_id))
    logger.info("account %s: %s started from the pages (run %s)", account_id, requested, run_id)
    session.flash("info", started)
    return _redirect(_account_url(account_id, f"?run={run_id}#progress"))


def _progress(api: ApiContext, account_id: str, run_id: str) -> dict[str, Any]:
    """A run of the account as the progress panel shows it: status, done, and when done the counts per entity
    and the failure, if any. A run not created yet (its process is starting) is STARTING."""
    try:
        run_id = str(uuid.UUID(run_id))
    except ValueError:
        raise _NotFound("There is no such run (a run id is a UUID).") from None
    run = api.instance.get_run_by_id(run_id)
    if run is None or run.tags.get(ACCOUNT_TAG) != account_id:
        if run is None and api.watching(run_id):
            return {"run_id": run_id, "status": "STARTING", "done": False, "results": {}, "error": None}
        raise _NotFound(f"Account {account_id} has no run {run_id}.")
    body: dict[str, Any] = {"run_id": run_id, "status": run.status.value, "done": run.status not in IN_PROGRESS,
                            "requested": run.tags.get(REQUESTED_TAG), "results": {}, "error": None}
    if body["done"]:
        outcome = read_outcome(api.instance, run_id, run.status == dg.DagsterRunStatus.SUCCESS, ENTITY_NAMES)
        body["results"] = {name: {k: result.get(k, 0) for k in ("total", "created", "updated", "errors")}
                           for name, result in outcome.results.items()}
        if not outcome.success:
            failure = outcome.iiko_failure()
            body["error"] = (f"iiko failed: {failure}" if failure else
                             "; ".join(f.splitlines()[0][:300] for f in outcome.failures) or
                             "; ".join(f"{e}: {d}" for e, d in outcome.rejected.items()) or "the run failed")
    return body


async def progress(request: Request, ui: UiContext, api: ApiContext, session: Session) -> Response:
    account_id = _account_param(request)
    body = await run_in_threadpool(_progress, api, account_id, request.path_params["run_id"])
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


# ------------------------------------------------------------------------------------------------ disconnect


async def disconnect_form(request: Request, ui: UiContext, api: ApiContext, session: Session) -> Response:
    account_id = _account_param(request)
    row = await run_in_threadpool(overview.account_overview, api.engine, api.instance, account_id)
    if row is None:
        raise _NotFound(f"Account {account_id} has no iiko integration.")
    return ui.render(request, session, "disconnect.html", title=f"Disconnect {row.label}", row=row)


async def disconnect(request: Request, ui: UiContext, api: ApiContext, session: Session) -> Response:
    account_id = _account_param(request)
    if request.state.form.get("confirm") != "yes":
        session.flash("error", "Tick the box to confirm that the account should be disconnected.")
        return _redirect(_account_url(account_id, "/disconnect"))

    try:
        existed = await run_in_threadpool(disconnect_account, api.instance, api.engine, api.keyring, account_id)
    except AccountBusyError as exc:
        session.flash("error", f"Cannot disconnect while a sync runs: {exc}.")
        return _redirect(_account_url(account_id))
    if not existed:
        raise _NotFound(f"Account {account_id} has no iiko integration.")
    logger.info("account %s disconnected from the pages (credentials removed, data kept)", account_id)
    session.flash("info", f"Account {account_id} disconnected: its iiko credentials are deleted; the data already "
                          "synced stays in the warehouse. Connect it again to resume syncing.")
    return _redirect("/ui/")
