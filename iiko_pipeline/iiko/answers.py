"""Turning a raw HTTP answer into a checked result or the right error.

Why here and not in the client: the mapping from status, content type and the server's exact error texts
(iiko Server API §3, §5.5, §6) to our error classes is the contract the layers above rely on. Keeping it in
one pure module makes it easy to read against the API reference and to test.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from .errors import (
    IikoApiError,
    IikoAuthError,
    IikoBadRequestError,
    IikoError,
    IikoLicenceBlockedError,
    IikoLicenceError,
    IikoPermissionError,
    IikoResponseError,
    IikoTransportError,
    licence_message,
)
from .models import IikoResponse
from .redact import redact_text, redact_url
from .transport import RawAnswer
from .xml import check_document

#: Statuses worth retrying: the server or a proxy may recover on its own.
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
MAX_TEXT = 500
HTML_HINT = "got an HTML page, not an API answer: check the base URL / proxy"


def error_text(raw: RawAnswer, secrets: Iterable[str | None] = ()) -> str:
    """The server's error body as text: decoded with its charset (UTF-8 by default), scrubbed of secrets,
    shortened. iiko error texts are short and human-readable, sometimes localised (409)."""
    try:
        text = raw.body.decode(raw.charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        text = raw.body.decode("utf-8", errors="replace")
    text = redact_text(text.strip(), secrets)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + f"... ({len(text) - MAX_TEXT} more characters)"
    return text or "(empty body)"


def _forbidden(text: str, endpoint: str, status: int, login: str) -> IikoApiError:
    lowered = text.lower()
    if "license enhancement is required" in lowered or "no connections available" in lowered:
        return IikoLicenceError(f"{licence_message()}. Server said: {text}", endpoint=endpoint,
                                status=status, text=text)
    if "is blocked within current license" in lowered:
        return IikoLicenceBlockedError(
            "the iiko licence does not include the API module (module is blocked within the current "
            "license): the API cannot be used on this server until the licence includes it; ask the iiko "
            f"partner to add the iikoAPI Server module. Server said: {text}",
            endpoint=endpoint, status=status, text=text,
        )
    return IikoPermissionError(
        f"the iiko user {login!r} may not call this method: grant it the back-office rights it needs "
        f"(or use another user). Server said: {text}",
        endpoint=endpoint, status=status, text=text,
    )


def raise_for_error(raw: RawAnswer, *, endpoint: str, display: str, login: str, is_login: bool,
                    secrets: Iterable[str | None]) -> None:
    """Raise the matching :class:`IikoError` unless ``raw`` is a 2xx answer that is not an HTML page."""
    secrets = tuple(secrets)
    status = raw.status
    error: IikoError | None = None
    if raw.media_type == "text/html":
        error = IikoTransportError(
            f"{HTML_HINT} ({display} answered HTTP {status} with text/html; a proxy, a login page or a "
            "Tomcat without iiko answered instead of the API)",
            endpoint=endpoint, status=status, transient=status in TRANSIENT_STATUSES,
        )
    elif 200 <= status < 300:
        return
    elif 300 <= status < 400:
        target = redact_text(redact_url(raw.location or "?"), secrets)
        error = IikoTransportError(
            f"{display} was redirected to {target}: the base URL is probably wrong (http instead of "
            "https, a moved server or a proxy login page); use the final address as base_url",
            endpoint=endpoint, status=status,
        )
    else:
        text = error_text(raw, secrets)
        if status == 401 and is_login:
            error = IikoAuthError(
                f"wrong login or password for user {login!r} (or the server is still starting and cannot "
                f"check passwords yet): check the credentials; not retried. Server said: {text}",
                endpoint=endpoint, status=status, text=text,
            )
        elif status == 401:
            error = IikoAuthError(
                "the token was not accepted (expired after ~1 h without requests, the server restarted, "
                f"or it is starting). Server said: {text}",
                endpoint=endpoint, status=status, text=text,
            )
        elif status == 403:
            error = _forbidden(text, endpoint, status, login)
        elif status == 400:
            error = IikoBadRequestError(
                f"the server rejected the request {display}: {text}. Fix the request parameters; retrying "
                "will not help", endpoint=endpoint, status=status, text=text,
            )
        elif status in TRANSIENT_STATUSES:
            error = IikoApiError(
                f"server error for {display}: {text}. Usually temporary; if it persists, check the iiko "
                "server log (full.log)", endpoint=endpoint, status=status, text=text, transient=True,
            )
        elif status == 404:
            error = IikoApiError(
                f"{display} not found: a wrong path, or a method this server version lacks. Server said: "
                f"{text}", endpoint=endpoint, status=status, text=text,
            )
        else:
            error = IikoApiError(f"{display} failed: {text}", endpoint=endpoint, status=status, text=text)
    raise error


def xml_answer(raw: RawAnswer, *, endpoint: str, display: str, expected_root: str, record_tag: str | None,
               accepted: Collection[str]) -> IikoResponse:
    """Check the content type, then the document (well-formed, complete, expected root), streaming."""
    if raw.media_type not in accepted:
        raise IikoResponseError(
            f"wrong content type {raw.content_type or '(none)'!r} for {display}; expected "
            f"{' or '.join(sorted(accepted))}. Check the base URL and the proxy",
            endpoint=endpoint, status=raw.status, kind="content_type",
        )
    root = check_document(raw.body, endpoint, expected_root, status=raw.status, record_tag=record_tag)
    return IikoResponse(endpoint=endpoint, status=raw.status, content_type=raw.content_type,
                        body=raw.body, root=root)


def token_answer(raw: RawAnswer, *, endpoint: str) -> str:
    """The token from a successful login: the stripped body (quotes removed). Never logged or shown."""
    token = raw.body.decode("utf-8", errors="replace").strip().strip('"').strip()
    if not token or len(token) > 200 or any(ch.isspace() or not ch.isprintable() for ch in token):
        raise IikoResponseError(
            f"the login answer ({len(raw.body)} bytes, {raw.content_type or 'no content type'}) does not "
            "look like a token: check the base URL and the proxy",
            endpoint=endpoint, status=raw.status, kind="token",
        )
    return token
