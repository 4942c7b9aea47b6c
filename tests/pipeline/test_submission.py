"""Where a CLI or API sync goes: the daemon's run queue when one is dequeuing runs, else a local process.

The end-to-end path (a real daemon executing a queued CLI sync) is in test_production_path.py; these pin the
choice itself, fast.
"""

from __future__ import annotations

import time

import dagster as dg
import pytest
from dagster._daemon.types import DaemonHeartbeat

from iiko_pipeline.services.queue import DAEMON_HEARTBEAT_TOLERANCE_S, SubmissionError, use_queue

QUEUED = {"run_coordinator": {"module": "dagster._core.run_coordinator",
                              "class": "QueuedRunCoordinator"}}


def _beat(instance: dg.DagsterInstance, age_s: float) -> None:
    instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - age_s, "QUEUED_RUN_COORDINATOR", "test", None))


@pytest.mark.parametrize(("mode", "beat_age", "queue"), [
    ("auto", 5.0, True),                                # a live daemon: its queue
    ("auto", DAEMON_HEARTBEAT_TOLERANCE_S + 60, False),  # a daemon that stopped beating: a local process
    ("auto", None, False),                              # never a daemon (the embedded default, make demo)
    ("local", 5.0, False),                              # asked for local, even with a daemon
    ("queue", 5.0, True),
])
def test_the_queue_is_used_when_a_live_daemon_dequeues_runs(monkeypatch, mode, beat_age, queue):
    monkeypatch.setenv("IIKO_RUN_SUBMISSION", mode)
    with dg.instance_for_test(overrides=QUEUED) as instance:
        if beat_age is not None:
            _beat(instance, beat_age)
        assert use_queue(instance) is queue


def test_asking_for_the_queue_without_a_daemon_or_for_nonsense_says_so(monkeypatch):
    with dg.instance_for_test(overrides=QUEUED) as instance:
        monkeypatch.setenv("IIKO_RUN_SUBMISSION", "queue")
        with pytest.raises(SubmissionError, match="no dagster-daemon is dequeuing"):
            use_queue(instance)
        monkeypatch.setenv("IIKO_RUN_SUBMISSION", "daemon")
        with pytest.raises(SubmissionError, match="auto, queue or local, not 'daemon'"):
            use_queue(instance)


def test_an_instance_that_launches_runs_directly_has_no_queue(monkeypatch):
    monkeypatch.setenv("IIKO_RUN_SUBMISSION", "auto")
    default = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}}
    with dg.instance_for_test(overrides=default) as instance:
        _beat(instance, 1.0)
        assert use_queue(instance) is False
