"""Reading and validating requests: path parameters, query strings and JSON bodies.

Every function raises :class:`ApiError` (400 malformed, 413 too large, 415 not JSON, 422 invalid field) and
never puts a submitted value into a message, except path and date parameters, which hold no secret.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from iiko_pipeline.api.errors import ApiError, FieldError, validation_error
from iiko_pipeline.core.specs import ENTITY_NAMES as ENTITIES
from iiko_pipeline.core.specs import spec, windowed_specs
from iiko_pipeline.iiko.hosts import HostPolicyError, MissingBaseUrlError, resolve_base_url
from iiko_pipeline.services.connect import UNICODE_TEXT_REASON, is_unicode_text
from iiko_pipeline.warehouse.credentials import normalise_base_url

#: Bodies are a few short strings; anything bigger is a mistake or an attack.
MAX_BODY_BYTES = 64 * 1024
MAX_USERNAME_CHARS = 256
MAX_PASSWORD_CHARS = 1024
MAX_BASE_URL_CHARS = 2048

CONNECT_FIELDS = ("username", "password", "base_url", "allow_http")
WINDOW_FIELDS = ("from", "to")

# Query parameter names that carry credentials. Credentials in a URL end up in proxy and server logs, browser
# history and Referer headers, so such a request is refused outright, before authentication or routing.
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|auth|credential|api[_-]?key|^key$|^user(name)?$|^login$",
                          re.IGNORECASE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def query_pairs(scope: Mapping[str, Any]) -> list[tuple[str, str]]:
    raw = scope.get("query_string", b"")
    text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    return parse_qsl(text, keep_blank_values=True)


def credentials_in_query(scope: Mapping[str, Any]) -> list[str]:
    """The names of query parameters that look like credentials (their values are never looked at)."""
    return sorted({name for name, _ in query_pairs(scope) if _SECRET_NAME.search(name.strip())})


def account_id(raw: str, field: str = "account_id") -> str:
    """The canonical (lowercase, hyphenated) form of a UUID path parameter, or 422."""
    try:
        return str(uuid.UUID(raw))
    except (ValueError, TypeError, AttributeError):
        raise validation_error([FieldError(field, "path", "must be a UUID, e.g. "
                                           "3f2b8c1e-5d6a-4b7c-9e8f-0a1b2c3d4e5f")]) from None


def entity(raw: str) -> str:
    if raw not in ENTITIES:
        raise validation_error([FieldError("entity", "path", f"unknown entity; choose one of {', '.join(ENTITIES)}")])
    return raw


def no_query(request: Request, allowed: tuple[str, ...] = ()) -> dict[str, str]:
    """The allowed query parameters (each at most once); any other parameter is a 422."""
    found: dict[str, str] = {}
    errors = []
    unexpected = False
    for name, value in query_pairs(request.scope):
        if name not in allowed:
            unexpected = True
        elif name in found:
            errors.append(FieldError(name, "query", "given more than once"))
        else:
            found[name] = value
    if unexpected:
        accepted = f"only {', '.join(allowed)}" if allowed else "none"
        errors.insert(0, FieldError("query", "query", f"unexpected query parameter; this endpoint accepts {accepted}"))
    if errors:
        raise validation_error(errors)
    return found


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def json_object(request: Request, *, required: bool) -> dict[str, Any] | None:
    """The body as a JSON object; None when it is empty and not required."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body too large: at most {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"request body too large: at most {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        if required:
            raise validation_error([FieldError("body", "body", "a JSON object is required")])
        return None
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiError(415, "the request body must be JSON sent with Content-Type: application/json")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "malformed request body: not UTF-8 text") from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_object, parse_constant=_no_constants)
    except _DuplicateKey as exc:
        field = exc.key if exc.key in (*CONNECT_FIELDS, *WINDOW_FIELDS) else "body"
        raise validation_error([FieldError(field, "body", "a key appears more than once")]) from None
    except json.JSONDecodeError as exc:  # its message holds a position, never the document
        raise ApiError(400, f"malformed JSON in the request body: {exc.msg} at line {exc.lineno} "
                            f"column {exc.colno}") from None
    except ValueError as exc:  # NaN, Infinity
        raise ApiError(400, f"malformed JSON in the request body: {exc}") from None
    if not isinstance(data, dict):
        raise validation_error([FieldError("body", "body", f"must be a JSON object, not {_json_type(data)}")])
    return data


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


@dataclass(frozen=True)
class ConnectRequest:
    username: str
    password: str
    base_url: str | None
    allow_http: bool = False

    def __repr__(self) -> str:  # never show the password, even in a traceback's locals
        return (f"ConnectRequest(username={self.username!r}, password='***', base_url={self.base_url!r}, "
                f"allow_http={self.allow_http!r})")

    __str__ = __repr__


