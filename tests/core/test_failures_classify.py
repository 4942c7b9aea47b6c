"""`classify` marks an account disconnected only on the client's proof (issue 13.4): fast, no Dagster, no emulator.

The three refusals that would disconnect (a wrong password, a blocked API module, missing rights) do so only
when `definitive` (the same refusal twice, a pause apart); a single one is a failure of the same kind that
leaves the connection state alone and is worth a step retry.
"""

from __future__ import annotations

import pickle

import pytest
import sqlalchemy.exc

from iiko_pipeline.core.failures import FailureKind, classify, retried_in_place
from iiko_pipeline.iiko.errors import (
    IikoApiError,
    IikoAuthError,
    IikoLicenceBlockedError,
    IikoLicenceError,
    IikoPermissionError,
)

REFUSALS = [
    (IikoAuthError, 401, FailureKind.CREDENTIALS),
    (IikoLicenceBlockedError, 403, FailureKind.LICENCE),
    (IikoPermissionError, 403, FailureKind.RIGHTS),
]


def _error(cls: type[IikoApiError], status: int, *, definitive: bool) -> IikoApiError:
    error = cls("refused", endpoint="auth", status=status)
    if definitive:
        error.definitive = True
    return error


@pytest.mark.parametrize(("cls", "status", "kind"), REFUSALS, ids=lambda v: getattr(v, "__name__", None))
def test_a_proven_refusal_disconnects_and_is_not_retried(cls, status, kind) -> None:
    failure = classify(_error(cls, status, definitive=True))
    assert failure.kind is kind and failure.disconnects and not failure.retryable
    assert failure.iiko_error == cls.__name__


@pytest.mark.parametrize(("cls", "status", "kind"), REFUSALS, ids=lambda v: getattr(v, "__name__", None))
def test_a_single_refusal_keeps_the_kind_and_never_disconnects(cls, status, kind) -> None:
    failure = classify(_error(cls, status, definitive=False))
    assert failure.kind is kind and not failure.disconnects


@pytest.mark.parametrize("cls", [IikoLicenceBlockedError, IikoPermissionError])
def test_an_unproven_blocked_module_or_missing_right_is_worth_a_step_retry(cls) -> None:
    assert classify(_error(cls, 403, definitive=False)).retryable


def test_a_transient_login_refusal_is_transient_even_if_marked_definitive() -> None:
    """"Server is starting" is never proof (the client never marks it; the classifier does not trust it)."""
    error = IikoAuthError("starting", endpoint="auth", status=401, transient=True)
    error.definitive = True
    failure = classify(error)
    assert failure.kind is FailureKind.TRANSIENT and failure.retryable and not failure.disconnects


def test_full_licence_seats_never_disconnect() -> None:
    """Not a refusal of the account: seats free themselves (no re-check either, a login would take one)."""
    failure = classify(IikoLicenceError("full", endpoint="auth", status=403))
    assert failure.kind is FailureKind.LICENCE and not failure.disconnects and not failure.retryable


@pytest.mark.parametrize(("cls", "status", "kind"), REFUSALS, ids=lambda v: getattr(v, "__name__", None))
def test_definitive_survives_pickling(cls, status, kind) -> None:
    """Multiprocess executors pickle errors between the client and the classifier."""
    for definitive in (True, False):
        copy = pickle.loads(pickle.dumps(_error(cls, status, definitive=definitive)))  # noqa: S301 - our own bytes
        assert copy.definitive is definitive and classify(copy).disconnects is definitive


def _dropped_connection() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


def test_a_dropped_warehouse_connection_is_retried_in_place_and_the_result_returned() -> None:
    calls, waits, said = [], [], []

    def checks() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _dropped_connection()
        return "checked"

    assert retried_in_place(checks, retries=2, first_wait=1.0, log=said.append, sleep=waits.append) == "checked"
    assert len(calls) == 3 and len(waits) == 2 and 0.5 <= waits[0] <= 1.5 and 1.0 <= waits[1] <= 3.0
    assert all(line.startswith("warehouse failure, retrying in") for line in said)


def test_a_failure_that_cannot_heal_is_raised_at_once_and_the_last_retryable_one_after_the_retries() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("our bug")

    with pytest.raises(ValueError, match="our bug"):
        retried_in_place(broken, retries=2, first_wait=0.0, log=print, sleep=lambda _: None)
    assert len(calls) == 1

    def down() -> None:
        calls.append(1)
        raise _dropped_connection()

    calls.clear()
    with pytest.raises(sqlalchemy.exc.OperationalError):
        retried_in_place(down, retries=2, first_wait=0.0, log=lambda _: None, sleep=lambda _: None)
    assert len(calls) == 3
