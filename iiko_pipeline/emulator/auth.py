"""Tokens and licence seats, the way iiko Server hands them out.

* A successful login creates a UUID token that holds one licence seat until logout or expiry.
* The TTL slides: every authenticated request refreshes it (at its start and at its end, so a long
  export never expires mid-flight). A token with a request in flight is never expired.
* Expired tokens are purged lazily (on login, lookup and counting), freeing their seats.
* `restart()` forgets every token, like a server restart.

Token values never leave this module except as the login answer: logs and the control API see only
a stable label (`t1`, `t2`, ...) per token.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass


def sha1_hex(password: str) -> str:
    """What a client sends as `pass`: lowercase hex SHA-1 of the UTF-8 password (no salt)."""
    return hashlib.sha1(password.encode("utf-8")).hexdigest()  # noqa: S324 - iiko's protocol, not our choice


@dataclass
class Session:
    token: str
    label: str
    created: float
    last_seen: float
    inflight: int = 0
    max_inflight: int = 0

    def __repr__(self) -> str:  # never print the token
        return f"Session(label={self.label!r}, inflight={self.inflight}, max_inflight={self.max_inflight})"


class SeatsExhausted(Exception):
    """Every licence seat is held by a live token."""


class SessionManager:
    """Live tokens, seat accounting and per-token concurrency. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._serial = 0

    @staticmethod
    def check_credentials(login: str, pass_hash: str, expected_login: str, expected_password: str) -> bool:
        """Compare the login and the SHA-1 in constant time. Strict on purpose: an upper-case hex digest
        or one over non-UTF-8 bytes is a client bug the tests should catch."""
        ok_login = hmac.compare_digest(login.encode("utf-8"), expected_login.encode("utf-8"))
        ok_pass = hmac.compare_digest(pass_hash.encode("utf-8"),
                                      sha1_hex(expected_password).encode("utf-8"))
        return ok_login and ok_pass

    def _purge(self, ttl: float) -> None:
        now = self._clock()
        dead = [t for t, s in self._sessions.items() if s.inflight == 0 and now - s.last_seen > ttl]
        for token in dead:
            del self._sessions[token]

    def login(self, seats: int, ttl: float) -> tuple[str, str]:
        """Take a seat and return (token, label); raise SeatsExhausted when none is free."""
        with self._lock:
            self._purge(ttl)
            if len(self._sessions) >= seats:
                raise SeatsExhausted
            self._serial += 1
            token = str(uuid.uuid4())
            now = self._clock()
            label = f"t{self._serial}"
            self._sessions[token] = Session(token, label, now, now)
            return token, label

    def lookup(self, token: str | None, ttl: float) -> Session | None:
        """The live session for `token` (refreshing its TTL), or None if missing, unknown or expired."""
        if not token:
            return None
        with self._lock:
            self._purge(ttl)
            session = self._sessions.get(token)
            if session is not None:
                session.last_seen = self._clock()
            return session

    def begin(self, session: Session) -> int:
        """Mark a request in flight on this token; returns the token's in-flight count including it."""
        with self._lock:
            session.inflight += 1
            session.last_seen = self._clock()
            session.max_inflight = max(session.max_inflight, session.inflight)
            return session.inflight

    def end(self, session: Session) -> None:
        with self._lock:
            session.inflight = max(0, session.inflight - 1)
            session.last_seen = self._clock()

    def logout(self, token: str | None) -> Session | None:
        """Free the token's seat; returns the session it held, or None if unknown."""
        if not token:
            return None
        with self._lock:
            return self._sessions.pop(token, None)

    def expire(self, token: str) -> None:
        """Let one token die as if its idle lifetime had run out (its seat is freed, its next use is a 401)."""
        with self._lock:
            self._sessions.pop(token, None)

    def restart(self) -> None:
        """Invalidate every token (server restart)."""
        with self._lock:
            self._sessions.clear()

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()
            self._serial = 0

    def live_count(self, ttl: float) -> int:
        with self._lock:
            self._purge(ttl)
            return len(self._sessions)

    def labels(self, ttl: float) -> list[str]:
        with self._lock:
            self._purge(ttl)
            return [s.label for s in self._sessions.values()]
