"""Jobs run ahead in worker processes, their results taken back in order: how the frame step uses both cores.

Why processes: parsing XML and typing values is CPU work that holds the GIL, so threads would take turns on one
core. A year of invoices is fifty windows, each parsed and adapted independently of the others, so two workers
take the step to about half its time on two cores (measured: 1.8x for four large windows).

Why `fork`: a worker starts in milliseconds with the code already imported, where `spawn` or `forkserver` would
import the caller's main module again (for a Dagster run process, Dagster's whole command line, over a second).
The jobs only read files and compute: they touch no database connection, lock or thread the parent holds.

Why the caller keeps the order and the decisions: a job's result is only a proposal. The caller takes results in
the order it submitted them, and redoes a job in its own process where the result is missing (the job failed,
or could not be sent), so an error is raised there with its own traceback and nothing is skipped.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from iiko_pipeline.warehouse.settings import count_setting

Item = TypeVar("Item")

#: Worker processes per parsing step; 1 (or 0) runs everything in the step's own process.
WORKERS_ENV = "IIKO_PARSE_WORKERS"


def parse_workers() -> int:
    """How many worker processes a step may use: `IIKO_PARSE_WORKERS`, else the machine's cores up to 2 (more
    workers hold more windows' memory at once, and a deployment runs several syncs side by side anyway)."""
    return count_setting(WORKERS_ENV, max(1, min(2, os.cpu_count() or 1)), "worker processes")


def can_send(*objects: Any) -> bool:
    """Whether these can travel to a worker process (module-level functions and plain data can; closures and
    open files cannot)."""
    try:
        pickle.dumps(objects)
    except (pickle.PicklingError, TypeError, AttributeError):
        return False
    return True


def run_ahead(items: Iterable[Item], job: Callable[[Item], tuple[Callable[..., Any], tuple[Any, ...]] | None],
              workers: int) -> Iterator[tuple[Item, Any]]:
    """Yield `(item, result)` for each item in order. `job(item)` gives `(function, args)` to run in a worker, or
    None for an item the caller handles itself (its result is None). Up to `workers` jobs run at once and one more
    waits, so a worker never idles while the caller consumes a result. A job that raised yields None: the caller
    redoes it in process, where the error surfaces as itself. Leaving the loop early stops the workers."""
    pending: deque[tuple[Item, Future | None]] = deque()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    forked = False
    try:
        for item in items:
            task = job(item)
            future = None
            if task is not None:
                with contextlib.nullcontext() if forked else _forking():  # the workers fork at the first submit
                    future = pool.submit(task[0], *task[1])
                forked = True
            pending.append((item, future))
            while sum(future is not None for _, future in pending) > workers:
                yield _taken(pending.popleft())
        while pending:
            yield _taken(pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _forking() -> Iterator[None]:
    """Freeze the garbage collector's view of every object while the workers fork, so a worker never collects
    garbage it inherited: a database connection dropped there would close the parent's session (libpq says
    goodbye on the shared socket). Python's documentation recommends the same for copy-on-write forks."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _taken(entry: tuple[Item, Future | None]) -> tuple[Item, Any]:
    item, future = entry
    if future is None:
        return item, None
    try:
        return item, future.result()
    except Exception:  # redone in process by the caller, where the error is raised as itself
        return item, None
