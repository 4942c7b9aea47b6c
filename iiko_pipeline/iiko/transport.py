"""One HTTP exchange: send a request, read the whole body as bytes, translate failures.

Why a separate module: ``requests``' exceptions carry the full URL including the query string (our token,
or the password hash on the GET login fallback). They are translated here into :class:`IikoTransportError`
described by exception *type*, the redacted path and the underlying OS error, and raised outside the
``except`` block so that no exception chain (``__cause__`` or ``__context__``) leads back to them.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import requests
import urllib3.exceptions
from requests import exceptions as rex

from .errors import IikoTransportError
from .redact import redact_text


@dataclass(frozen=True)
class RawAnswer:
    """An HTTP answer whose body was read completely."""

    status: int
    content_type: str  # the full header value, e.g. "application/xml;charset=UTF-8" ("" when absent)
    body: bytes = field(repr=False)
    elapsed: float
    location: str | None = None  # the Location header of a redirect

    @property
    def media_type(self) -> str:
        """The content type without parameters, lower case (``application/xml``)."""
        return self.content_type.split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of the content type, if any."""
        for part in self.content_type.split(";")[1:]:
            name, _, value = part.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                return value.strip().strip('"')
        return None


def _root_cause(exc: BaseException, secrets: Iterable[str | None]) -> str:
    """The innermost OS-level reason (``ConnectionResetError: [Errno 104] ...``) or the type chain."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    types: list[str] = []
    while stack:
        current = stack.pop(0)
        if id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        types.append(type(current).__name__)
        if type(current).__module__ == "builtins" and isinstance(current, OSError) and current.errno:
            return redact_text(f"{type(current).__name__}: [Errno {current.errno}] {current.strerror}", secrets)
        if isinstance(current, http.client.IncompleteRead):
            return f"IncompleteRead: {len(current.partial)} bytes read, {current.expected} more expected"
        candidates: list[object] = [getattr(current, "reason", None), current.__cause__, current.__context__,
                                    *current.args]
        stack.extend(c for c in candidates if isinstance(c, BaseException))
    return " <- ".join(dict.fromkeys(types))


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    endpoint: str,
    display: str,
    params: Sequence[tuple[str, str]] | None,
    data: Mapping[str, str] | None,
    timeout: tuple[float, float],
    verify: bool | str,
    secrets: Iterable[str | None],
) -> RawAnswer:
    """Send one request and read the full body as bytes (never ``.text``: the XML declaration decides the
    encoding). ``display`` is the redacted ``METHOD path?query`` used in messages.

    Raises :class:`IikoTransportError`; ``transient`` is True for connection failures, resets, incomplete
    reads and timeouts, False for TLS and configuration problems.
    """
    secrets = tuple(secrets)
    started = time.monotonic()
    problem: tuple[str, bool] | None = None
    try:
        with session.request(method, url, params=params, data=data, timeout=timeout, verify=verify,
                             allow_redirects=False, stream=True) as response:
            body = response.content
            return RawAnswer(
                status=response.status_code,
                content_type=response.headers.get("Content-Type", ""),
                body=body,
                elapsed=time.monotonic() - started,
                location=response.headers.get("Location"),
            )
    except rex.SSLError as exc:
        problem = (
            f"TLS failed for {display} ({_root_cause(exc, secrets)}): check the certificate; set `verify` to "
            "the path of a CA bundle that signs it (or False only for a trusted on-premise server)",
            False,
        )
    except rex.ConnectTimeout as exc:
        problem = (f"connect timeout after {timeout[0]} s for {display} ({_root_cause(exc, secrets)}): "
                   "the server is unreachable or overloaded; check host, port and firewall", True)
    except rex.ReadTimeout:
        problem = (f"read timeout: no data for {timeout[1]} s from {display}; the server is busy or the "
                   "period is too large (use shorter windows or a longer read timeout)", True)
    except (rex.ChunkedEncodingError, rex.ContentDecodingError, urllib3.exceptions.ProtocolError,
            urllib3.exceptions.DecodeError, http.client.HTTPException) as exc:
        problem = (f"the connection broke while reading the answer to {display} ({type(exc).__name__}: "
                   f"{_root_cause(exc, secrets)}): a reset or an incomplete body", True)
    except (rex.InvalidURL, rex.MissingSchema, rex.InvalidSchema, rex.InvalidHeader) as exc:
        problem = (f"invalid request for {display} ({type(exc).__name__}): check the base URL", False)
    except rex.ConnectionError as exc:
        cause = _root_cause(exc, secrets)
        if "ReadTimeout" in cause:
            problem = (f"read timeout while reading the answer to {display} (no data for {timeout[1]} s)",
                       True)
        else:
            problem = (f"connection to {display} failed ({type(exc).__name__}: {cause}): the server is "
                       "down, restarting or unreachable, or a proxy dropped the connection", True)
    except rex.RequestException as exc:
        problem = (f"request {display} failed ({type(exc).__name__}: {_root_cause(exc, secrets)})", False)
    except OSError as exc:  # raw socket errors that escaped requests' wrapping
        problem = (f"connection to {display} failed ({_root_cause(exc, secrets)})", True)
    assert problem is not None  # every except branch above sets it; the try block returns otherwise
    message, transient = problem
    raise IikoTransportError(redact_text(message, secrets), endpoint=endpoint, status=None,
                             transient=transient)
