"""Two windows written at once on PostgreSQL, committed one by one in window order (`window_writers`).

Fast (no Dagster, no emulator): each test steers the two windows with events from inside their batches, so what
one window's transaction can see of the other's is checked at the exact moment that matters.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from iiko_pipeline.adapters import IIKO_ADAPTER
from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.dated_windows import WindowBatch, get_watermark
from iiko_pipeline.warehouse.engine import make_engine
from iiko_pipeline.warehouse.entities import upsert_dimension
from iiko_pipeline.warehouse.migrate import migrate
from iiko_pipeline.warehouse.window_writers import (
    WRITERS_SETTING,
    WindowJob,
    commit_windows,
    table_writers,
)

ACCOUNT = uuid.UUID("11111111-2222-4333-8444-666666666666")
R1 = "6f1c2b1e-0000-4000-8000-000000000101"
S1 = "1239d270-0000-4000-8000-00000000a001"
SUP = "3f08e41c-0000-4000-8000-00000000c001"
FIRST, SECOND = (date(2024, 3, 1), date(2024, 3, 7)), (date(2024, 3, 8), date(2024, 3, 14))
NOW = datetime(2024, 3, 20, 12, tzinfo=UTC)
WAIT = 30  # seconds a window waits for the other's signal before the test calls the overlap missing


@pytest.fixture
def pg_engine(pg_url):
    eng = make_engine(pg_url)
    migrate(eng)
    upsert_dimension(eng, "restaurants", ACCOUNT,
                     IIKO_ADAPTER.restaurants([{"id": R1, "type": "DEPARTMENT", "name": "Ресторан"}]).rows)
    upsert_dimension(eng, "stores", ACCOUNT, IIKO_ADAPTER.stores([{"id": S1, "parentId": R1, "name": "Склад"}]).rows)
    upsert_dimension(eng, "suppliers", ACCOUNT, IIKO_ADAPTER.suppliers([{"id": SUP, "name": "Поставщик"}]).rows)
    yield eng
    eng.dispose()


def _batch(doc_id: str, day: date, number: str = "1") -> WindowBatch:
    parsed = IIKO_ADAPTER.invoices([{
        "id": doc_id, "documentNumber": number, "dateIncoming": f"{day.isoformat()}T10:00:00", "status": "PROCESSED",
        "supplier": SUP, "defaultStore": S1,
        "items": [{"num": "1", "amount": "1", "price": "10", "sum": "10", "store": S1}]}])
    return WindowBatch(parsed.rows, parsed.children, parsed.errors)


def _doc(n: int) -> str:
    return f"aaaaaaaa-0000-4000-8000-{n:012d}"


def _job(window: tuple[date, date], batches, returned: set[str]) -> WindowJob:
    return WindowJob(*window, batches, returned_ids=returned, advance_watermark=True, max_vanished_share=0.2)


def _visible(engine, doc_id: str) -> str | None:
    """The document's number as a new connection sees it (committed data only)."""
    with engine.connect() as conn:
        return conn.execute(sa.select(schema.invoices.c.document_number).where(
            schema.invoices.c.external_id == doc_id)).scalar_one_or_none()


@pytest.mark.postgres
def test_the_second_window_is_written_while_the_first_is_and_commits_only_after_it(pg_engine):
    second_written = threading.Event()
    seen_by_first: list[str | None] = []

    def first():
        assert second_written.wait(WAIT), "the second window was not written beside the first"
        seen_by_first.append(_visible(pg_engine, _doc(2)))  # written, waiting for its turn: not committed
        yield _batch(_doc(1), FIRST[0])

    def second():
        yield _batch(_doc(2), SECOND[0])
        second_written.set()  # resumed once the batch above is written

    returned = {_doc(1), _doc(2)}
    outcomes = list(commit_windows(pg_engine, ACCOUNT, [_job(FIRST, first, returned), _job(SECOND, second, returned)],
                                   writers=2, now=NOW))
    assert seen_by_first == [None]
    assert [(o.date_from, o.result.created) for o in outcomes] == [(FIRST[0], 1), (SECOND[0], 1)]
    assert _visible(pg_engine, _doc(1)) == _visible(pg_engine, _doc(2)) == "1"
    assert get_watermark(pg_engine, ACCOUNT) == SECOND[1]


