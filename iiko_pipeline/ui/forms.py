"""The pages' forms: reading a posted form and checking it with the JSON API's own rules.

Forms are `application/x-www-form-urlencoded` (what a browser sends for a form without files), read with the
standard library: no multipart parser is needed for them. Each check answers field -> message, so the page can
put every message next to the control it concerns. A password is never kept in a `FormErrors` or a re-rendered
form: the page is rendered again from the other fields only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.requests import Request

from iiko_pipeline.api import validation
from iiko_pipeline.api.errors import ApiError
from iiko_pipeline.core.specs import ENTITY_NAMES, spec
from iiko_pipeline.warehouse.labels import MAX_NAME_CHARS

MAX_FORM_BYTES = 64 * 1024
#: The JSON API's field names -> the connect form's.
_CONNECT_FIELDS = {"base_url": "base_url", "username": "username", "password": "password", "allow_http": "base_url"}
_WINDOW_FIELDS = {"from": "date_from", "to": "date_to"}
#: How a message names the field (the API's reasons read "is required", "must be ...").
_SUBJECTS = {"base_url": "The iiko address", "username": "The user name", "password": "The password",
             "allow_http": "Plain http", "from": "The first day", "to": "The last day"}


class FormError(Exception):
    """The request was not a form we can read (wrong type, too large, not UTF-8)."""


@dataclass
class FormErrors:
    """Messages by the form field they belong to (`""` for the form as a whole)."""

    by_field: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.by_field)


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields (the last value of a repeated one), refusing anything but a small urlencoded body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormError("expected a form (application/x-www-form-urlencoded)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(f"the form is larger than {MAX_FORM_BYTES // 1024} KiB")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("the form is not UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True))


def _from_api_errors(exc: ApiError, names: dict[str, str], errors: FormErrors) -> None:
    for error in exc.errors:
        errors.add(names.get(error.field, ""), f"{_SUBJECTS.get(error.field, error.field)} {error.reason}.")


def account_id(raw: str | None, errors: FormErrors, name: str = "account_id") -> str | None:
    try:
        return str(uuid.UUID((raw or "").strip()))
    except ValueError:
        errors.add(name, "Enter the platform's account id, a UUID such as 3f2b8c1e-5d6a-4b7c-9e8f-0a1b2c3d4e5f.")
        return None


def display_name(raw: str | None, errors: FormErrors) -> str:
    name = (raw or "").strip()
    if len(name) > MAX_NAME_CHARS:
        errors.add("display_name", f"A display name must be at most {MAX_NAME_CHARS} characters.")
    return name


def connect_request(form: dict[str, str], errors: FormErrors) -> validation.ConnectRequest | None:
    """The connect form checked as the JSON API checks its body (the URL policy included)."""
    body: dict[str, object] = {"username": form.get("username") or None, "password": form.get("password") or None,
                               "base_url": form.get("base_url") or None, "allow_http": "allow_http" in form}
    try:
        return validation.connect_request(body)
    except ApiError as exc:
        _from_api_errors(exc, _CONNECT_FIELDS, errors)
        return None


def sync_entities(raw: str | None, errors: FormErrors) -> list[str] | None:
    """`all` or one entity's name -> the entities to sync."""
    if raw == "all":
        return list(ENTITY_NAMES)
    if raw in ENTITY_NAMES:
        return [raw]
    errors.add("entity", f"Choose one of: all, {', '.join(ENTITY_NAMES)}.")
    return None


def dated_entities() -> list[str]:
    return [name for name in ENTITY_NAMES if spec(name).windowed]


@dataclass(frozen=True)
class Backfill:
    entity: str
    date_from: str
    date_to: str


def backfill(form: dict[str, str], errors: FormErrors) -> Backfill | None:
    """A dated entity and a date range (both ends required: a backfill re-reads exactly that range)."""
    entity = form.get("entity", "")
    if entity not in dated_entities():
        errors.add("entity", f"Choose one of: {', '.join(dated_entities())}.")
        return None
    for key, name in _WINDOW_FIELDS.items():
        if not form.get(name):
            errors.add(name, f"Enter the {'first' if key == 'from' else 'last'} day (YYYY-MM-DD).")
    if errors:
        return None
    try:
        window = validation.sync_request(entity, {"from": form["date_from"], "to": form["date_to"]}, {})
    except ApiError as exc:
        _from_api_errors(exc, _WINDOW_FIELDS, errors)
        return None
    assert window.date_from and window.date_to
    return Backfill(entity, window.date_from, window.date_to)
