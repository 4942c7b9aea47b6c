"""What the pages share: the session store, what signs an operator in, the templates and the Dagster UI's address.

`DAGSTER_UI_URL` (default http://127.0.0.1:3000) is where each run's "open in Dagster" link points.
`UI_PASSWORD` (optional, at least 12 characters) is an operator password accepted at sign-in besides the API
token, for people who should not hold the API token. Without an API token (the insecure local mode, loopback
only) and without `UI_PASSWORD`, a visitor is signed in at once: the pages are as open as the API is there.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from iiko_pipeline.ui.sessions import (
    CSRF_FIELD,
    Session,
    SessionStore,
    SignInSecrets,
    clear_cookie,
    session_id_of,
    set_cookie,
)
from iiko_pipeline.warehouse.sqltypes import as_utc

DAGSTER_UI_URL_ENV = "DAGSTER_UI_URL"
DEFAULT_DAGSTER_UI_URL = "http://127.0.0.1:3000"
UI_PASSWORD_ENV = "UI_PASSWORD"  # noqa: S105 - the variable's name, not a secret
MIN_UI_PASSWORD_CHARS = 12
TEMPLATES = Path(__file__).parent / "templates"


class UiConfigError(ValueError):
    """The pages' configuration is unsafe or malformed."""


def ui_password() -> str | None:
    value = os.environ.get(UI_PASSWORD_ENV, "")
    if value and len(value) < MIN_UI_PASSWORD_CHARS:
        raise UiConfigError(f"{UI_PASSWORD_ENV} must be at least {MIN_UI_PASSWORD_CHARS} characters")
    return value or None


def dagster_ui_url() -> str:
    url = os.environ.get(DAGSTER_UI_URL_ENV, "").strip() or DEFAULT_DAGSTER_UI_URL
    if not url.startswith(("http://", "https://")):
        raise UiConfigError(f"{DAGSTER_UI_URL_ENV} must be an http(s) URL, not {url!r}")
    return url.rstrip("/")


def _when(value: datetime | None) -> str:
    if value is None:
        return "never"
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def _ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = max(0, int((datetime.now(UTC) - as_utc(value)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["ago"] = _ago
    return env


class UiContext:
    def __init__(self, *, api_token: str | None, password: str | None = None, dagster_url: str | None = None,
                 sessions: SessionStore | None = None) -> None:
        self.secrets = SignInSecrets(api_token, password)
        self.auto_sign_in = not self.secrets.required  # insecure local mode, no operator password
        self.dagster_url = (dagster_url or dagster_ui_url()).rstrip("/")
        self.sessions = sessions or SessionStore()
        self.templates = _environment()

    # -------------------------------------------------------------------------------------------- sessions

    def session(self, request: Request, *, create: bool = False) -> tuple[Session | None, str | None]:
        """The request's live session, and the id of a session created for it (to set as the cookie)."""
        session = self.sessions.get(session_id_of(request))
        if session is not None:
            return session, None
        if self.auto_sign_in or create:
            session_id, session = self.sessions.new(signed_in=self.auto_sign_in)
            return session, session_id
        return None, None

    def attach(self, request: Request, response: Response, session_id: str) -> None:
        set_cookie(request, response, session_id)

    def sign_in(self, request: Request, response: Response) -> None:
        self.sessions.end(session_id_of(request))
        session_id, _ = self.sessions.new(signed_in=True)
        set_cookie(request, response, session_id)

    def sign_out(self, request: Request, response: Response) -> None:
        self.sessions.end(session_id_of(request))
        clear_cookie(request, response)

    @staticmethod
    def safe_next(target: str | None) -> str:
        """Where to go after sign-in: one of our pages, never another site (`//host`, `/\\host`, a scheme)."""
        if target and target.startswith("/ui/") and "//" not in target and "\\" not in target:
            return target
        return "/ui/"

    # -------------------------------------------------------------------------------------------- pages

    def run_url(self, run_id: str) -> str:
        return f"{self.dagster_url}/runs/{run_id}"

    def render(self, request: Request, session: Session | None, template: str, *, status: int = 200,
               **context: Any) -> HTMLResponse:
        html = self.templates.get_template(template).render(
            request_path=request.url.path, session=session, signed_in=bool(session and session.signed_in),
            local_mode=self.auto_sign_in, csrf_field=CSRF_FIELD, csrf_token=session.csrf_token if session else "",
            flashes=session.take_flashes() if session else [], run_url=self.run_url, **context)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
