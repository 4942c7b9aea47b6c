"""The data-quality checks of a table step, by name, and what the step reports about the table.

A spec lists its checks by name (`EntitySpec.checks`); each name maps to a function of the step's inputs.
Results are plain values, so any runner can show them (the Dagster layer turns them into check results).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from iiko_pipeline.core.failures import STEP_RETRIES, STEP_RETRY_DELAY, retried_in_place
from iiko_pipeline.core.specs import EntitySpec
from iiko_pipeline.core.steps import ADAPTER, RawResult, TableWrite
from iiko_pipeline.frames import FrameSet
from iiko_pipeline.iiko.documented import version_tuple
from iiko_pipeline.warehouse import pending, quality


@dataclass(frozen=True)
class CheckInput:
    spec: EntitySpec
    engine: Engine
    account: uuid.UUID
    frame: FrameSet
    write: TableWrite
    raw: RawResult


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    warn_only: bool
    metadata: dict[str, Any] = field(default_factory=dict)


def _records_stored(c: CheckInput) -> quality.CheckOutcome:
    return c.write.stored


def _external_ids_unique(c: CheckInput) -> quality.CheckOutcome:
    """The account's whole table, scanned (a second at a year of sales) only when this run upserted rows: a run
    whose every window was unchanged (or that fetched nothing) wrote no row, so it cannot have made a duplicate."""
    if not wrote_rows(c):
        return quality.CheckOutcome(True, detail="not re-scanned: this run upserted no rows (every window "
                                                 "unchanged or nothing fetched)")
    return quality.duplicate_external_ids(c.engine, c.spec.table, c.account)


def wrote_rows(c: CheckInput) -> bool:
    """Whether the table step sent any row to the table: the frame held rows (or rejections), or rows went."""
    result = c.write.result
    return bool(c.frame.row_count or c.frame.errors or result.created or result.updated or result.deleted)


def _references_exist(c: CheckInput) -> quality.CheckOutcome:
    result = c.write.result
    wrote_children = bool(result.items_written or result.updated or result.created)
    return quality.dangling_references(c.engine, c.spec.name, c.account, scan_children=wrote_children)


def _row_counts_agree(c: CheckInput) -> quality.CheckOutcome:
    raw_records = c.raw.capture.records
    consistent_raw = raw_records == c.frame.source_records
    read = (f"raw {raw_records} records, frame {c.frame.source_records} read / {c.frame.row_count} rows "
            f"/ {len(c.frame.errors)} rejected")
    failures = c.write.row_count_failures
    if failures is not None:  # rows owned by their window: counted window by window as each committed
        counted = c.write.windows_committed
        detail = f"{read}, table counted per window ({counted} windows): " + (
            "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
            if failures else "every window holds what it returned")
        return quality.CheckOutcome(passed=consistent_raw and not failures, detail=detail)
    ids = [i for chunk in c.frame.chunk_summaries for i in chunk["ids"]]
    rejected = {d["external_id"] for d in c.write.result.error_details if d.get("external_id")}
    expected = len([i for i in ids if i not in rejected])
    stored = quality.count_rows(c.engine, c.spec.table, c.account, ids, ADAPTER.external_system)
    return quality.CheckOutcome(passed=consistent_raw and stored == expected,
                                detail=f"{read}, table {stored} of {expected} expected")


def _line_sums_consistent(c: CheckInput) -> quality.CheckOutcome:
    return quality.outcome(c.write.child_sum_failures, "documents whose stored lines differ from the source")


def _statuses_known(c: CheckInput) -> quality.CheckOutcome:
    return quality.unknown_statuses(c.engine, c.account)


def _export_complete(c: CheckInput) -> quality.CheckOutcome:
    answers = c.frame.answers
    if c.frame.failure is None:
        return quality.CheckOutcome(True, detail=f"all {len(answers)} windows exported and committed")
    committed = answers[-1]["to"] if answers else "nothing"
    return quality.CheckOutcome(False, failing=1, sample=[c.frame.failure],
                                detail=f"iiko export failed after {len(answers)} windows; committed through "
                                       f"{committed}: {c.frame.failure}")


def _deletions_guarded(c: CheckInput) -> quality.CheckOutcome:
    guards = c.write.guards
    return quality.CheckOutcome(not guards, failing=len(guards), sample=list(guards),
                                detail="; ".join(guards) if guards else "no deletion was withheld")


def _links_resolved(c: CheckInput) -> quality.CheckOutcome:
    return quality.unlinked_rows(c.engine, c.spec.tables, c.account)


def _entity_available(c: CheckInput) -> quality.CheckOutcome:
    if c.raw.skipped:
        return quality.CheckOutcome(False, failing=1, sample=[c.raw.skipped], detail=c.raw.skipped)
    return quality.CheckOutcome(True, detail=f"{c.spec.name} read from iiko")


def _fields_as_documented(c: CheckInput) -> quality.CheckOutcome:
    """Fields iiko documents that the answer lacks, and fields it sends that nobody documented: a rename or a
    new version. Only a warning: unknown fields are kept in `extra`, missing ones stay NULL."""
    return fields_against(c.spec.documented, c.spec.parse, c.raw)


def fields_against(documented: Any, parse: Callable[[Any], Any], raw: RawResult) -> quality.CheckOutcome:
    """Every item of the raw answers against the documented fields for the server's version."""
    expected = documented.expected(version_tuple(raw.server_version))
    known = documented.known()
    items = 0
    missing: dict[str, int] = {}
    unknown: dict[str, int] = {}
    either_missing = 0
    for _part, stream in raw.capture.stream_parts():
        for item in parse(stream):
            items += 1
            keys = item.keys()
            for name in expected - keys:
                missing[name] = missing.get(name, 0) + 1
            for name in keys - known:
                unknown[name] = unknown.get(name, 0) + 1
            either_missing += sum(1 for group in documented.either if not group & keys)
    findings = [f"documented field {n!r} missing from {k} of {items} items" for n, k in sorted(missing.items())]
    if either_missing:
        findings.append(f"{either_missing} items lack every spelling of a field the docs spell two ways")
    findings += [f"undocumented field {n!r} in {k} of {items} items (kept in extra)"
                 for n, k in sorted(unknown.items())]
    version = raw.server_version or "unknown"
    return quality.CheckOutcome(
        not findings, failing=len(findings), sample=findings,
        detail=("; ".join(findings) if findings else f"all {items} items carry the fields documented for iiko "
                                                     f"{version}, and no others"))


