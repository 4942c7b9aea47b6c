"""Fault injection: the ways a real iiko Server (or the proxy in front of it) lets a client down.

Rules match an endpoint name (or `*`) and fire for the next `count` matching requests, or with a
`probability` drawn from the registry's own seeded RNG (so a flaky run can be replayed). Kinds fall
into three groups, which decides whether the request is still processed:

* REPLACE: the answer is swapped for an error before the request is processed (`http_5xx`, `http_409`,
  `http_400`, `html200`): nothing happens server-side, e.g. no seat is taken on `/auth`.
* TRANSFORM: the request is processed and its answer damaged (`truncated`, `malformed`,
  `wrong_charset`, `bom`, `wrong_content_type`, `reset`): a login that is reset mid-answer still holds
  its seat, the nastiest realistic case for seat leaks.
* DELAY: `slow` sleeps `delay` seconds before the first byte, then answers normally.
* EXPIRE: `token_expired` drops the caller's session right before the request is checked, so the answer is
  iiko's own 401 for a dead token and the seat is free: what a client sees when its token outlives the
  server's ~1 h idle expiry or an iiko restart, at a moment of the test's choosing.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass

from .reply import HTML, Reply, text

REPLACE_KINDS = frozenset({"http_500", "http_502", "http_503", "http_504", "http_409", "http_400", "html200"})
TRANSFORM_KINDS = frozenset({"truncated", "malformed", "wrong_charset", "bom", "wrong_content_type", "reset",
                             "xml_bomb"})
DELAY_KINDS = frozenset({"slow"})
EXPIRE_KINDS = frozenset({"token_expired"})
FAULT_KINDS = REPLACE_KINDS | TRANSFORM_KINDS | DELAY_KINDS | EXPIRE_KINDS

DEFAULT_SLOW_DELAY = 2.0

TOMCAT_HTML = (
    "<!DOCTYPE html><html><head><title>Apache Tomcat/8.5.57 - Error report</title></head>"
    "<body><h1>HTTP Status 404 – Not Found</h1><hr class=\"line\" /><p><b>Type</b> Status Report</p>"
    "<p><b>Description</b> The origin server did not find a current representation for the target "
    "resource.</p><hr class=\"line\" /><h3>Apache Tomcat/8.5.57</h3></body></html>"
)


def _nginx(status: int, reason: str) -> Reply:
    page = (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    return Reply(status, "text/html", page.encode("ascii"))


@dataclass
class FaultRule:
    id: int
    endpoint: str
    kind: str
    count: int | None = None  # remaining firings; None = unlimited (probability rules)
    probability: float | None = None
    delay: float = DEFAULT_SLOW_DELAY
    fired: int = 0
    after: int = 0  # let this many matching requests through before the rule starts firing

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class FaultRegistry:
    """Active fault rules, checked in insertion order; the first that fires wins. Thread-safe."""

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 0
        self._rng = random.Random(f"faults|{seed}")

    def add(self, endpoint: str, kind: str, count: int | None = None, probability: float | None = None,
            delay: float | None = None, after: int = 0) -> FaultRule:
        """Add a rule. With neither count nor probability it fires once. `after` skips that many matching
        requests first, e.g. to break the third window of a long export rather than the first."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; choose one of {sorted(FAULT_KINDS)}")
        if not endpoint:
            raise ValueError("endpoint is required (an endpoint name or '*')")
        if count is not None and count < 1:
            raise ValueError("count must be >= 1")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if after < 0:
            raise ValueError("after must be >= 0")
        if count is None and probability is None:
            count = 1
        with self._lock:
            self._next_id += 1
            rule = FaultRule(self._next_id, endpoint.strip("/"), kind, count, probability,
                             DEFAULT_SLOW_DELAY if delay is None else float(delay), after=int(after))
            self._rules.append(rule)
            return rule

    def pick(self, endpoint: str) -> FaultRule | None:
        """The rule that fires for this request, if any (consumes one count)."""
        with self._lock:
            for rule in self._rules:
                if rule.endpoint not in ("*", endpoint):
                    continue
                if rule.count is not None and rule.count <= 0:
                    continue
                if rule.after > 0:
                    rule.after -= 1
                    continue
                if rule.probability is not None and self._rng.random() >= rule.probability:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                rule.fired += 1
                return rule
            return None

    def list(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()


def replacement(kind: str) -> Reply:
    """The answer for a REPLACE fault."""
    if kind == "http_500":
        return text(500, "java.net.SocketException: Connection reset")
    if kind == "http_502":
        return _nginx(502, "Bad Gateway")
    if kind == "http_503":
        return text(503, "Service Unavailable: server is busy, try again later")
    if kind == "http_504":
        return _nginx(504, "Gateway Time-out")
    if kind == "http_409":
        return text(409, "У вас нет права изменять документы задним числом.")
    if kind == "http_400":
        return text(400, "Argument for @NotNull parameter 'arg' of resto/api must not be null")
    if kind == "html200":
        return Reply(200, HTML, TOMCAT_HTML.encode("utf-8"))
    raise ValueError(kind)


def malform(body: bytes) -> bytes:
    """Leave an element unclosed right before the root's end tag, so a streaming parser gets through
    most of the document and then fails (the worst case for partial processing)."""
    end = body.rfind(b"</")
    if end > 0:
        return body[:end] + b"<garbled><unclosed attr=>" + body[end:]
    return body.rstrip(b"\n").replace(b"/>", b">", 1) + b"<garbled>\n" if body else b"<garbled"


def transform(kind: str, reply: Reply) -> Reply:
    """Damage a processed answer for a TRANSFORM fault (except `reset`, which the server does on the
    socket)."""
    if kind == "wrong_content_type":
        reply.content_type = "application/octet-stream"
        return reply
    body = reply.materialize()
    if kind == "truncated":
        reply.body = body[: max(1, len(body) // 2)]
    elif kind == "malformed":
        reply.body = malform(body)
    elif kind == "bom":
        reply.body = b"\xef\xbb\xbf" + body
    elif kind == "xml_bomb":  # well-formed, inside the right root, but past libxml2's depth limit (256)
        end = body.find(b">", body.find(b"<", body.find(b"?>") + 2 if body.startswith(b"<?") else 0)) + 1
        reply.body = body[:end] + b"<x>" * 300 + b"</x>" * 300 + body[end:]
    elif kind == "wrong_charset":
        # The XML declaration (and any charset in Content-Type) still says UTF-8: classic mojibake.
        reply.body = body.decode("utf-8", "replace").encode("cp1251", "replace")
    return reply
