"""The read-ahead iterator the raw and table steps use: order, errors, early stop, and how far it reads ahead."""

from __future__ import annotations

import threading

import pytest

from iiko_pipeline.prefetch import prefetched


def test_items_arrive_in_order_and_are_produced_on_another_thread():
    threads = []

    def source():
        for n in range(50):
            threads.append(threading.current_thread().name)
            yield n

    assert list(prefetched(source(), name="reader")) == list(range(50))
    assert set(threads) == {"reader"}


def test_a_producer_error_comes_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise ValueError("window 3 failed")

    got = []
    with pytest.raises(ValueError, match="window 3 failed"):
        for item in prefetched(source()):
            got.append(item)
    assert got == [1, 2]


def test_reads_at_most_one_item_ahead_and_closes_the_source_on_early_stop():
    produced, closed = [], threading.Event()
    consumer_at: list[int] = []

    def source():
        try:
            for n in range(100):
                produced.append(n)
                yield n
        finally:
            closed.set()

    for item in prefetched(source()):
        consumer_at.append(item)
        if item == 2:
            ahead = max(produced) - item
            break
    assert closed.wait(5), "the source was not closed after the consumer stopped"
    assert ahead <= 1  # one item waits for the consumer; the next is produced only once that is taken
    assert max(produced) <= 3


def test_an_item_produced_but_never_taken_is_handed_to_dropped():
    """The raw step deletes a window's spooled answer that was fetched ahead but never filed."""
    dropped: list[int] = []
    for item in prefetched(iter(range(10)), dropped=dropped.append):
        if item == 3:
            break
    assert dropped and all(n > 3 for n in dropped) and len(dropped) <= 2  # the one waiting, and one in hand
    assert dropped == sorted(dropped)
