"""Progress of a run on the terminal, read from the run's own event log while it goes (steps and windows)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import dagster as dg

SHOWN = {dg.DagsterEventType.STEP_START: "started", dg.DagsterEventType.STEP_SUCCESS: "done",
         dg.DagsterEventType.STEP_FAILURE: "FAILED"}


class Progress:
    """Called every few seconds: prints what the run logged since the last call, with the elapsed time."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, out: TextIO = sys.stderr) -> None:
        self.instance, self.run_id, self.out = instance, run_id, out
        self.cursor: str | None = None
        self.started = time.monotonic()

    def __call__(self) -> None:
        try:
            page = self.instance.event_log_storage.get_records_for_run(self.run_id, cursor=self.cursor)
        except Exception:  # the run may not exist yet (its process is starting)
            return
        self.cursor = page.cursor
        for record in page.records:
            line = self._line(record.event_log_entry)
            if line:
                self.out.write(f"[{time.monotonic() - self.started:6.0f} s] {line}\n")
        self.out.flush()

    @staticmethod
    def _line(entry) -> str | None:
        event = entry.dagster_event
        if event is None:  # a message the steps logged: window progress
            text = entry.user_message or ""
            return text if ": fetched window " in text or ": committed window " in text else None
        if event.event_type in SHOWN and event.step_key:
            return f"{event.step_key}: {SHOWN[event.event_type]}"
        return None
