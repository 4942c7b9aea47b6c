"""One typed failure for every way a sync step can fail, so nobody upstream has to read error text.

The client already knows what kind of error it saw (`IikoError` subclasses, `transient`); this keeps that
knowledge on the way up: the Dagster layer decides retry or not from `retryable`, the API its status code
from `kind`, and the account's connection state changes only for the kinds that say the credentials, the
licence or the user's rights are at fault, and only when the client proved it (`definitive`: the same refusal
twice, a pause apart; issue 13.4). `reason` is safe to show (the client's messages never hold a secret).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

import sqlalchemy.exc

from iiko_pipeline.iiko.errors import (
    IikoAuthError,
    IikoBadRequestError,
    IikoError,
    IikoLicenceBlockedError,
    IikoLicenceError,
    IikoPermissionError,
    IikoTransportError,
)

T = TypeVar("T")
# Step retries on top of the client's own (which already cover short blips): for outages of minutes.
# IIKO_STEP_RETRY_DELAY_SECONDS tunes the first wait (read when this module loads).
STEP_RETRIES = 2
STEP_RETRY_DELAY = float(os.environ.get("IIKO_STEP_RETRY_DELAY_SECONDS", "10"))


class FailureKind(StrEnum):
    CREDENTIALS = "credentials"  # iiko rejected the login
    LICENCE = "licence"  # no free licence seat, or the API module is not licensed
    RIGHTS = "rights"  # the iiko user lacks a right the call needs
    TRANSIENT = "transient"  # the network, a 5xx, a truncated answer from iiko: worth a retry
    BAD_DATA = "bad_data"  # iiko answered something we cannot use, or a request it refused (400)
    WAREHOUSE = "warehouse"  # our database dropped the connection or was locked: worth a retry
    PREREQUISITE = "prerequisite"  # something the entity references has never synced
    BUSY = "busy"  # another run of the account held it for longer than this run would wait
    CONFIG = "config"  # the run asked for something impossible (dates, mode)
    INTERNAL = "internal"  # our own bug or an unexpected state

    @property
    def from_iiko(self) -> bool:
        """Whether the cause lies at the iiko server (the API answers 502 for these, 500 for the rest)."""
        return self in _FROM_IIKO


_FROM_IIKO = frozenset({FailureKind.CREDENTIALS, FailureKind.LICENCE, FailureKind.RIGHTS, FailureKind.TRANSIENT,
                        FailureKind.BAD_DATA})
#: What a dropped or busy database says (psycopg2, sqlite3): worth a retry; anything else from SQL is our bug.
_DB_TRANSIENT = ("database is locked", "could not connect", "server closed the connection", "terminating connection",
                 "connection refused", "the database system is starting up", "the database system is shutting down")


class SyncFailure(Exception):
    """A step failed: what kind, whether a retry can help, and a reason safe to show anywhere.

    `disconnects` marks the kinds that mean the stored credentials no longer work (the account is marked
    disconnected until someone reconnects it)."""

    def __init__(self, kind: FailureKind, reason: str, *, retryable: bool = False, disconnects: bool = False,
                 iiko_error: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.retryable = retryable
        self.disconnects = disconnects
        self.iiko_error = iiko_error  # the client's error class, for the reader of a log

    def __repr__(self) -> str:
        return f"SyncFailure({self.kind.value}, retryable={self.retryable}, {self.reason!r})"


#: (error class, kind, label, disconnects when `definitive`). IikoAuthError is classified before the table is read.
_IIKO_KINDS: tuple[tuple[type[IikoError], FailureKind, str, bool], ...] = (
    (IikoAuthError, FailureKind.CREDENTIALS, "wrong login or password", True),
    (IikoLicenceBlockedError, FailureKind.LICENCE, "the iiko API module is not licensed on this server", True),
    (IikoLicenceError, FailureKind.LICENCE, "no free iiko API licence seat", False),
    (IikoPermissionError, FailureKind.RIGHTS, "the iiko user lacks the rights the API needs", True),
    (IikoBadRequestError, FailureKind.BAD_DATA, "iiko refused the request", False),
    (IikoTransportError, FailureKind.TRANSIENT, "the iiko server could not be reached or did not answer as iiko",
     False),
)


def describe(exc: BaseException) -> str:
    """A specific, secret-free sentence for an error (also the connect flow's `connection_error`)."""
    if isinstance(exc, IikoAuthError) and exc.transient:
        return f"the iiko server did not accept the session (starting or restarting): {exc}"
    for cls, _kind, label, _ in _IIKO_KINDS:
        if isinstance(exc, cls):
            return f"{label}: {exc}"
    if isinstance(exc, IikoError):
        return f"iiko error: {exc}"
    return f"{type(exc).__name__}: {exc}"


def classify(exc: BaseException) -> SyncFailure:
    """The typed failure for any exception a step raised."""
    if isinstance(exc, SyncFailure):
        return exc
    if isinstance(exc, IikoAuthError):  # disconnect only on proof: a login refused twice, a pause apart
        if exc.transient:
            return SyncFailure(FailureKind.TRANSIENT, describe(exc), retryable=True, iiko_error=type(exc).__name__)
        return SyncFailure(FailureKind.CREDENTIALS, describe(exc), disconnects=exc.definitive,
                           iiko_error=type(exc).__name__)
    for cls, kind, _label, on_proof in _IIKO_KINDS:
        if isinstance(exc, cls):
            if on_proof and not getattr(exc, "definitive", False):
                # A blocked module or missing rights that the client could not confirm: its re-check got a
                # different answer (the server's answers were changing: a restart, a licence reload, rights
                # being edited), or the error never went through that re-check. Not proof, so the account
                # stays connected; a step retry later costs one login (freed at its end) and either works or
                # brings the proof, so it is worth one, like any failure that may heal.
                return SyncFailure(kind, describe(exc), retryable=True, iiko_error=type(exc).__name__)
            retryable = kind is FailureKind.TRANSIENT
            return SyncFailure(kind, describe(exc), retryable=retryable, disconnects=on_proof,
                               iiko_error=type(exc).__name__)
    if isinstance(exc, IikoError):  # e.g. a malformed or truncated answer: the client says whether it may heal
        kind = FailureKind.TRANSIENT if exc.transient else FailureKind.BAD_DATA
        return SyncFailure(kind, describe(exc), retryable=exc.transient, iiko_error=type(exc).__name__)
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        text = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        if exc.connection_invalidated or any(marker in text.lower() for marker in _DB_TRANSIENT):
            return SyncFailure(FailureKind.WAREHOUSE, f"warehouse: {text}", retryable=True)
        return SyncFailure(FailureKind.INTERNAL, f"warehouse: {type(exc.orig).__name__}: {text}")
    return SyncFailure(FailureKind.INTERNAL, describe(exc))


def retry_wait(first_wait: float, attempt: int) -> float:
    """Exponential back-off with jitter: the wait before retry `attempt` + 1 (0-based)."""
    return first_wait * (2 ** attempt) * random.uniform(0.5, 1.5)


def retry_note(failure: SyncFailure, wait: float) -> str:
    """The log line of a retry, a step's or one in place: the same words in the event log either way."""
    return f"{failure.kind.value} failure, retrying in {wait:.1f} s: {failure.reason}"


def retried_in_place(action: Callable[[], T], *, retries: int, first_wait: float, log: Callable[[str], None],
                     sleep: Callable[[float], None] = time.sleep) -> T:
    """`action()`, run again here after a retryable failure (up to `retries` times); any other failure, or the
    last, is raised as it came. For read-only work after a step's commits (the table step's report and checks):
    retrying the whole step there would write its windows a second time for a dropped connection."""
    for attempt in range(retries + 1):
        try:
            return action()
        except Exception as exc:
            failure = classify(exc)
            if not failure.retryable or attempt == retries:
                raise
            wait = retry_wait(first_wait, attempt)
            log(retry_note(failure, wait))
            sleep(wait)
    raise AssertionError("unreachable")  # the loop returns or raises