def _sales_match_totals(c: CheckInput) -> quality.CheckOutcome:
    if c.frame.window_from is None or c.frame.window_to is None:
        return quality.CheckOutcome(True, detail="no business days read")
    return quality.sales_against_totals(c.engine, c.account, date.fromisoformat(c.frame.window_from),
                                        date.fromisoformat(c.frame.window_to))


def _documents_pending(c: CheckInput) -> quality.CheckOutcome:
    return quality.pending_documents(pending.list_pending(c.engine, c.account, c.spec.name), c.spec.name)


CHECKS: dict[str, Callable[[CheckInput], quality.CheckOutcome]] = {
    "records_stored": _records_stored,
    "external_ids_unique": _external_ids_unique,
    "references_exist": _references_exist,
    "row_counts_agree": _row_counts_agree,
    "line_sums_consistent": _line_sums_consistent,
    "statuses_known": _statuses_known,
    "export_complete": _export_complete,
    "deletions_guarded": _deletions_guarded,
    "documents_pending": _documents_pending,
    "links_resolved": _links_resolved,
    "entity_available": _entity_available,
    "fields_as_documented": _fields_as_documented,
    "sales_match_totals": _sales_match_totals,
}


def run_checks(c: CheckInput) -> list[CheckResult]:
    """Every check the spec lists, in its order; each result names the account (checks are asset-wide)."""
    out = []
    for name in c.spec.checks:
        outcome = CHECKS[name](c)
        metadata: dict[str, Any] = {"account_id": str(c.account), **outcome.metadata()}
        if name == "export_complete" and c.raw.failure_kind:
            metadata["failure_kind"] = c.raw.failure_kind  # what stopped the export, for the API's answer
        out.append(CheckResult(name, outcome.passed, name in c.spec.warn_only, metadata))
    return out


def report_and_checks(c: CheckInput, log: Callable[[str], None]) -> tuple[TableReport, list[CheckResult]]:
    """The table step's report and checks. They only read, after every window committed, so a transient warehouse
    failure is retried here (`retried_in_place`, as often as a step): a step retry would write the windows again."""
    return retried_in_place(lambda: (report(c), run_checks(c)), retries=STEP_RETRIES, first_wait=STEP_RETRY_DELAY,
                            log=log)


# ------------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class TableReport:
    """What a table step reports about its table: the brief's counts and the table's shape and size."""

    counts: dict[str, int]
    error_details: list[dict[str, Any]]
    table_name: str
    row_count: int
    columns: list[tuple[str, str, str | None]]
    backend: str
    preview_markdown: str
    extra: dict[str, Any]
    guards: list[str]


def report(c: CheckInput) -> TableReport:
    table = c.spec.table
    result = c.write.result
    extra: dict[str, Any] = {}
    if c.frame.window_from:
        extra |= {"window_from": c.frame.window_from, "window_to": c.frame.window_to,
                  "windows_committed": c.write.windows_committed}
    if c.spec.child_table:
        extra[f"{c.spec.child_table}_written"] = result.items_written
    return TableReport(
        counts=result.counts(), error_details=result.details[:50], table_name=table.name,
        row_count=live_rows(c.engine, table, c.account),
        columns=[(col.name, str(col.type), col.comment) for col in table.columns],
        backend=c.engine.url.get_backend_name(), preview_markdown=markdown(c.write.preview), extra=extra,
        guards=list(c.write.guards))


def live_rows(engine: Engine, table: sa.Table, account: uuid.UUID) -> int:
    """Live rows of this account (soft-deleted ones are kept but not counted)."""
    stmt = sa.select(sa.func.count()).select_from(table).where(table.c.account_id == account)
    if "deleted_at" in table.c:
        stmt = stmt.where(table.c.deleted_at.is_(None))
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


def markdown(rows: list[dict[str, Any]]) -> str:
    """A small markdown table (the preview), without pulling pandas into a run for five rows."""
    if not rows:
        return ""
    cols = list(rows[0])
    escape = str.maketrans({"|": "\\|", "\n": " "})
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(row.get(c, "")).translate(escape) for c in cols) + " |" for row in rows]
    return "\n".join(lines)
