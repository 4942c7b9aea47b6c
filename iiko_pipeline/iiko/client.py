"""The iiko Server HTTP client: one login per run, strictly sequential calls, logout always.

Why it looks like this (iiko Server API §5, §11):

* Every login takes one seat of the API licence until logout or token expiry (~1 h). Retries and parallel
  runs that each log in are how seats leak, so the client logs in once in ``__enter__``, always logs out in
  ``__exit__``, and on a 401 logs in again exactly once.
* iiko requires strictly sequential requests: one lock serialises every logical call (including its
  retries and a re-login), so sharing a client between threads is safe and never concurrent.
* Transient failures (5xx, resets, incomplete reads, timeouts, truncated XML) are retried with exponential
  backoff and full jitter, bounded by attempts and total time. Everything that a retry cannot fix
  (400, 401 after re-login, 403, HTML pages, wrong roots or content types) fails at once.
* Disconnect only on proof (issue 13.4): the refusals that would mark an account disconnected (a wrong
  password at login, a blocked API module, missing rights) are believed only if they come again on a
  second attempt a pause later, after a fresh login (one re-check, never a loop); only then is the error
  ``definitive``. A full licence (no free seat) is not re-checked: a new login cannot help.
* Secrets: the password is hashed in ``__init__`` and not kept; the hash and the token live in private
  attributes only and are scrubbed from every message and log line we produce.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as day_time
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import requests

from . import olap as olap_bodies
from .answers import by_department, json_answer, olap_answer, raise_for_error, said, token_answer, xml_answer
from .errors import IikoApiError, IikoAuthError, IikoError, IikoLicenceBlockedError, IikoPermissionError
from .models import DateWindow, IikoJsonResponse, IikoResponse, InvoiceWindow, ServerInfo
from .parsing import (
    CORPORATE_RECORD,
    CORPORATE_ROOT,
    EMPLOYEES_RECORD,
    EMPLOYEES_ROOT,
    INVOICES_RECORD,
    INVOICES_ROOT,
    SUPPLIERS_RECORD,
    SUPPLIERS_ROOT,
    Record,
    iter_corporate_items,
    iter_invoice_documents,
)
from .redact import install_third_party_log_redaction, redact_text, redact_url
from .retry import RetryPolicy
from .transport import BodySink, Limits, RawAnswer, send
from .windows import as_date, split_windows
from .xml import parse_document

__all__ = ["ClientSettings", "IikoClient", "RetryPolicy", "password_hash"]

#: Recognises an answer body already known to be a complete document (its check may be left out), by the
#: SHA-256 (hex) of its bytes.
Checked = Callable[[str], bool]

log = logging.getLogger("iiko_pipeline.iiko")

API_PREFIX = "/resto/api"
XML_TYPES = frozenset({"application/xml"})
# get_server_info.jsp lives outside the REST API; a JSP may well answer text/xml, and a health probe
# should not fail on that.
SERVER_INFO_TYPES = frozenset({"application/xml", "text/xml"})
#: The iiko version that introduced the v2 product lists: older servers answer 404 (IikoNotAvailableError).
V2_NOMENCLATURE_SINCE = "6.1"
INCLUDE_DELETED = (("includeDeleted", "true"),)
OLAP = "v2/reports/olap"
STORE_BALANCES = "v2/reports/balance/stores"
CASH_SHIFTS = "v2/cashshifts/list"
#: The iiko versions that introduced OLAP v2 and the stock balance report (older servers answer 404).
OLAP_SINCE = "4.1"
STORE_BALANCES_SINCE = "5.2"
#: What iiko's docs ask a JSON body with Cyrillic to be sent as.
JSON_UTF8 = "application/json;charset=UTF-8"
#: ``timestamp`` of the balance report: ``yyyy-MM-dd'T'HH:mm:ss``, the server's local time.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"
#: A daily stock snapshot is taken at the last second of the day.
END_OF_DAY = day_time(23, 59, 59)
# POST login rejected as a method (404/405/415), or 400 "Argument ... must not be null": a server that
# reads /auth parameters from the query string only. A real 400 fails the GET attempt the same way.
AUTH_FALLBACK_STATUSES = frozenset({400, 404, 405, 415})
#: The refusals that would mark an account disconnected, so each is believed only if it persists (issue 13.4).
#: `IikoLicenceError` (every seat taken) is not one: it frees itself and another login would take a seat.
REFUSALS: tuple[type[IikoApiError], ...] = (IikoAuthError, IikoLicenceBlockedError, IikoPermissionError)
#: Of those, the ones a data call can get with a valid token; a login's own refusals are re-checked at login.
CALL_REFUSALS: tuple[type[IikoApiError], ...] = (IikoLicenceBlockedError, IikoPermissionError)


def _persisted(first: IikoApiError, second: IikoApiError) -> bool:
    """Whether ``second`` is the same refusal as ``first`` (the proof): one of a different kind, or a
    transient one, only shows that the server's answers are changing."""
    return type(second) is type(first) and not second.transient


