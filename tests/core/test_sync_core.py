"""The Dagster-free sync core, fast: window commit, reconciliation and its guards, the watermark, skipped
unchanged windows, resuming after a failed window; on SQLite and PostgreSQL, against the emulator over HTTP.

The same contracts as the slow end-to-end tests of `tests/pipeline/test_incremental.py`, without a Dagster
instance: `core_helpers.CoreSync.run` chains `fetch_raw` -> `frames` -> (Parquet spool) -> `write` ->
`run_checks` the way the assets do.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from core_helpers import EXPORT, INVOICES, CoreSync, refuse_lines_of, stop_refusing

from iiko_pipeline.core.failures import FailureKind, SyncFailure
from iiko_pipeline.core.policy import WindowPolicy
from iiko_pipeline.core.specs import spec
from iiko_pipeline.iiko import split_windows
from iiko_pipeline.warehouse import pending, schema, state

DAY = timedelta(days=1)
HERE = Path(__file__).resolve().parent


def _label(window: tuple[date, date]) -> str:
    return f"{window[0].isoformat()}..{window[1].isoformat()}"


def _live(doc_status: str) -> bool:
    return doc_status != "DELETED"


# ------------------------------------------------------------------------------------------- window commit


def test_invoices_before_reference_data_are_refused_before_calling_iiko(core: CoreSync):
    """Every invoice names stores and a supplier: without them the run would reject everything it fetched."""
    with pytest.raises(SyncFailure) as refused:
        core.incremental()
    assert refused.value.kind is FailureKind.PREREQUISITE and not refused.value.retryable
    assert "restaurants, stores, suppliers" in refused.value.reason and "nothing was fetched" in refused.value.reason
    assert core.export_requests() == 0
    assert core.rows() == {} and core.watermark is None
    assert "never synced" in state.get_state(core.engine, core.account_id)["invoices"]["last_error"]


def test_onboarding_commits_every_window_with_its_watermark_and_fingerprint(core: CoreSync):
    """Reference data first, then `history_days` of invoices in windows of seven days, each committed."""
    ds = core.emulator.state.dataset
    reference = core.reference()
    assert reference["stores"].counts == (len(ds.stores()), 0, 0, 0, 0)
    assert reference["suppliers"].counts == (len(ds.suppliers()), 0, 0, 0, 0)
    assert all(r.failed_checks() == {} for r in reference.values())

    start = core.days_ago(9)
    windows = split_windows(start, core.today, 7)
    assert len(windows) == 2
    run = core.incremental(history=10)
    truth = core.truth(start, core.today)
    assert core.requested_windows() == windows
    assert [p.label for p in run.raw.capture.parts] == [_label(w) for w in windows]
    assert run.counts == (len(truth), 0, 0, 0, 0)
    assert run.written.windows_committed == 2 and run.report.extra["windows_committed"] == 2
    assert run.skipped == [False, False]
    assert run.failed_checks() == {}
    assert core.watermark == core.today
    assert set(core.fingerprints()) == set(windows)
    core.assert_matches_truth(start, core.today)
    assert len(core.rows()) == len(truth)  # nothing outside the range
    invoices = state.get_state(core.engine, core.account_id)["invoices"]
    assert invoices["last_success_at"] is not None and invoices["last_error"] is None


def test_the_watermark_starts_the_next_range_and_never_moves_back(synced: CoreSync):
    """The next run reads from `watermark - lookback`; a run of older dates leaves the watermark where it is."""
    c = synced
    c.incremental(history=10, date_to=c.days_ago(6))  # "six days ago" was the last run
    assert c.watermark == c.days_ago(6)

    c.emulator.state.log.clear()
    caught_up = c.incremental(lookback=4)
    # from watermark - lookback to today, cut on the grid of the windows committed before (the last one's start)
    grid = split_windows(c.days_ago(15), c.days_ago(6), 7)[-1][0]
    assert c.requested_windows() == split_windows(c.days_ago(10), c.today, 7, anchor=grid)
    assert c.requested_windows()[0][0] == c.days_ago(10) and c.requested_windows()[-1][1] == c.today
    new = c.truth(c.days_ago(5), c.today)
    assert caught_up.counts == (len(new), 0, len(c.truth(c.days_ago(10), c.days_ago(6))), 0, 0)
    assert c.watermark == c.today

    older = c.incremental(date_from=c.days_ago(30).isoformat(), date_to=c.days_ago(25))
    assert older.counts[0] == len(c.truth(c.days_ago(30), c.days_ago(25))) > 0
    assert c.watermark == c.today  # max(watermark, window end): an older range never drags it back


def test_incremental_run_brings_every_kind_of_change_and_touches_nothing_outside(synced: CoreSync):
    """Inside `watermark - lookback .. today`: new, back-dated, edited, iiko-DELETED and vanished documents;
    outside it not one value changes (not even `synced_at`)."""
    c = synced
    c.incremental(history=10)
    window_start = c.days_ago(4)
    outside = {k: v for k, v in c.rows().items() if v["document_date"] < window_start}
    assert outside

    ds = c.emulator.state.dataset
    recent = [d for d in c.truth(window_start, c.today).values() if _live(d.status)]
    edited, marked_deleted, removed = recent[:3]
    new = ds.add_invoice({"date_incoming": f"{c.today}T10:00:00"})
    backdated = ds.add_invoice({"date_incoming": f"{c.days_ago(3)}T08:00:00"})
    ds.edit_invoice(edited.id, {"items": [{"num": 1, "amount": "2.500", "price": "99.90"},
                                          {"num": 2, "amount": "1.000", "price": "10.00"}]})
    ds.set_status(marked_deleted.id, "DELETED")
    ds.remove_invoice(removed.id)

    c.emulator.state.log.clear()
    run = c.incremental()
    assert c.requested_windows() == [(window_start, c.today)]
    held = len(c.truth(window_start, c.today)) - 2 + 1  # minus the two new, plus the vanished one
    assert run.counts == (2, 2, held - 3, 1, 0)
    assert run.written.result.items_written > 0 and run.failed_checks() == {}
    rows = c.rows()
    assert {new.id, backdated.id} <= set(rows)
    assert rows[marked_deleted.id]["status"] == "DELETED" and not rows[marked_deleted.id]["is_deleted"]
    c.assert_matches_truth(window_start, c.today, removed=frozenset({removed.id}))
    assert {k: v for k, v in rows.items() if v["document_date"] < window_start} == outside
    assert c.watermark == c.today

    before = c.snapshot()
    quiet = c.incremental()  # nothing changed since: the window is skipped, nothing written
    assert quiet.skipped == [True]
    assert quiet.counts == (0, 0, len(c.truth(window_start, c.today)), 0, 0)
    assert c.snapshot() == before


def test_a_document_that_vanished_and_comes_back_is_live_again(synced: CoreSync):
    """Soft-deleted is ours, not iiko's: a document iiko returns again loses its deletion marks."""
    c = synced
    ds = c.emulator.state.dataset
    doc = ds.add_invoice({"date_incoming": f"{c.days_ago(1)}T11:00:00"})
    c.incremental()
    ds.remove_invoice(doc.id)
    gone = c.incremental()
    assert gone.counts[3] == 1
    assert c.rows()[doc.id]["is_deleted"] and c.rows()[doc.id]["deleted_at"] is not None
    ds.add_invoice({"id": doc.id, "date_incoming": f"{c.days_ago(1)}T11:00:00"})
    back = c.incremental()
    assert back.counts[:2] == (0, 1) and back.counts[3] == 0
    row = c.rows()[doc.id]
    assert not row["is_deleted"] and row["deleted_at"] is None
    c.assert_matches_truth(c.days_ago(4), c.today)


