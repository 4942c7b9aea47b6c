"""Turning a raw HTTP answer into a checked result or the right error.

Why here and not in the client: the mapping from status, content type and the server's exact error texts
(iiko Server API §3, §5.5, §6) to our error classes is the contract the layers above rely on. Keeping it in
one pure module makes it easy to read against the API reference and to test.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from decimal import Decimal
from typing import Any

from .errors import (
    IikoApiError,
    IikoAuthError,
    IikoBadRequestError,
    IikoError,
    IikoLicenceBlockedError,
    IikoLicenceError,
    IikoNotAvailableError,
    IikoPermissionError,
    IikoResponseError,
    IikoTransportError,
    licence_message,
)
from .models import IikoJsonResponse, IikoResponse
from .redact import REDACTED, redact_text, redact_url
from .transport import RawAnswer, content_charset
from .xml import check_document, check_document_stream

#: Statuses worth retrying: the server or a proxy may recover on its own.
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
#: At most this much of an error body reaches the DEBUG log (redacted); no other log level, message or
#: exception ever holds any of it.
DEBUG_TEXT = 200
HTML_HINT = "got an HTML page, not an API answer: check the base URL / proxy"
NOT_IIKO = "The body is not shown: it is not one of iiko's known error texts (not an iiko answer? check base_url)"

log = logging.getLogger("iiko_pipeline.iiko")

#: iiko's own error texts (iiko Server API §3, §5.5, §6), lowercased marker -> the fixed wording we report.
#: A non-2xx answer is described by its status and, when it holds one of these, that fixed wording: never by
#: the body itself, which may come from any host `base_url` points at (and may hold that host's secrets).
KNOWN_TEXTS: tuple[tuple[str, str], ...] = (
    ("license enhancement is required", "License enhancement is required: no connections available"),
    ("no connections available", "License enhancement is required: no connections available"),
    ("is blocked within current license", "Module is blocked within current license"),
    ("permission denied", "Permission denied"),
    ("wrong date format", "Wrong date format"),
    ("token is expired or invalid", "Token is expired or invalid"),
    ("server is starting", "Server is starting and cannot check the password yet"),
    ("неверное имя пользователя или пароль", "Неверное имя пользователя или пароль (wrong login or password)"),
    ("wrong login or password", "Wrong login or password"),
    ("service unavailable", "Service Unavailable"),
    # A refused OLAP report request (the emulator's texts; iiko's own wording for these is not documented).
    ("date filter is required", "Date filter is required: since iiko 5.5 every OLAP request needs a DateRange filter"),
    ("unknown olap field", "Unknown OLAP field (not in v2/reports/olap/columns)"),
    ("cannot be used for grouping", "A field that cannot be used for grouping was asked to group"),
    ("cannot be used for aggregation", "A field that cannot be used for aggregation was asked to aggregate"),
    ("cannot be used for filtering", "A field that cannot be used for filtering was asked to filter"),
    ("is not applicable to field", "A filter type that is not applicable to its field's type"),
    ("unknown filter type", "Unknown OLAP filter type"),
    ("unknown period type", "Unknown OLAP period type"),
    ("unknown report type", "Unknown OLAP report type"),
    ("wrong request body", "Wrong request body (the OLAP request is not the documented JSON)"),
    ("unsupported media type", "Unsupported Media Type"),
    ("java.", "a Java exception (see the iiko server log)"),
)

# name: value / name=value pairs whose name looks secret (db_password=..., X-Api-Key: ..., "secret": "...").
_SECRETISH = re.compile(r"(?i)([\w.-]*(?:pass|pwd|secret|token|key|auth|credential|session|cookie)[\w.-]*"
                        r"[\"']?\s*[:=]\s*(?:(?i:bearer|basic)\s+)?)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)")


def _decoded(raw: RawAnswer) -> str:
    try:
        return raw.body.decode(raw.charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return raw.body.decode("utf-8", errors="replace")


def debug_excerpt(text: str, secrets: Iterable[str | None] = ()) -> str:
    """At most `DEBUG_TEXT` characters of a body for the DEBUG log, secret-looking values masked."""
    text = _SECRETISH.sub(lambda m: f"{m.group(1)}{REDACTED}", redact_text(text.strip(), secrets))
    return text[:DEBUG_TEXT] + ("..." if len(text) > DEBUG_TEXT else "")


def error_text(raw: RawAnswer, secrets: Iterable[str | None] = ()) -> str:
    """What we may say about an error body: iiko's known text in our fixed wording, or "" for anything else.

    The body itself goes to the DEBUG log only (shortened, redacted) by :func:`raise_for_error`."""
    lowered = _decoded(raw).lower()
    for marker, wording in KNOWN_TEXTS:
        if marker in lowered:
            return wording
    return ""


def said(text: str) -> str:
    return f"iiko said: {text}" if text else NOT_IIKO


def _forbidden(text: str, endpoint: str, status: int, login: str) -> IikoApiError:
    lowered = text.lower()
    if "license enhancement is required" in lowered or "no connections available" in lowered:
        return IikoLicenceError(f"{licence_message()}. {said(text)}", endpoint=endpoint,
                                status=status, text=text)
    if "is blocked within current license" in lowered:
        return IikoLicenceBlockedError(
            "the iiko licence does not include the API module (module is blocked within the current "
            "license): the API cannot be used on this server until the licence includes it; ask the iiko "
            f"partner to add the iikoAPI Server module. {said(text)}",
            endpoint=endpoint, status=status, text=text,
        )
    return IikoPermissionError(
        f"the iiko user {login!r} may not call this method: grant it the back-office rights it needs "
        f"(or use another user). {said(text)}",
        endpoint=endpoint, status=status, text=text,
    )


def raise_for_error(raw: RawAnswer, *, endpoint: str, display: str, login: str, is_login: bool,
                    secrets: Iterable[str | None], since: str | None = None) -> None:
    """Raise the matching :class:`IikoError` unless ``raw`` is a 2xx answer that is not an HTML page.

    ``since``: the iiko version that introduced the method; a 404 then means an older server
    (:class:`IikoNotAvailableError`) rather than a wrong path.

    Errors are described by kind and status; the body never reaches a message (see :data:`KNOWN_TEXTS`)."""
    secrets = tuple(secrets)
    status = raw.status
    error: IikoError | None = None
    if (raw.media_type == "text/html" or not 200 <= status < 300) and log.isEnabledFor(logging.DEBUG):
        log.debug("%s answered HTTP %s (%s); body excerpt: %r", display, status,
                  raw.content_type or "no content type", debug_excerpt(_decoded(raw), secrets))
    if raw.media_type == "text/html":
        error = IikoTransportError(
            f"{HTML_HINT} ({display} answered HTTP {status} with text/html; a proxy, a login page or a "
            "Tomcat without iiko answered instead of the API)",
            endpoint=endpoint, status=status, transient=status in TRANSIENT_STATUSES,
        )
    elif 200 <= status < 300:
        return
    elif 300 <= status < 400:
        target = redact_text(redact_url(raw.location or "?"), secrets)
        error = IikoTransportError(
            f"{display} was redirected to {target}: the base URL is probably wrong (http instead of "
            "https, a moved server or a proxy login page); use the final address as base_url",
            endpoint=endpoint, status=status,
        )
    else:
        text = error_text(raw, secrets)
        if status == 401 and is_login and "starting" in text.lower():
            error = IikoAuthError(
                f"HTTP 401 on login: the iiko server is starting and cannot check passwords yet; retried. "
                f"{said(text)}", endpoint=endpoint, status=status, text=text, transient=True,
            )
        elif status == 401 and is_login:
            error = IikoAuthError(
                f"HTTP 401 on login: wrong login or password for user {login!r} (or the server is still starting "
                f"and cannot check passwords yet): check the credentials. {said(text)}",
                endpoint=endpoint, status=status, text=text,
            )
        elif status == 401:
            error = IikoAuthError(
                "the token was not accepted (expired after ~1 h without requests, the server restarted, "
                f"or it is starting). {said(text)}",
                endpoint=endpoint, status=status, text=text,
            )
        elif status == 403:
            error = _forbidden(text, endpoint, status, login)
        elif status == 400:
            error = IikoBadRequestError(
                f"the server rejected the request {display} (HTTP 400). Fix the request parameters; retrying "
                f"will not help. {said(text)}", endpoint=endpoint, status=status, text=text,
            )
        elif status in TRANSIENT_STATUSES:
            error = IikoApiError(
                f"server error HTTP {status} for {display}. Usually temporary; if it persists, check the iiko "
                f"server log (full.log). {said(text)}", endpoint=endpoint, status=status, text=text,
                transient=True,
            )
        elif status == 404 and since:
            error = IikoNotAvailableError(
                f"{display} is not available on this iiko version (HTTP 404; it needs iiko {since} or later): "
                f"skip this entity, or upgrade the server. {said(text)}", endpoint=endpoint, status=status, text=text,
            )
        elif status == 404:
            error = IikoApiError(
                f"{display} not found (HTTP 404): a wrong path, or a method this server version lacks. "
                f"{said(text)}", endpoint=endpoint, status=status, text=text,
            )
        else:
            error = IikoApiError(f"{display} failed with HTTP {status}. {said(text)}", endpoint=endpoint,
                                 status=status, text=text)
    raise error


def xml_answer(raw: RawAnswer, *, endpoint: str, display: str, expected_root: str, record_tag: str | None,
               accepted: Collection[str], checked: Callable[[str], bool] | None = None) -> IikoResponse:
    """Check the content type, then the document (well-formed, complete, expected root), streaming; the second
    check is left out for a body `checked` recognises by its SHA-256 (bytes that passed it before: a window's
    answer the caller committed, byte for byte, which a 50 MB export took 0.6 s to parse again). A body that went
    to the transport's sink is checked as a stream read back from it."""
    if raw.media_type not in accepted:
        raise IikoResponseError(
            f"wrong content type {raw.content_type or '(none)'!r} for {display}; expected "
            f"{' or '.join(sorted(accepted))}. Check the base URL and the proxy",
            endpoint=endpoint, status=raw.status, kind="content_type",
        )
    sink = raw.sink
    if checked is not None and checked(sink.sha256 if sink is not None else hashlib.sha256(raw.body).hexdigest()):
        root = expected_root
    elif sink is not None:
        root = check_document_stream(sink.open, sink.size, sink.blank, endpoint, expected_root, status=raw.status,
                                     record_tag=record_tag)
    else:
        root = check_document(raw.body, endpoint, expected_root, status=raw.status, record_tag=record_tag)
    return IikoResponse(endpoint=endpoint, status=raw.status, content_type=raw.content_type,
                        body=raw.body, root=root, sink=sink)


