"""Browser sessions for the management pages: a random id in a cookie, the session itself in server memory.

Why server-side and not a signed cookie: signing out must end the session for good (a copied cookie is dead
after logout), and nothing about the session, not even that it is signed in, is readable by the browser. The
API runs as one process (`api.server`, workers=1), so process memory is the one place every request sees;
a restart signs everyone out, which is the safe failure.

The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/ui`, and `Secure` unless the request came to a loopback
host over plain http (local development); with `Secure` it takes the `__Host-` prefix, so no sibling
subdomain can plant it. Only a SHA-256 of the id is kept as the key, so a dump of the store holds no live id.
Every session, signed in or not, carries a CSRF token: forms post it back (`csrf_token`) and `check_csrf`
compares it in constant time, the sign-in form included (no login CSRF).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from iiko_pipeline.api.security import is_loopback_host_header

COOKIE = "iiko_ui_session"
SECURE_COOKIE = "__Host-iiko_ui_session"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf_token"
#: A session ends after this long without a request, and in any case after MAX_AGE_S.
IDLE_TIMEOUT_S = 2 * 3600
MAX_AGE_S = 12 * 3600
#: Sessions kept at most (anonymous ones from sign-in pages included); the least recently used go first.
MAX_SESSIONS = 10_000


@dataclass
class Session:
    csrf_token: str
    created: float
    last_seen: float
    signed_in: bool = False
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, message) shown once on the next page

    def flash(self, kind: str, message: str) -> None:
        self.flashes.append((kind, message))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


class SessionStore:
    """Sessions by hashed id, with idle and absolute expiry and a bound on their number."""

    def __init__(self, *, idle_timeout: float = IDLE_TIMEOUT_S, max_age: float = MAX_AGE_S,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def new(self, *, signed_in: bool = False) -> tuple[str, Session]:
        """A fresh session and its id (the id goes into the cookie and nowhere else)."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(csrf_token=secrets.token_urlsafe(32), created=now, last_seen=now, signed_in=signed_in)
        with self._lock:
            self._sessions[_key(session_id)] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        key = _key(session_id)
        now = time.time()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.last_seen > self.idle_timeout or now - session.created > self.max_age:
                del self._sessions[key]
                return None
            session.last_seen = now
            self._sessions.move_to_end(key)
            return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_key(session_id), None)

    def __len__(self) -> int:
        return len(self._sessions)


def is_local_http(request: Request) -> bool:
    """Plain http to a loopback Host: the one case where the cookie cannot be `Secure` (local development)."""
    return request.url.scheme == "http" and is_loopback_host_header(request.headers.get("host", ""))


def cookie_name(request: Request) -> str:
    return COOKIE if is_local_http(request) else SECURE_COOKIE


def session_id_of(request: Request) -> str | None:
    return request.cookies.get(cookie_name(request))


def set_cookie(request: Request, response: Response, session_id: str) -> None:
    secure = not is_local_http(request)
    # `__Host-` cookies must have Path=/; the plain one is scoped to the pages.
    response.set_cookie(cookie_name(request), session_id, max_age=MAX_AGE_S, path="/" if secure else COOKIE_PATH,
                        httponly=True, secure=secure, samesite="strict")


def clear_cookie(request: Request, response: Response) -> None:
    secure = not is_local_http(request)
    response.delete_cookie(cookie_name(request), path="/" if secure else COOKIE_PATH, httponly=True, secure=secure,
                           samesite="strict")


def same_origin(request: Request) -> bool:
    """A state-changing request must come from our own pages: its Origin (sent by browsers on every POST)
    names the host the request was sent to. No Origin at all (an old client) falls back to the CSRF token."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def check_csrf(session: Session | None, presented: str | None) -> bool:
    if session is None or not presented:
        return False
    return hmac.compare_digest(session.csrf_token.encode(), presented.encode("utf-8", "replace"))


class SignInSecrets:
    """What signs an operator in: the API token and/or an operator password (`UI_PASSWORD`).

    Compared as SHA-256 digests in constant time. Neither is ever rendered, logged or put into a URL."""

    def __init__(self, *secrets_: str | None) -> None:
        self._digests = [hashlib.sha256(s.encode("utf-8")).digest() for s in secrets_ if s]

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def matches(self, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
        return any(hmac.compare_digest(digest, d) for d in self._digests)