def password_hash(password: str) -> str:
    """The ``pass`` parameter of ``/auth``: lowercase hex SHA-1 of the UTF-8 bytes, no salt (API §5.1)."""
    return hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class ClientSettings:
    """Connection settings of one iiko server.

    ``verify``: True (system CAs), False (no TLS verification; warned about once) or the path of a CA
    bundle, e.g. for a self-signed on-premise server. Timeouts are per socket operation: the read timeout
    must cover the server's silent time before the first byte of a large export. ``auth_method``: "post"
    (form body, the password hash stays out of URLs and access logs; falls back to GET on 400/404/405/415)
    or "get" (query string, as most public clients do).
    """

    verify: bool | str = True
    connect_timeout: float = 15.0
    read_timeout: float = 300.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    invoice_window_days: int = 7
    report_window_days: int = 7  # business days per OLAP request and opening days per cash-shift request
    auth_method: Literal["post", "get"] = "post"
    max_answer_bytes: int = Limits.max_bytes  # one answer, decompressed; more is refused (not retried)
    request_deadline: float = Limits.deadline  # one exchange, start to last byte; later is a retryable failure

    def __post_init__(self) -> None:
        if self.auth_method not in ("post", "get"):
            raise ValueError(f"auth_method must be 'post' or 'get', not {self.auth_method!r}")
        if self.connect_timeout <= 0 or self.read_timeout <= 0 or self.request_deadline <= 0:
            raise ValueError("timeouts must be positive numbers of seconds")
        if self.max_answer_bytes < 1:
            raise ValueError("max_answer_bytes must be at least 1")
        if isinstance(self.invoice_window_days, bool) or self.invoice_window_days < 1:
            raise ValueError("invoice_window_days must be at least 1")
        if isinstance(self.report_window_days, bool) or not isinstance(self.report_window_days, int) \
                or self.report_window_days < 1:
            raise ValueError("report_window_days must be at least 1")
        if not isinstance(self.verify, bool | str) or self.verify == "":
            raise ValueError("verify must be True, False or the path of a CA bundle")


@dataclass(frozen=True)
class _Call:
    """One logical request (retried as a unit)."""

    method: str
    endpoint: str  # relative to /resto/api, as shown in errors
    path: str  # absolute path on the server
    params: Sequence[tuple[str, str]] = ()
    data: dict[str, str] | None = None
    body: bytes | None = None  # a ready request body (JSON), sent with `content_type`
    content_type: str | None = None
    needs_key: bool = True
    is_login: bool = False
    since: str | None = None  # the iiko version that introduced the method: a 404 means an older server
    sink: Callable[[], BodySink] | None = None  # where a 2xx body goes as it arrives (not memory)


