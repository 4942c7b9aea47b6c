"""Redaction of secrets in URLs and free text.

Why a module of its own: the token (``key``) travels in the query string of every call and the password
hash (``pass``) in the login URL when the GET fallback is used. Anything that prints a URL or an exception
text (our logs, our error messages, urllib3's debug log) must go through these helpers first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"

#: Query/form parameters whose values are secrets. ``key`` is the session token, ``pass`` the SHA-1.
SECRET_PARAMS = frozenset({"key", "pass", "password", "token"})

# key=..., pass=... inside any text (URLs embedded in exception messages, log lines, cookies).
_SECRET_PAIR = re.compile(r"(?i)\b(key|pass|password|token)=([^&\s\"'<>;,)]+)")
# user:password@host in a URL.
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@")


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with ``key=``/``pass=`` values, URL user info and every known secret masked.

    ``secrets`` are exact strings (the token, the hash) replaced wherever they occur, which also catches
    them outside of a ``name=value`` pair (e.g. a server error text that echoes a parameter).
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _SECRET_PAIR.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)


def redact_url(url: str) -> str:
    """Return ``url`` with secret query parameters and user info replaced by ``***``.

    Works on absolute URLs and on bare paths with a query (``/resto/api/x?key=...``).
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class RedactingFilter(logging.Filter):
    """A logging filter that masks ``key=``/``pass=`` values in a record before any handler sees it.

    Installed on urllib3's connection-pool logger, which logs every request line (with our token in the
    query string) at DEBUG level.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix; let logging report it
            return True
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER_NAME = "iiko_pipeline.redact"


def install_third_party_log_redaction() -> None:
    """Attach :class:`RedactingFilter` to urllib3's request logger once per process (idempotent)."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(getattr(f, "name", None) == _FILTER_NAME for f in logger.filters):
        logger.addFilter(RedactingFilter(_FILTER_NAME))