def _json_source(raw: RawAnswer) -> bytes | str:
    """The body for `json.loads`: bytes for UTF-8 (it detects a BOM or UTF-16 itself), else decoded by the
    declared charset (strictly: a cut multi-byte character is a truncated body)."""
    charset = (raw.charset or "utf-8").lower()
    if charset in ("utf-8", "utf8"):
        return raw.body
    try:
        return raw.body.decode(charset)
    except LookupError:  # an unknown charset name
        return raw.body


def _json_kind(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def json_answer(raw: RawAnswer, *, endpoint: str, display: str) -> IikoJsonResponse:
    """Check a JSON list answer: the content type, then a complete document that is an array of objects.
    The body is never quoted in a message (it may come from any host)."""
    return _json_response(raw, json_items, endpoint=endpoint, display=display)


def _json_response(raw: RawAnswer, decode: Callable[..., tuple[dict[str, Any], ...]], *, endpoint: str,
                   display: str) -> IikoJsonResponse:
    """The checks every JSON answer shares (content type, then `decode` of the body in its charset), and the
    response that keeps the raw bytes beside the decoded items."""
    if raw.media_type != "application/json":
        raise IikoResponseError(
            f"wrong content type {raw.content_type or '(none)'!r} for {display}; expected application/json. "
            "Check the base URL and the proxy", endpoint=endpoint, status=raw.status, kind="content_type",
        )
    items = decode(_json_source(raw), endpoint=endpoint, display=display, status=raw.status)
    return IikoJsonResponse(endpoint=endpoint, status=raw.status, content_type=raw.content_type,
                            body=raw.body, items=items)


def _load_json(source: bytes | str, *, endpoint: str, display: str, status: int | None,
               exact_ints: bool = False) -> Any:
    """A complete JSON document, numbers exact (`Decimal` for non-integral ones, and for all when `exact_ints`),
    or a typed error that says what is wrong and where (never quoting the body)."""
    if not source.strip():
        raise IikoResponseError(f"empty answer from {display}", endpoint=endpoint, status=status, kind="empty")
    try:
        return json.loads(source, parse_float=Decimal, parse_int=Decimal if exact_ints else None)
    except RecursionError:
        raise IikoResponseError(f"the JSON of {display} is nested too deeply", endpoint=endpoint,
                                status=status, kind="limit") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: malformed or cut short
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise IikoResponseError(f"the JSON of {display} is malformed or truncated{where} ({len(source)} bytes)",
                                endpoint=endpoint, status=status, kind="syntax") from None


def _objects(data: list[Any], *, what: str, endpoint: str, display: str, status: int | None
             ) -> tuple[dict[str, Any], ...]:
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise IikoResponseError(
                f"{display} answered {what} whose item {index} is a JSON {_json_kind(item)}, not an object",
                endpoint=endpoint, status=status, kind="root",
            )
    return tuple(data)


def json_items(source: bytes | str, *, endpoint: str, display: str, status: int | None = None
               ) -> tuple[dict[str, Any], ...]:
    """A complete JSON document that is an array of objects, numbers exact (`Decimal`), or a typed error that
    says what is wrong and where (never quoting the body)."""
    data = _load_json(source, endpoint=endpoint, display=display, status=status)
    if not isinstance(data, list):
        raise IikoResponseError(
            f"{display} answered a JSON {_json_kind(data)} where an array of objects was expected",
            endpoint=endpoint, status=status, kind="root",
        )
    return _objects(data, what="an array", endpoint=endpoint, display=display, status=status)


#: The member of a department-scoped answer that names the department asked for (iiko's own request parameter).
DEPARTMENT_KEY = "departmentId"


def by_department(endpoint: str, answers: Sequence[tuple[str, IikoJsonResponse]]) -> IikoJsonResponse:
    """Answers of one JSON list endpoint, each asked for one department (``departmentId``), as one response.

    For lists whose records do not name their department (the cash-shift list): only the request knows it.
    The body kept as the raw answer is ``[{"departmentId": ..., "answer": <that answer verbatim>}, ...]``, so
    nothing iiko said is changed and each record's department travels with it (an answer declared in another
    charset is re-encoded to UTF-8, as the envelope must be one encoding). ``items`` are
    :func:`department_items` of that body."""
    parts = []
    for department, answer in answers:
        charset = (content_charset(answer.content_type) or "utf-8").lower()
        body = answer.body if charset in ("utf-8", "utf8") else answer.body.decode(charset).encode("utf-8")
        parts.append(b'{"%s":%s,"answer":%s}' % (DEPARTMENT_KEY.encode(), json.dumps(department).encode(), body))
    return IikoJsonResponse(endpoint=endpoint, status=200, content_type="application/json; charset=utf-8",
                            body=b"[" + b",".join(parts) + b"]",
                            items=_tagged([(department, answer.items) for department, answer in answers]))


def department_items(source: bytes | str, *, endpoint: str, display: str, status: int | None = None
                     ) -> tuple[dict[str, Any], ...]:
    """The records of a :func:`by_department` body, each with the ``departmentId`` it was asked for (a record
    that names its own department keeps it). A record id answered for two departments means the server ignored
    the filter: such records get no department rather than the wrong one."""
    envelope = json_items(source, endpoint=endpoint, display=display, status=status)
    groups: list[tuple[Any, tuple[dict[str, Any], ...]]] = []
    for index, part in enumerate(envelope):
        answer = part.get("answer")
        if not isinstance(answer, list):
            raise IikoResponseError(f"{display}: part {index} has no answer array", endpoint=endpoint,
                                    status=status, kind="root")
        groups.append((part.get(DEPARTMENT_KEY),
                       _objects(answer, what="an array", endpoint=endpoint, display=display, status=status)))
    return _tagged(groups)


def _tagged(groups: Sequence[tuple[Any, Sequence[dict[str, Any]]]]) -> tuple[dict[str, Any], ...]:
    """Each group's records with the department they were asked for; none for an id answered for two (the one
    rule of the client's items and of the frame step's parse)."""
    seen: dict[str, Any] = {}
    ambiguous: set[str] = set()
    for department, items in groups:
        for item in items:
            ident = str(item.get("id", "")).lower()
            if ident and seen.setdefault(ident, department) != department:
                ambiguous.add(ident)
    return tuple({DEPARTMENT_KEY: None if str(item.get("id", "")).lower() in ambiguous else department, **item}
                 for department, items in groups for item in items)


def olap_rows(source: bytes | str, *, endpoint: str, display: str, status: int | None = None
              ) -> tuple[dict[str, Any], ...]:
    """The ``data`` rows of a complete OLAP v2 answer ``{"data": [...], "summary": [...]}``, every number a
    `Decimal`, or a typed error naming what is wrong (not an object, no ``data`` array, a row that is not an
    object, a ``summary`` that is not an array)."""
    doc = _load_json(source, endpoint=endpoint, display=display, status=status, exact_ints=True)
    if not isinstance(doc, dict):
        raise IikoResponseError(
            f"{display} answered a JSON {_json_kind(doc)} where an OLAP report object "
            '({"data": [...], "summary": [...]}) was expected', endpoint=endpoint, status=status, kind="root",
        )
    data = doc.get("data")
    if not isinstance(data, list):
        found = "no \"data\" member" if "data" not in doc else f"\"data\" as a JSON {_json_kind(data)}"
        raise IikoResponseError(f"{display} answered an object with {found} where an OLAP report has a \"data\" "
                                "array", endpoint=endpoint, status=status, kind="root")
    summary = doc.get("summary", [])
    if not isinstance(summary, list):
        raise IikoResponseError(f"{display} answered an OLAP report whose \"summary\" is a JSON "
                                f"{_json_kind(summary)}, not an array", endpoint=endpoint, status=status, kind="root")
    return _objects(data, what='an OLAP report "data" array', endpoint=endpoint, display=display, status=status)


def olap_answer(raw: RawAnswer, *, endpoint: str, display: str) -> IikoJsonResponse:
    """Check an OLAP v2 answer: the content type, then a complete report object; ``items`` are its ``data`` rows.
    The body is never quoted in a message (it may come from any host)."""
    return _json_response(raw, olap_rows, endpoint=endpoint, display=display)


def token_answer(raw: RawAnswer, *, endpoint: str) -> str:
    """The token from a successful login: the stripped body (quotes removed). Never logged or shown."""
    token = raw.body.decode("utf-8", errors="replace").strip().strip('"').strip()
    if not token or len(token) > 200 or any(ch.isspace() or not ch.isprintable() for ch in token):
        raise IikoResponseError(
            f"the login answer ({len(raw.body)} bytes, {raw.content_type or 'no content type'}) does not "
            "look like a token: check the base URL and the proxy",
            endpoint=endpoint, status=raw.status, kind="token",
        )
    return token