class IikoClient:
    """A context-managed session with one iiko Server (see the module docstring for the rules).

    ``base_url`` is ``scheme://host:port`` (a trailing ``/resto/api`` or ``/resto`` is tolerated).
    ``session`` may be passed to share connection pools or to add adapters; the client then does not
    close it. Use as ``with IikoClient(...) as client:``; ``login()``/``logout()`` exist for callers that
    cannot use ``with`` (they must call ``logout()`` in ``finally``).
    """

    def __init__(self, base_url: str, login: str, password: str, settings: ClientSettings | None = None,
                 session: requests.Session | None = None,
                 on_token: Callable[[str | None], None] | None = None) -> None:
        """`on_token` is told each new session token after a login and None after the logout, so a caller can
        keep the live token where a recovering process finds it (encrypted: it is a secret) and free the seat
        if this process dies (see `release_session`)."""
        self._settings = settings or ClientSettings()
        self._on_token = on_token
        self._base = self._normalise_base(base_url)
        self._login_name = login
        self._pass_hash = password_hash(password)  # the plain password is not kept
        self._token: str | None = None
        # Between login() and logout(): the caller wants a session. A re-login that failed (the server was
        # restarting, a proxy answered) leaves no token; the next call logs in again instead of refusing.
        self._session_wanted = False
        self._lock = threading.Lock()
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._session.headers.setdefault("Accept", "application/xml, application/json;q=0.9, text/plain;q=0.5")
        self._sleep: Callable[[float], None] = time.sleep
        self._rng = random.Random()  # jitter only, not cryptography
        install_third_party_log_redaction()
        verify = self._settings.verify
        if isinstance(verify, str) and not os.path.exists(verify):
            raise ValueError(f"verify points to a CA bundle that does not exist: {verify}")
        if verify is False:
            log.warning(
                "TLS certificate verification is disabled for %s (verify=False): anyone on the network "
                "path could read the session token. Prefer the path of a CA bundle.", self._display_base,
            )

    # ----------------------------------------------------------------------------------------- basics

    @staticmethod
    def _normalise_base(base_url: str) -> str:
        base = base_url.strip().rstrip("/")
        for suffix in (API_PREFIX, "/resto"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must look like https://host:port, got {redact_url(base_url)!r}")
        return base

    @property
    def _display_base(self) -> str:
        return redact_url(self._base)

    @property
    def base_url(self) -> str:
        """The server address without ``/resto/api`` (user info redacted)."""
        return self._display_base

    @property
    def settings(self) -> ClientSettings:
        return self._settings

    @property
    def logged_in(self) -> bool:
        """True while the client holds a token (and therefore a licence seat)."""
        return self._token is not None

    def __repr__(self) -> str:
        state = "logged in" if self._token else "logged out"
        return f"IikoClient({self._display_base!r}, login={self._login_name!r}, {state})"

    def _secrets(self) -> tuple[str | None, ...]:
        return (self._token, self._pass_hash)

    def _scrub(self, text: str) -> str:
        return redact_text(text, self._secrets())

    # ------------------------------------------------------------------------------- context manager

    def __enter__(self) -> IikoClient:
        self.login()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.logout()
        except Exception as error:  # logout must never mask the body's exception nor fail a good run
            log.warning("logout from %s failed and was ignored: %s", self._display_base,
                        self._scrub(type(error).__name__))
        finally:
            if self._owns_session:
                self._session.close()

    def login(self) -> None:
        """Log in (takes one licence seat) unless already logged in."""
        with self._lock:
            self._session_wanted = True
            if self._token is None:
                self._login_locked()

    def logout(self) -> None:
        """Log out and free the seat. Failures are logged (without the token) and swallowed."""
        with self._lock:
            self._session_wanted = False
            self._logout_locked()

    # ------------------------------------------------------------------------------------ auth flow

    def _auth_call(self, method: str) -> _Call:
        credentials = {"login": self._login_name, "pass": self._pass_hash}
        if method == "post":
            return _Call("POST", "auth", f"{API_PREFIX}/auth", data=credentials, needs_key=False,
                         is_login=True)
        return _Call("GET", "auth", f"{API_PREFIX}/auth", params=tuple(credentials.items()), needs_key=False,
                     is_login=True)

    @property
    def _recheck_delay(self) -> float:
        """The pause before a refusal is checked again: long enough for a restart or a licence reload to
        settle, tied to the retry policy so tests and impatient callers can shrink it."""
        return self._settings.retry.base_delay * 4

    def _login_locked(self) -> None:
        """Log in. A refused login (wrong password, blocked module, no rights) is believed only if a second
        one, a pause later, is refused the same way (an iiko restarting can refuse a correct password for a
        moment): only then is the error `definitive`."""
        try:
            raw = self._login_once()
        except REFUSALS as first:
            if first.transient:
                raise
            log.warning("%s refused the login (%s, HTTP %s); trying once more in %.1f s before believing it",
                        self._display_base, type(first).__name__, first.status, self._recheck_delay)
            self._login_once_more(first)
            return
        self._take_token(raw)

    def _login_once_more(self, first: IikoApiError) -> None:
        """The one re-check of a refusal: pause, log in again; a login refused the same way is the proof (raised
        `definitive`), one that works keeps its token."""
        self._sleep(self._recheck_delay)
        try:
            raw = self._login_once()
        except REFUSALS as second:
            second.definitive = _persisted(first, second)
            raise
        self._take_token(raw)

    def _take_token(self, raw: RawAnswer) -> None:
        """Keep the token of a successful login (and tell `on_token`): from here on a logout is owed."""
        self._token = token_answer(raw, endpoint="auth")
        log.info("logged in to %s as %r (one API licence seat taken)", self._display_base, self._login_name)
        if self._on_token is not None:
            self._on_token(self._token)

    def _login_once(self) -> RawAnswer:
        method = self._settings.auth_method
        fallback = False
        try:
            raw = self._perform(self._auth_call(method))
        except IikoError as error:
            if not (method == "post" and error.status in AUTH_FALLBACK_STATUSES):
                raise
            fallback = True
            log.info("POST login is not supported by %s (HTTP %s); falling back to GET",
                     self._display_base, error.status)
        if fallback:
            raw = self._perform(self._auth_call("get"))
        return raw

    def _logout_locked(self) -> None:
        token = self._token
        if token is None:
            return
        try:
            self._logout_token(token)
        finally:
            self._token = None
            self._forget_cookie()
            if self._on_token is not None:
                with contextlib.suppress(Exception):  # the seat is freed; a stale escrow only costs a no-op logout
                    self._on_token(None)

    def _logout_token(self, token: str) -> None:
        """GET ``/logout?key=``, then a POST form as fallback; 401 means the token is already gone."""
        calls = (
            _Call("GET", "logout", f"{API_PREFIX}/logout", params=(("key", token),), needs_key=False),
            _Call("POST", "logout", f"{API_PREFIX}/logout", data={"key": token}, needs_key=False),
        )
        policy = self._settings.retry
        short = RetryPolicy(max_attempts=min(2, policy.max_attempts), base_delay=policy.base_delay,
                            max_delay=policy.max_delay, max_total=min(policy.max_total, 10.0))
        last: IikoError | None = None
        for index, call in enumerate(calls):
            try:
                self._perform(call, policy=short if index == 0 else RetryPolicy(max_attempts=1))
            except IikoError as error:
                if error.status == 401:
                    log.info("logout from %s: the token had already expired (seat already free)",
                             self._display_base)
                    return
                last = error
                continue
            log.info("logged out from %s (licence seat freed)", self._display_base)
            return
        if last is not None:
            log.warning(
                "logout from %s failed (%s); the seat stays taken until the token expires (~1 h)",
                self._display_base, self._scrub(str(last)),
            )

    @classmethod
    def release_session(cls, base_url: str, token: str, settings: ClientSettings | None = None) -> None:
        """Log out a session token this process did not log in (one left by a process that died), so its
        licence seat is free at once instead of when the token expires (an hour by default). Best effort:
        an expired token is already free; failures are logged without the token."""
        client = cls(base_url, "-", "-", settings=settings)
        client._token = token  # scrubbed from every message, as for our own sessions
        try:
            client._logout_token(token)
        finally:
            client._token = None
            client._session.close()

    def _forget_cookie(self) -> None:
        """Drop the ``key`` cookie the server set at login (it holds the token)."""
        jar = self._session.cookies
        for cookie in list(jar):
            if cookie.name == "key":
                jar.clear(cookie.domain, cookie.path, cookie.name)

    def _relogin_locked(self) -> None:
        """After a 401: free the old token if it is still alive (best effort), then log in again."""
        old = self._token
        if old is not None:
            # Still in self._token during this call, so that any echo of it is scrubbed from messages.
            with contextlib.suppress(IikoError):  # expired tokens answer 401: nothing to free
                self._perform(_Call("GET", "logout", f"{API_PREFIX}/logout", params=(("key", old),),
                                    needs_key=False), policy=RetryPolicy(max_attempts=1))
        self._token = None
        self._forget_cookie()
        self._login_locked()

    def _recheck_locked(self, first: IikoApiError) -> None:
        """After a data call's blocked-module or permission refusal: log out (free the seat), pause, log in
        once more. A login refused the same way is the proof (raised `definitive`); the caller repeats the
        call on success. The login is not itself re-checked: this is the one re-check of the call."""
        log.warning("%s refused %s (%s, HTTP %s); logging out and in again in %.1f s to check that it persists",
                    self._display_base, first.endpoint, type(first).__name__, first.status, self._recheck_delay)
        self._logout_locked()
        self._login_once_more(first)

    # ----------------------------------------------------------------------------- request engine

    def _display(self, call: _Call, params: Sequence[tuple[str, str]]) -> str:
        query = f"?{urlencode(list(params))}" if params else ""
        return f"{call.method} {self._scrub(redact_url(call.path + query))}"

    def _attempt(self, call: _Call) -> RawAnswer:
        """One HTTP exchange plus the status mapping; raises :class:`IikoError` for any failure."""
        params = list(call.params)
        if call.needs_key:
            if self._token is None:
                raise RuntimeError("IikoClient is not logged in: use `with IikoClient(...) as client:`")
            params.append(("key", self._token))
        display = self._display(call, params)
        raw = send(
            self._session, call.method, self._base + call.path, endpoint=call.endpoint, display=display,
            params=params or None, data=call.body if call.body is not None else call.data,
            timeout=(self._settings.connect_timeout, self._settings.read_timeout),
            verify=self._settings.verify, secrets=self._secrets(),
            limits=Limits(self._settings.max_answer_bytes, self._settings.request_deadline),
            headers={"Content-Type": call.content_type} if call.content_type else None, sink=call.sink,
        )
        log.debug("%s -> HTTP %s, %d bytes, %.3f s", display, raw.status, len(raw.body), raw.elapsed)
        raise_for_error(raw, endpoint=call.endpoint, display=display, login=self._login_name,
                        is_login=call.is_login, secrets=self._secrets(), since=call.since)
        return raw

    def _perform(self, call: _Call, *, policy: RetryPolicy | None = None,
                 check: Callable[[RawAnswer, str], object] | None = None) -> RawAnswer:
        """Run ``call`` with retries of transient failures; ``check`` validates a 2xx answer (and may
        raise a transient :class:`IikoResponseError` for truncated bodies, which is retried too)."""
        policy = policy or self._settings.retry
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            failure: IikoError
            try:
                raw = self._attempt(call)
                if check is not None:
                    try:
                        check(raw, self._display(call, call.params))
                    except BaseException:
                        if raw.sink is not None:  # a refused answer is not kept
                            raw.sink.discard()
                        raise
                return raw
            except IikoError as error:
                if not error.transient:
                    if attempt > 1:
                        error.with_attempts(attempt)
                    raise
                failure = error
            delay = policy.next_delay(attempt, time.monotonic() - started, self._rng)
            if delay is None:
                raise failure.with_attempts(attempt)
            log.warning("attempt %d/%d of %s failed: %s; retrying in %.2f s", attempt, policy.max_attempts,
                        call.endpoint, self._scrub(failure.message), delay)
            self._sleep(delay)

    def _call(self, call: _Call, check: Callable[[RawAnswer, str], object] | None = None) -> RawAnswer:
        """A data call under the lock: retries, on a 401 one re-login and one repeat, and on a blocked-module
        or permission refusal one re-check (`_recheck_locked`) and one repeat: the same refusal again is
        raised `definitive`, a repeat that works carries on as if nothing happened."""
        with self._lock:
            if self._token is None and self._session_wanted and call.needs_key:
                log.warning("%s: the last re-login failed; logging in again before %s", self._display_base,
                            call.endpoint)
                self._login_locked()
            try:
                return self._call_locked(call, check)
            except CALL_REFUSALS as error:
                # A refusal of a re-login (after a 401) was already re-checked by `_login_locked`.
                if error.transient or error.definitive or error.endpoint == "auth":
                    raise
                first = error
            self._recheck_locked(first)
            try:
                return self._call_locked(call, check)
            except CALL_REFUSALS as second:
                second.definitive = second.definitive or _persisted(first, second)
                raise

    def _call_locked(self, call: _Call, check: Callable[[RawAnswer, str], object] | None) -> RawAnswer:
        """`call` with retries, and on a 401 one re-login and one repeat (the caller holds the lock)."""
        try:
            return self._perform(call, check=check)
        except IikoAuthError as error:
            if error.status != 401:
                raise
        log.warning("%s answered 401 (token expired or server restarted); logging in again once",
                    call.endpoint)
        self._relogin_locked()
        try:
            return self._perform(call, check=check)
        except IikoAuthError as error:
            if error.status != 401:
                raise
            second = error
        raise IikoAuthError(  # the login just worked: not proof that the credentials are wrong
            "401 again right after a fresh login: the server rejects new tokens (it may be starting, or "
            f"the user lost its API rights). Check the server and the user. {said(second.text)}",
            endpoint=call.endpoint, status=401, text=second.text, transient=True,
        )

    def _xml(self, endpoint: str, root: str, record: str | None, params: Sequence[tuple[str, str]] = (),
             *, accepted: frozenset[str] = XML_TYPES, needs_key: bool = True,
             path: str | None = None, checked: Checked | None = None,
             sink: Callable[[], BodySink] | None = None) -> IikoResponse:
        holder: list[IikoResponse] = []

        def check(raw: RawAnswer, display: str) -> None:
            holder[:] = [xml_answer(raw, endpoint=endpoint, display=display, expected_root=root,
                                    record_tag=record, accepted=accepted, checked=checked)]

        call = _Call("GET", endpoint, path or f"{API_PREFIX}/{endpoint}", params=tuple(params),
                     needs_key=needs_key, sink=sink)
        if needs_key:
            self._call(call, check)
        else:
            with self._lock:
                self._perform(call, check=check)
        return holder[0]

    def _json(self, endpoint: str, params: Sequence[tuple[str, str]] = (), *,
              since: str | None = None) -> IikoJsonResponse:
        holder: list[IikoJsonResponse] = []

        def check(raw: RawAnswer, display: str) -> None:
            holder[:] = [json_answer(raw, endpoint=endpoint, display=display)]

        self._call(_Call("GET", endpoint, f"{API_PREFIX}/{endpoint}", params=tuple(params), since=since), check)
        return holder[0]

    # -------------------------------------------------------------------------------- endpoints

    def server_info(self) -> ServerInfo:
        """``/resto/get_server_info.jsp``: name, edition, version; needs no login and takes no seat."""
        response = self._xml("get_server_info.jsp", "r", None, (("encoding", "UTF-8"),),
                             accepted=SERVER_INFO_TYPES, needs_key=False, path="/resto/get_server_info.jsp")
        root = parse_document(response.body, response.endpoint, "r", status=response.status)

        def text(tag: str) -> str | None:
            element = root.find(tag)
            value = element.text if element is not None else None
            return (value.strip() or None) if value is not None else None

        return ServerInfo(server_name=text("serverName"), edition=text("edition"), version=text("version"),
                          computer_name=text("computerName"), server_state=text("serverState"))

    @staticmethod
    def _revision(revision_from: int | None) -> tuple[tuple[str, str], ...]:
        return () if revision_from is None else (("revisionFrom", str(int(revision_from))),)

    def departments(self, revision_from: int | None = None) -> IikoResponse:
        """All corporate units (``corporateItemDtoes``); filter by ``type`` == DEPARTMENT downstream."""
        return self._xml("corporation/departments", CORPORATE_ROOT, CORPORATE_RECORD,
                         self._revision(revision_from))

    def stores(self, revision_from: int | None = None) -> IikoResponse:
        """All stores (``corporateItemDtoes`` of type STORE)."""
        return self._xml("corporation/stores", CORPORATE_ROOT, CORPORATE_RECORD, self._revision(revision_from))

    def suppliers(self, revision_from: int | None = None) -> IikoResponse:
        """All suppliers, deleted ones included (``employees``)."""
        return self._xml("suppliers", SUPPLIERS_ROOT, SUPPLIERS_RECORD, self._revision(revision_from))

    def employees(self, revision_from: int | None = None) -> IikoResponse:
        """All employees, deleted ones included (``employees/employee``, the suppliers' schema: parse with
        :func:`~iiko_pipeline.iiko.parsing.iter_employees`)."""
        return self._xml("employees", EMPLOYEES_ROOT, EMPLOYEES_RECORD,
                         INCLUDE_DELETED + self._revision(revision_from))

    def products(self) -> IikoJsonResponse:
        """All products, deleted ones included (``v2/entities/products/list``, JSON; iiko 6.1+, else
        :class:`IikoNotAvailableError`)."""
        return self._json("v2/entities/products/list", INCLUDE_DELETED, since=V2_NOMENCLATURE_SINCE)

    def product_groups(self) -> IikoJsonResponse:
        """All product groups, deleted ones included (``v2/entities/products/group/list``, JSON; iiko 6.1+)."""
        return self._json("v2/entities/products/group/list", INCLUDE_DELETED, since=V2_NOMENCLATURE_SINCE)

    def measure_units(self) -> IikoJsonResponse:
        """All measure units, deleted ones included (``v2/entities/list?rootType=MeasureUnit``, JSON)."""
        return self._json("v2/entities/list", (("rootType", "MeasureUnit"), *INCLUDE_DELETED))

    def incoming_invoices_window(self, date_from: date, date_to: date, checked: Checked | None = None,
                                 sink: Callable[[], BodySink] | None = None) -> IikoResponse:
        """One export request for the inclusive range (keep it short: a week at most). ``checked`` recognises
        bodies already known to be complete documents (see :func:`~iiko_pipeline.iiko.answers.xml_answer`);
        ``sink`` makes a fresh :class:`BodySink` per attempt the body is written to instead of memory (the
        response's ``body`` is then empty and its ``sink`` holds the answer)."""
        params = (("from", as_date(date_from).isoformat()), ("to", as_date(date_to).isoformat()))
        return self._xml("documents/export/incomingInvoice", INVOICES_ROOT, INVOICES_RECORD, params, checked=checked,
                         sink=sink)

    def incoming_invoice_windows(self, date_from: date, date_to: date, anchor: date | None = None,
                                 checked: Checked | None = None, sink: Callable[[], BodySink] | None = None
                                 ) -> Iterator[InvoiceWindow]:
        """One request per window of at most ``invoice_window_days`` days (:func:`split_windows`, on the grid of
        ``anchor`` if given), yielded as soon as it arrives. The lock is held per request only, not while the
        caller works. The range is checked right away (a ``ValueError`` here, not at the first ``next()``)."""
        windows = split_windows(date_from, date_to, self._settings.invoice_window_days, anchor)
        return (InvoiceWindow(start, end, self.incoming_invoices_window(start, end, checked, sink))
                for start, end in windows)

    def incoming_invoices(self, date_from: date, date_to: date) -> Iterator[Record]:
        """Parsed invoice documents of ``[date_from, date_to]``, deduplicated by ``id`` across windows.

        A document re-dated between two window requests can appear in both. The first occurrence wins
        and later ones are skipped: it has already been yielded (streaming cannot take it back), both
        copies are snapshots a few seconds apart with no way to tell which is newer, and the next
        sliding-window run re-reads the document anyway. Only the ids are remembered, not the documents.
        Documents without an id (never seen on 5.4+ servers) are passed through.
        """
        return self._dedup(self.incoming_invoice_windows(date_from, date_to))

    @staticmethod
    def _dedup(windows: Iterator[InvoiceWindow]) -> Iterator[Record]:
        seen: set[str] = set()
        for window in windows:
            for document in iter_invoice_documents(window.response.body, endpoint=window.response.endpoint):
                doc_id = document.get("id")
                if isinstance(doc_id, str):
                    key = doc_id.lower()
                    if key in seen:
                        log.debug("skipping duplicate invoice document %s (seen in an earlier window)", doc_id)
                        continue
                    seen.add(key)
                yield document

    # ---------------------------------------------------------------- reports (issue 15)

    def olap(self, body: Mapping[str, Any]) -> IikoJsonResponse:
        """One OLAP v2 report (``POST v2/reports/olap``, the JSON ``body`` as given; iiko 4.1+). ``items`` are the
        answer's ``data`` rows, every number a ``Decimal``; ``body`` the raw answer. A refused request (iiko's
        400/409) raises the usual typed errors (:class:`IikoBadRequestError` for a 400) with iiko's text when it
        is a known one; an answer that is not a complete OLAP report raises :class:`IikoResponseError`. The
        fixed bodies we send are in :mod:`iiko_pipeline.iiko.olap`."""
        payload = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
        holder: list[IikoJsonResponse] = []

        def check(raw: RawAnswer, display: str) -> None:
            holder[:] = [olap_answer(raw, endpoint=OLAP, display=display)]

        self._call(_Call("POST", OLAP, f"{API_PREFIX}/{OLAP}", body=payload, content_type=JSON_UTF8,
                         since=OLAP_SINCE), check)
        return holder[0]

    def _report_windows(self, date_from: date, date_to: date, build: Callable[[date, date], Mapping[str, Any]],
                        anchor: date | None) -> Iterator[DateWindow]:
        windows = split_windows(date_from, date_to, self._settings.report_window_days, anchor)
        return (DateWindow(start, end, self.olap(build(start, end))) for start, end in windows)

    def sales_windows(self, date_from: date, date_to: date, anchor: date | None = None) -> Iterator[DateWindow]:
        """Daily sales detail (:func:`~iiko_pipeline.iiko.olap.sales_detail_request`) of the business days
        ``[date_from, date_to]``: one request per window of at most ``report_window_days`` days, yielded as it
        arrives (the lock is held per request only); the range is checked right away (``ValueError``); ``anchor`` as in
        :func:`split_windows`."""
        return self._report_windows(date_from, date_to, olap_bodies.sales_detail_request, anchor)

    def sales_total_windows(self, date_from: date, date_to: date,
                            anchor: date | None = None) -> Iterator[DateWindow]:
        """Orders count and sums per restaurant and business day
        (:func:`~iiko_pipeline.iiko.olap.sales_totals_request`), windowed like :meth:`sales_windows`."""
        return self._report_windows(date_from, date_to, olap_bodies.sales_totals_request, anchor)

    def store_balances(self, at: datetime) -> IikoJsonResponse:
        """Stock balances of every store and product at ``at`` (``GET v2/reports/balance/stores?timestamp=``;
        iiko 5.2+): ``[{store, product, amount, sum}]``, zero balances omitted, negative ones kept. ``at`` is the
        server's local time, so it must be a naive ``datetime``."""
        if not isinstance(at, datetime):
            raise TypeError(f"at must be a datetime, got {type(at).__name__}")
        if at.tzinfo is not None:
            raise ValueError("at must be a naive datetime: iiko timestamps are the server's local time")
        return self._json(STORE_BALANCES, (("timestamp", at.strftime(TIMESTAMP_FORMAT)),), since=STORE_BALANCES_SINCE)

    def balance_snapshots(self, date_from: date, date_to: date, anchor: date | None = None) -> Iterator[DateWindow]:
        """One :meth:`store_balances` snapshot per day of ``[date_from, date_to]``, each at that day's last second
        (``YYYY-MM-DDT23:59:59``), as ``DateWindow(day, day, answer)``; yielded as they arrive, the range checked
        right away. (``anchor`` is accepted like the other windowed reads': a day is its own grid.)"""
        del anchor
        days = split_windows(date_from, date_to, 1)
        return (DateWindow(day, day, self.store_balances(datetime.combine(day, END_OF_DAY))) for day, _ in days)

    def cash_shifts(self, open_from: date, open_to: date, revision_from: int | None = None,
                    department_id: str | None = None) -> IikoJsonResponse:
        """Cash shifts opened within ``[open_from, open_to]`` (both inclusive), any status
        (``GET v2/cashshifts/list``); ``revision_from`` returns only shifts changed after that revision,
        ``department_id`` only one department's shifts (the records do not say their department)."""
        params = (("openDateFrom", as_date(open_from).isoformat()), ("openDateTo", as_date(open_to).isoformat()),
                  ("status", "ANY"), *self._revision(revision_from),
                  *((("departmentId", department_id),) if department_id else ()))
        return self._json(CASH_SHIFTS, params)

    def department_ids(self) -> list[str]:
        """The ids of the server's departments (``corporation/departments`` of type DEPARTMENT), in its order."""
        items = iter_corporate_items(self.departments().body, endpoint="corporation/departments")
        return [str(item["id"]) for item in items if item.get("type") == "DEPARTMENT" and item.get("id")]

    def cash_shift_windows(self, date_from: date, date_to: date, anchor: date | None = None) -> Iterator[DateWindow]:
        """:meth:`cash_shifts` per window of at most ``report_window_days`` opening days, asked department by
        department (a shift does not name its department; :func:`~iiko_pipeline.iiko.answers.by_department`
        keeps each answer whole with the department it was asked for), yielded as it arrives. The range is
        checked right away; the departments are read once, with the first window; ``anchor`` as in
        :func:`split_windows`."""
        windows = split_windows(date_from, date_to, self._settings.report_window_days, anchor)

        def fetch() -> Iterator[DateWindow]:
            departments = self.department_ids()
            for start, end in windows:
                answers = [(d, self.cash_shifts(start, end, department_id=d)) for d in departments]
                yield DateWindow(start, end, by_department(CASH_SHIFTS, answers))

        return fetch()
