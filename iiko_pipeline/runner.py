"""The process that executes one sync run started by the CLI or the API (`services.launcher`).

Each run gets a process of its own, forked from a forkserver that has already imported Dagster and the code
location: a new interpreter importing them takes 2-3 s per run, a fork from the warm server a few tens of
milliseconds (it is started once per launching process, e.g. once for the life of the API). The job (run id,
account, entities, run config, tags, the launcher's instance ref and environment) travels as an argument; the
run executes under that id against that instance. `RunProcess` gives the launcher what it needs of the child:
wait, poll, exit code, terminate, pid.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from typing import Any

#: Modules the forkserver imports once, so every run's process starts with them loaded.
PRELOAD = ["iiko_pipeline.definitions", "iiko_pipeline.services.sync"]
_CONTEXT_LOCK = threading.Lock()
_context: Any = None


def _forkserver() -> Any:
    global _context
    with _CONTEXT_LOCK:
        if _context is None:
            _context = multiprocessing.get_context("forkserver")
            _context.set_forkserver_preload(PRELOAD)
        return _context


def warm_up() -> None:
    """Start the forkserver now, so its imports of the code (over a second) run beside the caller's own work
    instead of after it: the CLI calls this before it imports Dagster to create the run. Idempotent."""
    import multiprocessing.forkserver

    _forkserver()
    multiprocessing.forkserver.ensure_running()


def execute(job: dict[str, Any]) -> None:
    """The body of a run's process: the launcher's environment (the forkserver may have been started with an
    older one), quiet output unless asked, then the run. Exits 0 when the run succeeded."""
    os.environ.clear()
    os.environ.update(job["env"])
    if not job.get("show_output"):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    import dagster as dg

    from iiko_pipeline.services.sync import run_account_sync

    with dg.DagsterInstance.from_ref(dg.deserialize_value(job["instance_ref"])) as instance:
        outcome = run_account_sync(instance, job["account"], job["entities"], run_config=job["run_config"],
                                   extra_tags=job["tags"], log_level=job["log_level"], run_id=job["run_id"],
                                   add_prerequisites=False)
    sys.exit(0 if outcome.success else 1)


class RunProcess:
    """A run's process, with the subset of `subprocess.Popen` the launcher uses."""

    def __init__(self, job: dict[str, Any]) -> None:
        self._process = _forkserver().Process(target=execute, args=(job,), name=f"iiko-run-{job['run_id'][:8]}")
        self._process.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int | None:
        self._process.join(timeout)
        if self._process.exitcode is None:
            import subprocess

            raise subprocess.TimeoutExpired("iiko run", timeout or 0)
        return self._process.exitcode

    def terminate(self) -> None:
        self._process.terminate()
