"""The error hierarchy of the iiko Server client.

Why a hierarchy: the layers above decide differently per kind of failure. A licence error may be retried by
the scheduler after a long pause, a permission or bad-request error needs a human, a transport error may go
away on its own. Every error names the endpoint (relative to ``/resto/api``, e.g.
``documents/export/incomingInvoice``) and the HTTP status (``None`` when no answer arrived), and its message
says what was wrong and what to do about it.

Secrets: messages are built by the client from redacted paths and scrubbed server texts. As a second line
of defence the constructor masks any ``key=``/``pass=`` value that slipped into a message anyway.
"""

from __future__ import annotations

from .redact import redact_text

LICENCE_MODULE_ID = "28008806"


class IikoError(Exception):
    """Base of all client errors: ``.endpoint``, ``.status``; ``str()`` never holds a secret.

    ``attempts`` is how many HTTP attempts were made before giving up (``None`` when not applicable), and
    ``transient`` tells whether the failure was of the kind that may go away on its own (5xx, resets,
    timeouts, truncated bodies); the client has already retried those within its :class:`RetryPolicy`.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None = None,
        attempts: int | None = None,
        transient: bool = False,
    ) -> None:
        self.message = redact_text(message)
        self.endpoint = endpoint
        self.status = status
        self.attempts = attempts
        self.transient = transient
        super().__init__(self.message)

    def __str__(self) -> str:
        where = self.endpoint
        if self.status is not None:
            where += f" (HTTP {self.status})"
        text = f"{where}: {self.message}"
        if self.attempts and self.attempts > 1:
            text += f" [gave up after {self.attempts} attempts]"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(endpoint={self.endpoint!r}, status={self.status!r}, "
            f"attempts={self.attempts!r}, message={self.message!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructors do not survive the default exception pickling; multiprocess
        # executors pickle errors, so rebuild from the attributes instead.
        return (_rebuild, (type(self), self.__dict__.copy()))

    def with_attempts(self, attempts: int) -> IikoError:
        """Record how many attempts were made (used when retries are exhausted); returns ``self``."""
        self.attempts = attempts
        return self


def _rebuild(cls: type[IikoError], state: dict[str, object]) -> IikoError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class IikoTransportError(IikoError):
    """No usable HTTP answer: connection refused or reset, timeouts, TLS failures, redirects, ``text/html``
    pages (a proxy or an empty Tomcat, not the API), or transient failures after the retries ran out.
    """


class IikoTlsError(IikoTransportError):
    """The TLS handshake failed (the server's certificate could not be verified, or it does not speak TLS): a
    transport error an operator fixes with the address or a CA bundle, not by waiting."""


class IikoApiError(IikoError):
    """The server answered with a non-2xx status; ``.text`` is iiko's known error text in our fixed wording
    (``answers.KNOWN_TEXTS``), or "" for anything else: the body itself is never kept (it may come from any host).

    ``definitive`` is the client's proof that the account cannot work until a human acts (issue 13.4): it is
    set only on the refusals that say so (a wrong password, :class:`IikoLicenceBlockedError`,
    :class:`IikoPermissionError`) and only when the same refusal came again on a second attempt after a
    pause and a fresh login. One such answer is not proof: an iiko that is restarting, reloading its licence
    or having a user's rights edited gives them for a moment. Only a definitive error marks the account
    disconnected (``core.failures.classify``); every other error leaves its connection state alone.
    """

    definitive: bool = False

    def __init__(self, message: str, *, endpoint: str, status: int | None, text: str = "", **kwargs) -> None:
        self.text = redact_text(text)
        super().__init__(message, endpoint=endpoint, status=status, **kwargs)


class IikoAuthError(IikoApiError):
    """401 on login (wrong login or password, or the server is still starting), or 401 again right after
    one re-login.

    ``definitive`` (see :class:`IikoApiError`) is set only when a login was refused twice, a pause apart, and
    not with iiko's "server is starting" text: the one proof that the stored credentials no longer work (the
    account is then marked disconnected). A "starting" answer and a 401 on a data call after a fresh login
    are ``transient``.
    """


class IikoLicenceError(IikoApiError):
    """403 "License enhancement is required: no connections available for module 28008806".

    Every live token holds one seat of the API licence; all are taken. Never retried by the client: free
    seats first (log out stale sessions or wait for their ~1 h expiry), or buy more.
    """


class IikoLicenceBlockedError(IikoApiError):
    """403 "Module ... is blocked within current license": the licence has no API module at all.

    The client believes it (``definitive``) only when it persists after a logout, a pause and a new login.
    """


class IikoPermissionError(IikoApiError):
    """403 "Permission denied" (or another 403): the iiko user lacks the back-office right for this call.

    The client believes it (``definitive``) only when it persists after a logout, a pause and a new login.
    """


class IikoNotAvailableError(IikoApiError):
    """404 on a method that only newer iiko versions have (the ``v2`` product lists need 6.1+): not available
    on this iiko version. Never retried; the pipeline skips that entity, not the run."""


class IikoBadRequestError(IikoApiError):
    """400: the server rejected our parameters (e.g. "Wrong date format: ..."). Never retried."""


class IikoResponseError(IikoError):
    """A 2xx answer we cannot use: malformed or truncated XML, an empty body, an unexpected root element,
    a wrong content type or a token that does not look like one; a JSON answer that is malformed or not
    an array of objects.

    ``kind`` is one of ``"syntax"``, ``"empty"``, ``"root"`` (also: JSON that is not an array of objects),
    ``"content_type"``, ``"token"``, ``"limit"`` (the parser's safety limits: an XML bomb, absurd depth or
    text); the first two are transient (a proxy may have
    cut the body short) and are retried by the client.
    """

    def __init__(self, message: str, *, endpoint: str, status: int | None = None, kind: str = "syntax",
                 **kwargs) -> None:
        self.kind = kind
        kwargs.setdefault("transient", kind in {"syntax", "empty"})
        super().__init__(message, endpoint=endpoint, status=status, **kwargs)


def licence_message() -> str:
    """The operator-facing explanation for :class:`IikoLicenceError`."""
    return (
        f"all API licence seats of module {LICENCE_MODULE_ID} are taken (every logged-in session holds a "
        "seat until it logs out or its token expires, about 1 h after its last request): log out stale "
        "sessions (or wait for their ~1 h expiry) or buy more seats; do not retry immediately, and never "
        "run two syncs against the same iiko server at once"
    )
