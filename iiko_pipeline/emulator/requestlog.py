"""The request log tests assert on: what the client did, never what it knew.

It records each iiko request (not control-API calls): method, endpoint name, status, whether a key was
sent, an anonymous token label, the invoice window, timings and any injected fault. It never stores the
password, its SHA-1, token values or raw query strings (those carry `pass` and `key`).

Aggregates answer the pipeline's contract questions directly: logins == logouts, max concurrency 1,
no failed logins, every data request carried a key, windows no longer than the chunk size.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class RequestRecord:
    seq: int
    method: str
    endpoint: str
    started: float  # time.time() at arrival
    status: int | None = None
    key_present: bool = False
    token: str | None = None  # anonymous label ("t1"), never the token
    window: tuple[str, str] | None = None  # (from, to) as sent, for invoice exports
    fault: str | None = None
    concurrency: int = 1  # in-flight iiko requests (all tokens) when this one arrived
    ended: float | None = None
    bytes_sent: int = 0

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["window"] = list(self.window) if self.window else None
        data["duration"] = self.duration
        return data


@dataclass
class _Counters:
    requests: int = 0
    logins: int = 0
    logouts: int = 0
    failed_logins: int = 0
    licence_denials: int = 0
    unauthorized: int = 0
    faults_injected: int = 0
    max_concurrency: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)


class RequestLog:
    """Thread-safe log of iiko requests plus running aggregates. Keeps the last `maxlen` records."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=maxlen)
        self._c = _Counters()
        self._seq = 0
        self._inflight = 0
        self._token_max: dict[str, int] = {}
        self.active_tokens_fn: Callable[[], int] = lambda: 0

    # -- recording
    def begin(self, method: str, endpoint: str) -> RequestRecord:
        with self._lock:
            self._seq += 1
            self._inflight += 1
            self._c.requests += 1
            self._c.max_concurrency = max(self._c.max_concurrency, self._inflight)
            self._c.by_endpoint[endpoint] = self._c.by_endpoint.get(endpoint, 0) + 1
            rec = RequestRecord(self._seq, method, endpoint, time.time(), concurrency=self._inflight)
            self._records.append(rec)
            return rec

    def end(self, rec: RequestRecord) -> None:
        with self._lock:
            self._inflight = max(0, self._inflight - 1)
            rec.ended = time.time()
            if rec.fault:
                self._c.faults_injected += 1
            if rec.status == 401:
                self._c.unauthorized += 1

    def note_login(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self._c.logins += 1
            else:
                self._c.failed_logins += 1

    def note_token_concurrency(self, label: str, inflight: int) -> None:
        """Record that token `label` had `inflight` requests in flight at once."""
        with self._lock:
            if inflight > self._token_max.get(label, 0):
                self._token_max[label] = inflight

    def note_logout(self) -> None:
        with self._lock:
            self._c.logouts += 1

    def note_licence_denied(self) -> None:
        with self._lock:
            self._c.licence_denials += 1

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._c = _Counters()
            self._token_max.clear()

    # -- reading
    def records(self, endpoint: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self._records if endpoint is None or r.endpoint == endpoint]

    @property
    def logins(self) -> int:
        return self._c.logins

    @property
    def logouts(self) -> int:
        return self._c.logouts

    @property
    def failed_logins(self) -> int:
        return self._c.failed_logins

    @property
    def max_concurrency(self) -> int:
        """Most iiko requests in flight at once, across all tokens (and unauthenticated calls)."""
        return self._c.max_concurrency

    @property
    def max_token_concurrency(self) -> int:
        """Most requests in flight at once on any single token (1 for a well-behaved client)."""
        with self._lock:
            return max(self._token_max.values(), default=0)

    @property
    def active_tokens(self) -> int:
        return self.active_tokens_fn()

    @property
    def windows(self) -> list[tuple[str, str]]:
        return [r.window for r in self.records() if r.window is not None]

    def aggregates(self) -> dict[str, object]:
        with self._lock:
            c = self._c
            data: dict[str, object] = {
                "requests": c.requests, "logins": c.logins, "logouts": c.logouts,
                "failed_logins": c.failed_logins, "licence_denials": c.licence_denials,
                "unauthorized": c.unauthorized, "faults_injected": c.faults_injected,
                "max_concurrency": c.max_concurrency, "by_endpoint": dict(c.by_endpoint),
                "max_concurrency_per_token": max(self._token_max.values(), default=0),
                "concurrency_by_token": dict(self._token_max),
            }
        data["active_tokens"] = self.active_tokens_fn()
        return data

    def summary(self) -> dict[str, object]:
        """Alias of `aggregates()`."""
        return self.aggregates()

    def to_json(self) -> dict[str, object]:
        return {"aggregates": self.aggregates(), "requests": [r.to_json() for r in self.records()]}
