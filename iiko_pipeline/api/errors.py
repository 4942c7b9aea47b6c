"""Errors the API answers with: one JSON shape, `{"detail": ...}`, plus `errors` for validation failures.

Messages never echo a request body or a query string: a client's password must not come back in a
response that a proxy might log, nor reach our own logs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse


@dataclass(frozen=True)
class FieldError:
    """One reason a request was refused: which field, where it was (path, query, body) and why."""

    field: str
    location: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "location": self.location, "reason": self.reason}


class ApiError(Exception):
    """An answer other than success. `extra` keys are merged into the body (e.g. a run id)."""

    def __init__(self, status: int, detail: str, *, errors: Sequence[FieldError] = (),
                 headers: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.detail, **self.extra}
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        return body

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers or None)


def validation_error(errors: Sequence[FieldError]) -> ApiError:
    """422 naming every field at fault and the reason, e.g. `password (body): is required`."""
    summary = "; ".join(f"{e.field} ({e.location}): {e.reason}" for e in errors)
    return ApiError(422, f"invalid request: {summary}", errors=errors)


def not_found(account_id: str) -> ApiError:
    return ApiError(404, f"account {account_id} has no iiko integration: connect it first with "
                         f"POST /api/v1/accounts/{account_id}/integrations/iiko/connect")
