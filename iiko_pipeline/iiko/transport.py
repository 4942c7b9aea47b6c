"""One HTTP exchange: send a request, read the whole body as bytes, translate failures.

Why a separate module: ``requests``' exceptions carry the full URL including the query string (our token,
or the password hash on the GET login fallback). They are translated here into :class:`IikoTransportError`
described by exception *type*, the redacted path and the underlying OS error, and raised outside the
``except`` block so that no exception chain (``__cause__`` or ``__context__``) leads back to them.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

import requests
import urllib3.exceptions
from requests import exceptions as rex

from .errors import IikoTlsError, IikoTransportError
from .redact import redact_text


class BodySink(Protocol):
    """Where a large 2xx body goes as it arrives instead of memory (e.g. the raw store's spool). The transport
    writes the pieces of one attempt and closes the sink when the body is complete, or discards it; the
    client's answer check reads it back (`open`, `size`, `blank`) and knows it by its digest (`sha256`)."""

    size: int  # bytes written
    blank: bool  # nothing but whitespace written

    def write(self, piece: bytes) -> None: ...

    def close(self) -> None: ...

    def discard(self) -> None: ...

    def open(self) -> IO[bytes]: ...

    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True)
class RawAnswer:
    """An HTTP answer whose body was read completely: into ``body``, or into ``sink`` (``body`` then empty)."""

    status: int
    content_type: str  # the full header value, e.g. "application/xml;charset=UTF-8" ("" when absent)
    body: bytes = field(repr=False)
    elapsed: float
    location: str | None = None  # the Location header of a redirect
    sink: BodySink | None = field(default=None, repr=False)

    @property
    def media_type(self) -> str:
        """The content type without parameters, lower case (``application/xml``)."""
        return media_type_of(self.content_type)

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of the content type, if any."""
        return content_charset(self.content_type)


def media_type_of(content_type: str) -> str:
    """A content type without parameters, lower case (``application/xml``)."""
    return content_type.split(";", 1)[0].strip().lower()


def content_charset(content_type: str) -> str | None:
    """The ``charset`` parameter of a content type, if any."""
    for part in content_type.split(";")[1:]:
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


#: Read the body in pieces of this size (decompressed): the size cap and the deadline are checked per piece.
_PIECE = 1 << 16


@dataclass(frozen=True)
class Limits:
    """What one answer may cost: its decompressed size, and the wall time of the whole exchange.

    The read timeout bounds each socket read only: a server (or anything `base_url` points at) sending a byte
    now and then keeps an exchange alive for ever, and a small gzip answer may decompress to gigabytes."""

    max_bytes: int = 1 << 30  # 1 GiB: a week of a large chain's invoices is well under 100 MB
    deadline: float = 3600.0  # seconds for one exchange, first byte to last


def _cut_at_deadline(response: requests.Response, deadline: float) -> threading.Timer:
    """Shut the connection's socket down when the deadline passes, so a read blocked on a dripping server
    returns (closing alone does not wake a blocked read)."""
    def cut() -> None:
        sock = getattr(getattr(response.raw, "connection", None), "sock", None)
        if sock is None:  # http.client lets go of it once the headers are read: take it from the body's reader
            reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
            sock = getattr(getattr(reader, "raw", None), "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: nothing to cut
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(deadline, 0.0), cut)
    timer.daemon = True
    timer.start()
    return timer


def _read_bounded(response: requests.Response, limits: Limits, started: float, display: str,
                  sink: BodySink | None = None) -> tuple[bytes | None, tuple[str, bool] | None]:
    """The whole body (empty when it went to ``sink``), or why not: too large (not retried: the same answer is
    as large next time) or past the deadline (retried: a slow moment may pass)."""
    pieces: list[bytes] = []
    keep = pieces.append if sink is None else sink.write
    size = 0
    timer = _cut_at_deadline(response, limits.deadline - (time.monotonic() - started))
    try:
        for piece in response.iter_content(chunk_size=_PIECE):
            size += len(piece)
            if size > limits.max_bytes:
                return None, (f"the answer to {display} is larger than {limits.max_bytes:,} bytes decompressed "
                              "(max_answer_bytes): refused; use shorter windows or raise the limit", False)
            keep(piece)
    except Exception:
        if time.monotonic() - started < limits.deadline:
            raise
    finally:
        timer.cancel()
    if time.monotonic() - started >= limits.deadline:
        return None, (f"the answer to {display} took longer than {limits.deadline:.0f} s (request_deadline), "
                      f"{size:,} bytes read: the server or the network is too slow", True)
    return b"".join(pieces), None


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    endpoint: str,
    display: str,
    params: Sequence[tuple[str, str]] | None,
    data: Mapping[str, str] | bytes | None,
    timeout: tuple[float, float],
    verify: bool | str,
    secrets: Iterable[str | None],
    limits: Limits = Limits(),
    headers: Mapping[str, str] | None = None,
    sink: Callable[[], BodySink] | None = None,
) -> RawAnswer:
    """Send one request and read the full body as bytes (never ``.text``: the XML declaration decides the
    encoding). ``display`` is the redacted ``METHOD path?query`` used in messages. ``data`` is a form (a mapping)
    or a ready body (bytes, e.g. JSON, with its ``Content-Type`` in ``headers``).

    Raises :class:`IikoTransportError` (:class:`IikoTlsError` when the TLS handshake failed); ``transient`` is
    True for connection failures, resets, incomplete reads, timeouts and a passed deadline, False for TLS and
    configuration problems and an answer over the size cap (`limits`).

    ``sink``: a factory of a :class:`BodySink` a 2xx body that is not an HTML page is written to as it arrives,
    so it is never held in memory; a body that did not arrive whole is discarded from it.
    """
    secrets = tuple(secrets)
    started = time.monotonic()
    problem: tuple[str, bool] | None = None
    error_class: type[IikoTransportError] = IikoTransportError
    try:
        with session.request(method, url, params=params, data=data, headers=headers, timeout=timeout,
                             verify=verify, allow_redirects=False, stream=True) as response:
            content_type = response.headers.get("Content-Type", "")
            target = sink() if sink is not None and 200 <= response.status_code < 300 \
                and media_type_of(content_type) != "text/html" else None
            try:
                body, problem = _read_bounded(response, limits, started, display, target)
            except BaseException:
                if target is not None:
                    target.discard()
                raise
            if target is not None and body is None:
                target.discard()
            elif target is not None:
                target.close()
            if body is not None:
                return RawAnswer(
                    status=response.status_code,
                    content_type=content_type,
                    body=body,
                    elapsed=time.monotonic() - started,
                    location=response.headers.get("Location"),
                    sink=target,
                )
    except rex.SSLError as exc:
        error_class = IikoTlsError
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
    raise error_class(redact_text(message, secrets), endpoint=endpoint, status=None, transient=transient)
