"""A response before it hits the socket, so faults can rewrite it and the server can stream it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

TEXT = "text/plain; charset=UTF-8"
JSON = "application/json"
HTML = "text/html;charset=utf-8"


@dataclass
class Reply:
    """Status, content type and body. `body` is bytes, or an iterable of str/bytes pieces to stream."""

    status: int
    content_type: str
    body: bytes | Iterable[str | bytes] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def materialize(self) -> bytes:
        """The whole body as bytes (consumes a streaming body)."""
        if isinstance(self.body, bytes):
            return self.body
        data = b"".join(p.encode("utf-8") if isinstance(p, str) else p for p in self.body)
        self.body = data
        return data


def text(status: int, message: str) -> Reply:
    """A plain-text answer, the shape of every iiko API error."""
    return Reply(status, TEXT, message.encode("utf-8"))


def json_reply(status: int, data: object) -> Reply:
    return Reply(status, JSON, json.dumps(data, ensure_ascii=False).encode("utf-8"))
