"""Read ahead one item of an iterator on a background thread.

Why: `raw_invoices` alternates between waiting for iiko (the server renders a window) and compressing and
hashing what came. The wait releases the GIL (sockets), and so do zlib and hashlib on large buffers, so on a
2-core worker the next window can be fetched while the current one is filed. Depth 1 is deliberate: it
bounds what is held to one extra window's answer (on disk since answers stream to the raw store). (The table
step was tried too: reading the next Parquet chunk while the database merged the current one was no faster
there and held one more chunk.)
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterable[T], *, name: str = "prefetch",
               dropped: Callable[[T], object] | None = None) -> Iterator[T]:
    """Yield the items of `items` in order while the next one is produced on a thread.

    An exception raised while producing is re-raised here, at the item where it happened, after the items
    produced before it. If the consumer stops early (break, exception, close), the producer stops after the
    item it is working on and its iterator is closed on its own thread; `dropped` is called with an item
    produced but never yielded (e.g. to delete the file it holds).
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=1)
    taken = threading.Semaphore(0)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        """Put one item and wait until the consumer takes it, so at most one item waits ahead of the consumer;
        False when the consumer has gone."""
        handoff.put(item)
        while not taken.acquire(timeout=0.05):
            if stop.is_set():
                return False
        return True

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not hand_over(item):
                    return
            hand_over(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            hand_over(_Failure(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            taken.release()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):  # unblock a producer waiting to hand over
            _drop(handoff.get_nowait(), dropped)
        worker.join()
        with contextlib.suppress(queue.Empty):  # an item handed over while the producer was stopping
            _drop(handoff.get_nowait(), dropped)


def _drop(item: object, dropped: Callable[[Any], object] | None) -> None:
    if dropped is not None and item is not _DONE and not isinstance(item, _Failure):
        dropped(item)