# ------------------------------------------------------------------------------------------- reconciliation guards


@pytest.mark.parametrize("share", ["all", "most"])
def test_deletion_guard_holds_when_a_window_empties_or_mostly_vanishes(synced: CoreSync, share: str):
    """An empty answer, or more than `max_vanished_share` vanishing at once, deletes nothing and says why; the
    window stays unfingerprinted so the warning repeats; only the share guard yields to a higher limit."""
    c = synced
    c.incremental()
    window = (c.days_ago(4), c.today)
    docs = sorted(c.truth(*window))
    assert len(docs) >= 5
    victims = docs if share == "all" else docs[: len(docs) // 2 + 1]
    for ext in victims:
        c.emulator.state.dataset.remove_invoice(ext)

    guarded = c.incremental()
    expected = (f"window {_label(window)}: iiko returned no documents while we hold {len(docs)}; nothing deleted"
                if share == "all" else
                f"window {_label(window)}: {len(victims)} of {len(docs)} documents ({len(victims) / len(docs):.0%}) "
                f"would vanish, above the 20% limit; nothing deleted")
    assert guarded.written.guards == [expected] and guarded.report.guards == [expected]
    assert guarded.counts[3] == 0
    assert not any(c.rows()[ext]["is_deleted"] for ext in victims)
    check = guarded.checks["deletions_guarded"]
    assert not check.passed and check.warn_only and check.metadata["detail"] == expected
    assert guarded.failed_checks() == {"deletions_guarded": expected}  # a warning, nothing blocking
    assert c.watermark == c.today  # a guard withholds deletions, not the watermark
    assert window not in c.fingerprints()

    again = c.incremental()  # the same answer is processed again, so the warning stays visible
    assert again.skipped == [False] and again.written.guards == [expected]

    overridden = c.incremental(max_vanished_share=1.0)
    if share == "all":  # an empty answer is never trusted, whatever the limit
        assert overridden.written.guards == [expected] and overridden.counts[3] == 0
        assert not any(c.rows()[ext]["is_deleted"] for ext in victims)
    else:
        assert overridden.written.guards == [] and overridden.counts[3] == len(victims)
        c.assert_matches_truth(*window, removed=frozenset(victims))
        assert window in c.fingerprints()


def test_vanishing_exactly_at_the_limit_deletes_and_just_above_it_is_guarded(synced: CoreSync):
    """`max_vanished_share` is an inclusive limit on the share of the window's rows."""
    c = synced
    c.incremental()
    window = (c.days_ago(4), c.today)
    docs = sorted(c.truth(*window))
    victim = docs[0]
    c.emulator.state.dataset.remove_invoice(victim)
    limit = 1 / len(docs)

    above = c.incremental(max_vanished_share=limit * 0.99)
    assert above.counts[3] == 0 and len(above.written.guards) == 1
    assert f"1 of {len(docs)} documents" in above.written.guards[0]
    assert not c.rows()[victim]["is_deleted"]

    at = c.incremental(max_vanished_share=limit)
    assert at.counts[3] == 1 and at.written.guards == [] and at.failed_checks() == {}
    c.assert_matches_truth(*window, removed=frozenset({victim}))
    assert sum(r["is_deleted"] for r in c.rows().values()) == 1


# ------------------------------------------------------------------------------------------- unchanged windows


def _fingerprint_rows(c: CoreSync) -> set[tuple]:
    sw = schema.sync_windows
    with c.engine.connect() as conn:
        return set(conn.execute(sa.select(sw.c.date_from, sw.c.date_to, sw.c.fingerprint, sw.c.committed_at)
                                .where(sw.c.account_id == c.account_id)).all())


def test_unchanged_answers_are_skipped_and_a_change_is_not(synced: CoreSync):
    """A window whose answer is byte-identical to the one last committed writes nothing; a window that changed
    is processed in the same run; `reprocess_unchanged` processes both and still writes nothing new."""
    c = synced
    ds = c.emulator.state.dataset
    windows = split_windows(c.days_ago(9), c.today, 7)  # lookback 9 = history 10: the same two windows each run
    total = len(c.truth(c.days_ago(9), c.today))
    assert c.incremental(lookback=9).skipped == [False, False]
    fingerprints, before = _fingerprint_rows(c), c.snapshot()

    quiet = c.incremental(lookback=9)
    assert quiet.skipped == [True, True]
    assert quiet.counts == (0, 0, total, 0, 0) and quiet.written.result.items_written == 0
    assert quiet.frame.row_count == 0 and quiet.raw.capture.records == total  # fetched, not parsed
    assert quiet.written.windows_committed == 2 and quiet.failed_checks() == {}
    assert c.snapshot() == before
    assert _fingerprint_rows(c) == fingerprints  # not even re-recorded
    assert c.watermark == c.today
    # no row was upserted, so no duplicate can have appeared: the whole-table scan is not repeated, and says so
    assert quiet.checks["external_ids_unique"].passed
    assert "not re-scanned" in quiet.checks["external_ids_unique"].metadata["detail"]

    doc = next(d for d in c.truth(*windows[1]).values() if _live(d.status))
    ds.edit_invoice(doc.id, {"comment": "изменено"})
    changed = c.incremental(lookback=9)
    assert changed.skipped == [True, False]
    assert changed.checks["external_ids_unique"].metadata["detail"] == "no duplicated external ids"  # scanned
    assert changed.counts == (0, 1, total - 1, 0, 0)
    rows = c.rows()
    assert rows[doc.id]["comment"] == "изменено"
    assert {k: v for k, v in rows.items() if k != doc.id} == {k: v for k, v in before[0].items() if k != doc.id}
    now = c.fingerprints()
    old = {(a, b): fp for a, b, fp, _ in fingerprints}
    assert now[windows[0]] == old[windows[0]] and now[windows[1]] != old[windows[1]]

    after_change = c.snapshot()
    forced = c.incremental(lookback=9, reprocess_unchanged=True)
    assert forced.skipped == [False, False]
    assert forced.counts == (0, 0, total, 0, 0) and forced.frame.row_count == total
    assert c.snapshot() == after_change


def test_a_day_later_the_incremental_range_keeps_the_committed_grid_and_skips_its_unchanged_windows(synced: CoreSync):
    """The range moved by a day (the watermark did), yet its whole windows are the committed ones: cut on their
    grid, an unchanged window has the dates of its fingerprint and is skipped. Only the first (clipped) window and
    the new day's are read; a range cut from its own start would have matched none."""
    c = synced
    onboarding = split_windows(c.days_ago(21), c.days_ago(1), 7)  # yesterday's run: three whole windows
    c.incremental(history=21, date_to=c.days_ago(1))
    assert set(c.fingerprints()) == set(onboarding)
    before = c.snapshot()

    c.emulator.state.log.clear()
    today = c.incremental(lookback=14)
    assert c.requested_windows() == [(c.days_ago(15), c.days_ago(15)), onboarding[1], onboarding[2],
                                     (c.today, c.today)]
    assert today.skipped == [False, True, True, False]
    assert split_windows(c.days_ago(15), c.today, 7)[1] != onboarding[1]  # what the range's own cut would ask
    assert today.failed_checks() == {} and c.watermark == c.today
    unchanged_window = c.truth(*onboarding[1])
    assert today.counts[0] == len(c.truth(c.today, c.today)) and today.counts[1] == 0
    assert today.counts[2] == len(c.truth(c.days_ago(15), c.days_ago(1)))
    assert {k for k in before[0] if k in unchanged_window} == set(unchanged_window)
    c.assert_matches_truth(c.days_ago(21), c.today)


def test_inside_an_edited_window_only_the_edited_document_is_written_and_a_returning_one_is_live_again(
        synced: CoreSync):
    """Per-document hashes: a changed answer's documents held live with the same hash are counted unchanged
    without being adapted or merged; one that was soft-deleted (left out of an answer) and comes back unchanged
    is written, so it is live again."""
    c = synced
    ds = c.emulator.state.dataset
    windows = split_windows(c.days_ago(9), c.today, 7)
    c.incremental(lookback=9)
    total = len(c.truth(c.days_ago(9), c.today))
    in_second = len(c.truth(*windows[1]))
    edited, victim = [d for d in c.truth(*windows[1]).values() if _live(d.status)][:2]

    ds.edit_invoice(edited.id, {"comment": "изменено"})
    run = c.incremental(lookback=9)
    assert run.skipped == [True, False] and run.failed_checks() == {}
    assert run.frame.row_count == 1  # the edited document alone was adapted and written
    kept = [i for chunk in run.frame.chunk_summaries for i in chunk["kept"]]
    assert len(kept) == in_second - 1 and edited.id not in kept
    assert run.counts == (0, 1, total - 1, 0, 0)
    assert c.rows()[edited.id]["comment"] == "изменено"
    c.assert_matches_truth(c.days_ago(9), c.today)

    def without_victim(body: bytes) -> bytes:
        from lxml import etree

        root = etree.fromstring(body)
        for document in root.iter("document"):
            if (document.findtext("id") or "").lower() == victim.id:
                document.getparent().remove(document)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    left_out = c.run(INVOICES, WindowPolicy(history_days=10, lookback_days=9, date_to=c.today.isoformat()),
                     rewrite=without_victim)
    assert left_out.counts[3] == 1 and c.rows()[victim.id]["is_deleted"]
    back = c.incremental(lookback=9)  # iiko returns it as it was: same hash, but the row is not live
    assert back.counts[:2] == (0, 1) and back.frame.row_count == 1
    assert not c.rows()[victim.id]["is_deleted"] and c.rows()[victim.id]["deleted_at"] is None
    c.assert_matches_truth(c.days_ago(9), c.today)


def test_the_raw_step_recognises_exactly_the_answers_it_committed(synced: CoreSync):
    """The client's document check is left out only for an answer byte-identical to a committed window's (by its
    fingerprint): a changed byte, or a window that was never committed, is checked again."""
    import gzip
    import hashlib

    from iiko_pipeline.core.steps import committed_answers

    c = synced
    empty = hashlib.sha256(b"<incomingInvoiceDtoes/>").hexdigest()
    assert not committed_answers(c.engine, c.account, "invoices")(empty)  # nothing committed
    run = c.incremental(lookback=9)
    committed = committed_answers(c.engine, c.account, "invoices")
    for part in run.raw.capture.parts:
        with gzip.open(part.path, "rb") as stream:
            body = stream.read()
        assert committed(hashlib.sha256(body).hexdigest())
        assert not committed(hashlib.sha256(body.replace(b"<document>", b"<document >", 1)).hexdigest())


# ------------------------------------------------------------------------------------------- failures and resume


def test_a_failure_on_the_first_window_raises_and_commits_nothing(synced: CoreSync):
    """Nothing fetched, nothing to keep: the step fails (retryably) and the warehouse is untouched."""
    c = synced
    c.emulator.state.add_fault(endpoint=EXPORT, kind="http_503", count=1)
    with pytest.raises(SyncFailure) as failed:
        c.incremental(history=21)
    assert failed.value.kind is FailureKind.TRANSIENT and failed.value.retryable
    assert "HTTP 503" in failed.value.reason
    assert c.requested_windows() == [] and c.failed_exports() == 1  # the first window, nothing after it
    assert c.rows() == {} and c.watermark is None and c.fingerprints() == {}


def test_a_failed_window_keeps_the_earlier_ones_and_the_next_run_resumes_every_document_once(synced: CoreSync):
    """A later window that cannot be fetched: the ones before it are committed with the watermark, the
    `export_complete` check fails saying how far, and the next incremental run takes it from there."""
    c = synced
    history = 21
    start = c.days_ago(history - 1)
    windows = split_windows(start, c.today, 7)
    assert len(windows) == 3
    c.emulator.state.add_fault(endpoint=EXPORT, kind="http_503", after=1, count=100)

    broken = c.incremental(history=history)
    committed_to = windows[0][1]
    assert c.requested_windows() == windows[:1] and c.failed_exports() == 1  # stopped at the failing window
    assert broken.raw.failure_kind == "transient" and "HTTP 503" in (broken.raw.capture.failure or "")
    assert [p.label for p in broken.raw.capture.parts] == [_label(windows[0])]
    first = c.truth(*windows[0])
    assert broken.counts == (len(first), 0, 0, 0, 0) and broken.written.windows_committed == 1
    assert c.watermark == committed_to
    assert set(c.fingerprints()) == {windows[0]}
    c.assert_matches_truth(*windows[0])
    assert len(c.rows()) == len(first)  # nothing of the failed window, nothing half-written
    failed = broken.failed_checks()
    assert set(failed) == {"export_complete"}
    assert f"iiko export failed after 1 windows; committed through {committed_to}" in failed["export_complete"]
    assert broken.checks["export_complete"].metadata["failure_kind"] == "transient"
    assert not broken.checks["export_complete"].warn_only

    c.emulator.state.clear_faults()
    c.emulator.state.log.clear()
    resumed = c.incremental(history=history)
    resume_from = committed_to - timedelta(days=4)
    # from the committed window's last day - lookback, on that window's grid
    assert c.requested_windows() == split_windows(resume_from, c.today, 7, anchor=windows[0][0])
    assert c.requested_windows()[0][0] == resume_from
    assert resumed.failed_checks() == {}
    rest = c.truth(committed_to + DAY, c.today)
    assert resumed.counts == (len(rest), 0, len(c.truth(resume_from, committed_to)), 0, 0)
    assert c.watermark == c.today
    truth = c.truth(start, c.today)
    c.assert_matches_truth(start, c.today)
    assert len(c.rows()) == len(truth) == broken.counts[0] + resumed.counts[0]  # each document exactly once


def test_a_window_the_warehouse_fails_to_commit_is_rolled_back_whole(synced: CoreSync):
    """A database error halfway through a window (its invoices in, a line refused): the window leaves no
    invoice, line, fingerprint or watermark behind, the earlier window stays, and the next run resumes."""
    c = synced
    start = c.days_ago(13)
    windows = split_windows(start, c.today, 7)
    second = sorted(c.truth(*windows[1]).values(), key=lambda d: d.date_incoming)
    refuse_lines_of(c.engine, second[-1].id)  # the window's last document: the others are in by then

    with pytest.raises(SyncFailure) as failed:
        c.incremental(history=14)
    assert failed.value.kind is FailureKind.INTERNAL and "core-test: line refused" in failed.value.reason
    assert c.watermark == windows[0][1]
    assert set(c.fingerprints()) == {windows[0]}
    c.assert_matches_truth(*windows[0])
    assert c.rows_between(*windows[1]) == {}
    assert set(c.lines()) == {d.id for d in c.truth(*windows[0]).values() if d.items}
    assert pending.list_pending(c.engine, c.account, "invoices") == []
    invoices = state.get_state(c.engine, c.account_id)["invoices"]
    assert "core-test: line refused" in invoices["last_error"] and invoices["last_success_at"] is None

    stop_refusing(c.engine)
    resumed = c.incremental(history=14)
    assert resumed.failed_checks() == {} and c.watermark == c.today
    c.assert_matches_truth(start, c.today)
    assert len(c.rows()) == len(c.truth(start, c.today))


def test_an_export_that_stopped_part_way_is_not_recorded_as_a_successful_sync(synced: CoreSync):
    """Onboarding and freshness key on `last_success_at`: a run that left windows unfetched must not set it."""
    c = synced
    c.emulator.state.add_fault(endpoint=EXPORT, kind="http_503", after=1, count=100)
    broken = c.incremental(history=21)
    assert not broken.checks["export_complete"].passed
    invoices = state.get_state(c.engine, c.account_id)["invoices"]
    assert "HTTP 503" in invoices["last_error"]
    assert invoices["last_success_at"] is None


# ------------------------------------------------------------------------------------------- backfill, pending


def test_backfill_resyncs_a_range_without_moving_the_watermark(synced: CoreSync):
    """Exactly `date_from..date_to`, reconciled like any window, no pending re-reads, watermark untouched."""
    c = synced
    c.incremental()
    before = c.rows()
    a, b = c.days_ago(40), c.days_ago(30)
    truth = c.truth(a, b)

    run = c.backfill(a, b)
    assert c.requested_windows()[-2:] == split_windows(a, b, 7)
    assert run.raw.policy is not None and run.raw.policy.mode == "backfill" and run.raw.retried == ()
    assert run.counts == (len(truth), 0, 0, 0, 0) and run.failed_checks() == {}
    assert c.watermark == c.today
    c.assert_matches_truth(a, b)
    assert {k: v for k, v in c.rows().items() if k not in truth} == before

    victim = sorted(c.truth(*split_windows(a, b, 7)[0]))[0]
    c.emulator.state.dataset.remove_invoice(victim)
    again = c.backfill(a, b)
    assert again.counts == (0, 0, len(truth) - 1, 1, 0)
    c.assert_matches_truth(a, b, removed=frozenset({victim}))
    assert c.watermark == c.today


def test_a_due_pending_document_behind_the_lookback_is_re_read_and_stored(synced: CoreSync):
    """A document naming a supplier we do not hold does not stall the watermark: it waits in `sync_pending`
    and the first incremental run after reference data synced re-reads its date, however far back."""
    c = synced
    ds = c.emulator.state.dataset
    newcomer = ds.add_supplier({"name": "ООО «Новичок»", "code": "NEW-1"})
    day = c.days_ago(8)
    late = ds.add_invoice({"date_incoming": f"{day}T09:00:00", "supplier_id": newcomer.id})

    first = c.incremental()
    assert first.counts[4] == 1 and first.written.result.reference_rejections == {late.id: "suppliers"}
    assert late.id not in c.rows() and c.watermark == c.today
    [row] = pending.list_pending(c.engine, c.account, "invoices")
    assert (row["external_id"], row["kind"], row["date_from"], row["date_to"]) == (late.id, pending.REFERENCE,
                                                                                   day, day)
    waiting = first.checks["documents_pending"]
    assert not waiting.passed and waiting.warn_only

    own_range = split_windows(c.days_ago(4), c.today, 7)
    c.emulator.state.log.clear()
    assert c.incremental().raw.retried == ()  # reference data did not change: nothing is due yet
    assert c.requested_windows() == own_range

    c.run(spec("suppliers"))
    c.emulator.state.log.clear()
    retried = c.incremental()
    assert retried.raw.retried == ((day, day),)
    assert c.requested_windows() == [(day, day), *own_range]
    assert retried.counts[0] == 1 and retried.counts[3:] == (0, 0) and retried.failed_checks() == {}
    assert c.rows()[late.id]["supplier_external_id"] == newcomer.id
    assert pending.list_pending(c.engine, c.account, "invoices") == []
    assert c.watermark == c.today


def test_an_impossible_policy_fails_as_config_before_calling_iiko(synced: CoreSync):
    """A policy that names no valid range is the caller's mistake: no retry, no request, no state change."""
    c = synced
    cases = [(WindowPolicy(mode="backfill"), "a backfill needs date_from"),
             (WindowPolicy(mode="sideways"), "mode must be 'incremental' or 'backfill'"),
             (WindowPolicy(date_from="01.02.2024"), "invoice dates must be YYYY-MM-DD"),
             (WindowPolicy(date_from="2024-02-01", date_to="2024-01-01"), "is after date_to 2024-01-01")]
    for policy, message in cases:
        with pytest.raises(SyncFailure) as refused:
            c.run(INVOICES, policy)
        assert refused.value.kind is FailureKind.CONFIG and not refused.value.retryable
        assert message in refused.value.reason, (policy, refused.value.reason)
    assert c.export_requests() == 0 and c.rows() == {} and c.watermark is None


# ------------------------------------------------------------- found by these tests (fixed with them)


@pytest.mark.parametrize("case", ["lower", "upper"])
def test_a_held_document_the_adapter_now_refuses_is_pending_not_deleted(synced: CoreSync, case: str):
    """iiko still has the document, we just cannot store its new version: keep the old row live, retry it."""
    c = synced
    c.incremental()
    doc = next(d for d in c.truth(c.days_ago(4), c.today).values() if _live(d.status))
    c.emulator.state.dataset.edit_invoice(doc.id, {"supplier_id": "not-a-guid"})
    # iiko prints GUIDs in either case; the emulator only in lower case, so upper-case that one id
    upper = (lambda body: body.replace(doc.id.encode(), doc.id.upper().encode())) if case == "upper" else None
    run = c.run(INVOICES, WindowPolicy(history_days=10, lookback_days=4, date_to=c.today.isoformat()),
                rewrite=upper)
    assert run.counts[4] == 1 and "is not a GUID" in run.written.result.error_details[0]["reason"]
    assert [r["external_id"] for r in pending.list_pending(c.engine, c.account, "invoices")] == [doc.id]
    assert run.counts[3] == 0
    assert not c.rows()[doc.id]["is_deleted"]


def test_a_window_is_not_skipped_after_an_overlapping_run_changed_its_rows(synced: CoreSync):
    """Skipping is safe only while the warehouse still holds what the fingerprinted answer committed."""
    c = synced
    ds = c.emulator.state.dataset
    c.incremental(lookback=9)  # windows T-9..T-3 and T-2..T, fingerprinted
    doc = next(d for d in c.truth(c.days_ago(5), c.days_ago(3)).values() if d.status == "PROCESSED")
    ds.set_status(doc.id, "NEW")  # unposted in iiko
    c.backfill(c.days_ago(5), c.today)  # another window shape stores that
    assert c.rows()[doc.id]["status"] == "NEW"
    ds.set_status(doc.id, "PROCESSED")  # posted again: T-9..T-3 answers exactly what was fingerprinted
    c.incremental(lookback=9)
    assert c.rows()[doc.id]["status"] == "PROCESSED"


# ------------------------------------------------------------------------------------------- no Dagster


def test_the_core_tests_run_without_dagster():
    """These tests, their helpers and everything they import load without Dagster (the point of the core)."""
    for path in HERE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] == "dagster"], (path.name, names)
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import conftest, core_helpers, test_sync_core; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'); assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code, str(HERE), str(HERE.parents[1])], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