@pytest.mark.postgres
def test_a_failed_window_rolls_back_the_window_written_beside_it_and_the_watermark_stays(pg_engine):
    second_written = threading.Event()

    def first():
        assert second_written.wait(WAIT)
        yield _batch(_doc(1), FIRST[0])
        raise RuntimeError("the first window's frame file is unreadable")

    def second():
        yield _batch(_doc(2), SECOND[0])
        second_written.set()

    returned = {_doc(1), _doc(2)}
    with pytest.raises(RuntimeError, match="frame file is unreadable"):
        list(commit_windows(pg_engine, ACCOUNT, [_job(FIRST, first, returned), _job(SECOND, second, returned)],
                            writers=2, now=NOW))
    assert _visible(pg_engine, _doc(1)) is None and _visible(pg_engine, _doc(2)) is None
    assert get_watermark(pg_engine, ACCOUNT) is None


@pytest.mark.postgres
def test_windows_that_write_the_same_document_do_not_deadlock_the_later_one_is_written_again(pg_engine):
    """Both windows hold one document (overlapping windows can): the second writes it first, the first then waits
    for its lock while the second waits for the first's commit. The second sees that, rolls back, and writes its
    rows again after the first committed: its version is the one kept, as in window order."""
    second_written = threading.Event()
    second_calls = []

    def first():
        assert second_written.wait(WAIT)
        yield _batch(_doc(1), FIRST[0], number="from-first")  # blocks on the second window's uncommitted row

    def second():
        second_calls.append(1)
        yield _batch(_doc(1), SECOND[0], number="from-second")
        second_written.set()

    returned = {_doc(1)}
    outcomes = list(commit_windows(pg_engine, ACCOUNT, [_job(FIRST, first, returned), _job(SECOND, second, returned)],
                                   writers=2, now=NOW))
    assert len(second_calls) == 2
    assert [(o.result.created, o.result.updated) for o in outcomes] == [(1, 0), (0, 1)]
    assert _visible(pg_engine, _doc(1)) == "from-second"
    assert get_watermark(pg_engine, ACCOUNT) == SECOND[1]


@pytest.mark.postgres
def test_more_windows_than_writers_commit_in_order_and_unchanged_ones_only_move_the_watermark(pg_engine):
    windows = [(date(2024, 3, 1) + timedelta(days=7 * k), date(2024, 3, 7) + timedelta(days=7 * k)) for k in range(5)]
    returned = {_doc(k) for k in range(5)}
    jobs = [_job(w, (lambda k=k, w=w: iter([_batch(_doc(k), w[0])])) if k != 2 else None, returned)
            for k, w in enumerate(windows)]
    jobs[2].unchanged_documents = 0
    outcomes = list(commit_windows(pg_engine, ACCOUNT, jobs, writers=2, now=NOW))
    assert [o.date_from for o in outcomes] == [w[0] for w in windows]
    assert [o.result.created for o in outcomes] == [1, 1, 0, 1, 1]
    assert get_watermark(pg_engine, ACCOUNT) == windows[-1][1]


def test_writers_setting(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    sqlite = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    postgres = sa.create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")  # never connected
    monkeypatch.delenv(WRITERS_SETTING, raising=False)
    assert (table_writers(postgres), table_writers(sqlite)) == (2, 1)  # SQLite has one writer at a time
    monkeypatch.setenv(WRITERS_SETTING, "3")
    assert table_writers(postgres) == 3
    monkeypatch.setenv(WRITERS_SETTING, "many")
    with pytest.raises(ValueError, match=f"{WRITERS_SETTING} must be a whole number of windows"):
        table_writers(postgres)