def _string(data: dict[str, Any], name: str, limit: int, errors: list[FieldError], *,
            required: bool) -> str | None:
    if name not in data or data[name] is None:
        if required:
            errors.append(FieldError(name, "body", "is required"))
        return None
    value = data[name]
    if not isinstance(value, str):
        errors.append(FieldError(name, "body", f"must be a string, not {_json_type(value)}"))
        return None
    if not is_unicode_text(value):  # a lone surrogate (JSON "\ud800"): no request could carry it
        errors.append(FieldError(name, "body", UNICODE_TEXT_REASON))
        return None
    if not value.strip():
        errors.append(FieldError(name, "body", "must not be empty"))
        return None
    if len(value) > limit:
        errors.append(FieldError(name, "body", f"must be at most {limit} characters"))
        return None
    return value


def _boolean(data: dict[str, Any], name: str, errors: list[FieldError]) -> bool | None:
    """An optional JSON boolean (default false); anything else (null, 1, the string "true") is an error (None)."""
    if name not in data:
        return False
    value = data[name]
    if not isinstance(value, bool):
        errors.append(FieldError(name, "body", f"must be a boolean (true or false), not {_json_type(value)}"))
        return None
    return value


def connect_request(data: dict[str, Any]) -> ConnectRequest:
    errors = [FieldError(name, "body", f"unknown field; expected {', '.join(CONNECT_FIELDS)}")
              for name in data if name not in CONNECT_FIELDS]
    username = _string(data, "username", MAX_USERNAME_CHARS, errors, required=True)
    password = _string(data, "password", MAX_PASSWORD_CHARS, errors, required=True)
    base_url = _string(data, "base_url", MAX_BASE_URL_CHARS, errors, required=False)
    allow_http = _boolean(data, "allow_http", errors)
    if not any(e.field == "base_url" for e in errors):  # given and well-formed, or not given: the policy decides
        try:  # the URL policy (iiko_pipeline.iiko.hosts); with an invalid allow_http, only the rules it cannot lift
            resolve_base_url(normalise_base_url(base_url), allow_http=allow_http is not False)
        except MissingBaseUrlError:
            errors.append(FieldError("base_url", "body", "is required: no default iiko server is configured "
                                                         "(IIKO_DEFAULT_BASE_URL)"))
        except HostPolicyError as exc:
            errors.append(FieldError("base_url", "body", str(exc)))
        except ValueError:
            errors.append(FieldError("base_url", "body", "must be an http(s) URL with a host and without a "
                                                         "user name, password, query or fragment"))
    if errors:
        raise validation_error(errors)
    assert username is not None and password is not None and allow_http is not None
    return ConnectRequest(username.strip(), password, base_url, allow_http)


@dataclass(frozen=True)
class InvoiceWindow:
    date_from: str | None = None
    date_to: str | None = None


def _date(value: Any, name: str, location: str, errors: list[FieldError]) -> date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        errors.append(FieldError(name, location, "must be a date written YYYY-MM-DD"))
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(FieldError(name, location, "is not a calendar date (YYYY-MM-DD)"))
        return None


def sync_request(entity_name: str, body: dict[str, Any] | None, query: dict[str, str],
                 today: date | None = None) -> InvoiceWindow:
    """`from`/`to` for dated entities (body or query, not both); other entities take no parameters."""
    body = body or {}
    allowed = WINDOW_FIELDS if spec(entity_name).windowed else ()
    dated = ", ".join(s.name for s in windowed_specs())
    errors = []
    for name in body:
        if name not in allowed:
            reason = (f"unknown field; {dated} accept {', '.join(WINDOW_FIELDS)}" if allowed else
                      f"unknown field; syncing {entity_name} takes no parameters (only {dated} take from/to)")
            errors.append(FieldError(name, "body", reason))
    values: dict[str, date | None] = {}
    for name in WINDOW_FIELDS:
        if name in body and name in query:
            errors.append(FieldError(name, "query", "given both in the query and in the body"))
            continue
        location = "query" if name in query else "body"
        raw = query.get(name) if name in query else body.get(name) if name in allowed else None
        values[name] = _date(raw, name, location, errors)
    if not errors:
        date_from, date_to = values.get("from"), values.get("to")
        upper = date_to or today or date.today()
        if date_from is not None and date_from > upper:
            errors.append(FieldError("from", "query" if "from" in query else "body",
                                     f"must not be after {'to' if date_to else 'today'} ({upper.isoformat()})"))
    if errors:
        raise validation_error(errors)
    found_from, found_to = values.get("from"), values.get("to")
    return InvoiceWindow(found_from.isoformat() if found_from else None, found_to.isoformat() if found_to else None)
