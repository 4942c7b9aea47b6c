"""One sync per account at a time (one run per process), and telling iiko failures (502) from our own (500) after a run.

The guard is two checks: an in-process claim (two requests to this API for one account) and the Dagster
instance (a run of the account started elsewhere: the daemon's schedules and sensors, the CLI, another API
process). Every run carries `ACCOUNT_TAG`, so the instance answers the second check with one query.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import dagster as dg

from iiko_pipeline.defs.constants import IIKO_POOL
from iiko_pipeline.defs.onboarding import running_run

_IIKO_ERROR_NAME = re.compile(r"\bIiko\w*Error\b")

# Runs started in this process, one at a time. Dagster 1.13 calls logging.config.dictConfig whenever a run
# starts (DagsterInstance.get_yaml_python_handlers), holding the logging module lock while it takes every
# handler's lock, while a running run's event handler holds its own lock and then needs the module lock (a
# SQLAlchemy debug check): two runs on two threads of one process deadlock. Serialising them avoids it; the
# iiko_api pool serialises the iiko steps anyway.
_RUN_LOCK = threading.Lock()


@contextmanager
def one_run_at_a_time() -> Iterator[None]:
    with _RUN_LOCK:
        yield


class AccountBusyError(Exception):
    """A sync of this account is already running; `run_id` when the instance knows which run."""

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class SyncGuard:
    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def running_run(self, account: str) -> dg.DagsterRun | None:
        return running_run(self.instance, account)

    def is_busy(self, account: str) -> bool:
        with self._lock:
            return account in self._busy

    @contextmanager
    def claim(self, account: str) -> Iterator[None]:
        """Hold the account in this process for the block (cheap: call it on the event loop).

        Raises AccountBusyError at once if another request of this API holds it.
        """
        with self._lock:
            if account in self._busy:
                raise AccountBusyError(f"a sync of account {account} is already running in this API; "
                                       "wait for it to finish")
            self._busy.add(account)
        try:
            yield
        finally:
            with self._lock:
                self._busy.discard(account)

    def ensure_idle(self, account: str) -> None:
        """Raise AccountBusyError if the instance has a run of the account in progress (blocking: a query)."""
        run = self.running_run(account)
        if run is not None:
            raise AccountBusyError(
                f"run {run.run_id} of account {account} is {run.status.value.lower()}; wait for it to finish "
                "(if it is stuck, terminate it in the Dagster UI)", run.run_id)


@lru_cache(maxsize=1)
def iiko_step_keys() -> frozenset[str]:
    """Steps that call iiko: the assets in the `iiko_api` pool (one licence seat at a time)."""
    from iiko_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    return frozenset(key.to_user_string() for key in graph.get_all_asset_keys()
                     if getattr(graph.get(key).assets_def.op, "pool", None) == IIKO_POOL)


def _chain(error: object) -> Iterator[object]:
    seen = 0
    pending = [error]
    while pending and seen < 20:
        current = pending.pop(0)
        if current is None:
            continue
        seen += 1
        yield current
        pending += [getattr(current, "cause", None), getattr(current, "context", None)]


def _first_line(message: str, cls_name: str | None) -> str:
    text = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    # SerializableErrorInfo messages start with the exception's qualified name ("pkg.mod.Cls: text")
    head, sep, rest = text.partition(": ")
    if sep and cls_name and head.rsplit(".", 1)[-1] == cls_name:
        text = rest
    return text[:1000]


def iiko_failure(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The iiko error that failed the run, or None when it failed for another reason.

    An iiko failure is a step failure whose error chain holds an `Iiko...Error` (also after step retries ran
    out); an intentional `dg.Failure` raised by an iiko-calling step (credentials, licence, rights: the
    assets turn those into non-retryable failures carrying the connection error); or a failed check whose
    metadata reports an `Iiko...Error` (an invoice export that stopped part-way).
    """
    iiko_steps = iiko_step_keys()
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = record.dagster_event
        if event is None or event.step_failure_data is None:
            continue
        step, data = event.step_key or "run", event.step_failure_data
        for error in _chain(data.error):
            cls_name = getattr(error, "cls_name", None)
            message = getattr(error, "message", "") or ""
            if (cls_name or "").startswith("Iiko") or _IIKO_ERROR_NAME.search(message):
                return f"{step}: {_first_line(message, cls_name)}"
        if step in iiko_steps and data.user_failure_data is not None:
            return f"{step}: {(data.user_failure_data.description or '').strip()[:1000]}"
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data if record.dagster_event else None
        if evaluation is None or getattr(evaluation, "passed", True):
            continue
        for value in (evaluation.metadata or {}).values():  # e.g. an export that stopped at an iiko error
            raw = getattr(value, "value", value)
            for text in map(str, raw if isinstance(raw, (list, tuple)) else [raw]):
                match = _IIKO_ERROR_NAME.search(text)
                if match:
                    check = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
                    return f"check {check}: {text[match.start():].strip().splitlines()[0][:1000]}"
    return None
