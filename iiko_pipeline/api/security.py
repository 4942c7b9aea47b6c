"""Bearer-token authentication, the credentials-in-URL refusal and the access log, as one ASGI middleware.

Order for every request: (0) in the insecure local mode only (no token), a Host header that is not a loopback
name or address -> 400, so that a web page cannot reach the unauthenticated API through DNS rebinding;
(1) a query parameter that looks like a credential -> 400; (2) outside the public paths (/health, and the pages
under /ui/, which check their own session cookie), a missing or wrong `Authorization: Bearer <API_TOKEN>` -> 401;
(3) the route.
The access log records method, route template (never the raw path or query), status and duration.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iiko_pipeline.api import validation
from iiko_pipeline.api.errors import ApiError
from iiko_pipeline.core.specs import ENTITY_NAMES as ENTITIES
from iiko_pipeline.loopback import is_loopback

API_TOKEN_ENV = "API_TOKEN"  # noqa: S105 - the variable's name, not a secret
MIN_TOKEN_CHARS = 16
PUBLIC_PATHS = frozenset({"/health"})

access_logger = logging.getLogger("iiko_pipeline.api.access")


class InsecureConfigError(ValueError):
    """The API would start without authentication where that is not allowed."""


def is_loopback_host_header(value: str) -> bool:
    """Whether a Host header names a loopback host: `localhost`, `127.0.0.1` (any 127/8 address) or `[::1]`,
    with or without a port. Anything else, a malformed value included, is not."""
    value = value.strip()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or ":" not in host:
            return False
    else:
        host, _, rest = value.partition(":")
        rest = ":" + rest if _ else ""
        if ":" in rest[1:]:
            return False
    if rest and not (rest.startswith(":") and rest[1:].isdigit() and len(rest) <= 6):
        return False
    return bool(host) and is_loopback(host)


def check_token(token: str | None, *, insecure: bool = False, host: str | None = None) -> str | None:
    """The token to require, or None in the explicit insecure local mode; raises InsecureConfigError.

    A token always wins: with one configured, authentication is on even if insecure mode was asked for.
    """
    token = (token or "").strip()
    if token:
        if len(token) < MIN_TOKEN_CHARS:
            raise InsecureConfigError(f"{API_TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} characters; generate one "
                                      "with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        if not token.isascii() or not token.isprintable() or " " in token:
            raise InsecureConfigError(f"{API_TOKEN_ENV} must be printable ASCII without spaces")
        return token
    if not insecure:
        raise InsecureConfigError(f"{API_TOKEN_ENV} is not set: every endpoint but /health needs a bearer token. "
                                  f"Set {API_TOKEN_ENV}, or for local development only start with "
                                  "--insecure-no-auth on a loopback host")
    if host is not None and not is_loopback(host):
        raise InsecureConfigError(f"--insecure-no-auth serves without authentication and is only allowed on a "
                                  f"loopback host (127.0.0.1, ::1, localhost), not {host!r}")
    return None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


class TokenChecker:
    """Compares presented tokens in constant time (equal-length digests, `hmac.compare_digest`)."""

    def __init__(self, token: str) -> None:
        self._digest = _digest(token)

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(_digest(presented), self._digest)


def _public(path: str) -> bool:
    """No bearer token needed: /health, and the management pages, which authenticate by session instead."""
    from iiko_pipeline.ui import is_page_path

    return path in PUBLIC_PATHS or is_page_path(path)


def _unauthorized(detail: str, error: str | None = None) -> ApiError:
    challenge = 'Bearer realm="iiko-pipeline"' + (f', error="{error}"' if error else "")
    return ApiError(401, detail, headers={"WWW-Authenticate": challenge})


def authenticate(scope: Scope, checker: TokenChecker) -> None:
    headers = [v for k, v in scope.get("headers", []) if k.lower() == b"authorization"]
    if not headers:
        raise _unauthorized("missing bearer token: send the header 'Authorization: Bearer <API_TOKEN>'")
    if len(headers) > 1:
        raise _unauthorized("more than one Authorization header", "invalid_request")
    scheme, _, presented = headers[0].decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <API_TOKEN>'", "invalid_request")
    if not checker.matches(presented.strip()):
        raise _unauthorized("invalid bearer token", "invalid_token")


class GuardMiddleware:
    """Refuses credentials in URLs, authenticates, and writes the access log (paths only)."""

    def __init__(self, app: ASGIApp, *, token: str | None, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.checker = TokenChecker(token) if token else None
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, int] = {}

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal.response()(scope, receive, send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        finally:
            self._log(scope, status.get("code", 500), time.perf_counter() - started)

    def _refusal(self, scope: Scope) -> ApiError | None:
        if self.checker is None:  # insecure local mode: loopback Host headers only (DNS rebinding)
            hosts = [v for k, v in scope.get("headers", []) if k.lower() == b"host"]
            if len(hosts) != 1 or not is_loopback_host_header(hosts[0].decode("latin-1")):
                return ApiError(400, "this API serves without authentication (insecure local mode) and answers "
                                     "only requests whose Host header is a loopback name or address: localhost, "
                                     "127.0.0.1 or [::1]")
        names = validation.credentials_in_query(scope)
        if names:
            return ApiError(400, "credentials are accepted only in the JSON request body, never in the URL: "
                                 f"remove the query parameter(s) {', '.join(names)} (the request was not processed)")
        if self.checker is not None and not _public(scope.get("path", "")):
            try:
                authenticate(scope, self.checker)
            except ApiError as exc:
                return exc
        return None

    def _template(self, scope: Scope) -> tuple[str, dict[str, Any]]:
        route = scope.get("route")
        params = scope.get("path_params") or {}
        if route is None:
            for candidate in self.routes:
                match, child = candidate.matches(scope)
                if match is not Match.NONE:
                    route, params = candidate, child.get("path_params", {})
                    break
        return (getattr(route, "path", None) or "(no route)"), params

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        template, params = self._template(scope)
        extras = []
        raw_account = params.get("account_id")
        if raw_account is not None:
            try:
                extras.append(f"account={uuid.UUID(str(raw_account))}")
            except ValueError:
                extras.append("account=(invalid)")
        raw_entity = params.get("entity")
        if raw_entity is not None:
            extras.append(f"entity={raw_entity if raw_entity in ENTITIES else '(invalid)'}")
        access_logger.info("%s %s %d %.0fms%s", scope.get("method", "-"), template, status, seconds * 1000,
                           "".join(" " + e for e in extras))
