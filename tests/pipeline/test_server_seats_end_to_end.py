"""Licence seats are per iiko server, not per instance: accounts on different servers are synced at the same
time, accounts that share a server take turns, as each server's request log shows.

Real command-line syncs in processes of their own against real emulators (each allows one session at a time,
like an iiko server with one API seat: a second login would be refused with "no connections available").
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import ON_SQLITE
from tests.pipeline import cli_runs as op

pytestmark = pytest.mark.slow

SLOW_CALL_S = 4  # each sync's one suppliers call takes this long, so sessions that could overlap do


def session_spans(emu) -> list[tuple[float, float]]:
    """(first request, last request) of each iiko session the server saw, from its request log."""
    spans: dict[str, tuple[float, float]] = {}
    for record in emu.state.log.records():
        if record.token is None or record.ended is None:
            continue
        start, end = spans.get(record.token, (record.started, record.ended))
        spans[record.token] = (min(start, record.started), max(end, record.ended))
    return sorted(spans.values())


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def sync_together(*accounts: str) -> None:
    processes = [op.start_cli("sync", account, "suppliers") for account in accounts]
    deadline = time.monotonic() + 240
    try:
        for process in processes:
            output, _ = process.communicate(timeout=max(1, deadline - time.monotonic()))
            assert process.returncode == 0, output.decode(errors="replace")
    finally:
        for process in processes:
            if process.poll() is None:
                op.kill_group(process)


@ON_SQLITE
def test_accounts_on_two_servers_sync_at_once_and_accounts_on_one_server_take_turns(home) -> None:
    apart = [str(uuid.uuid4()), str(uuid.uuid4())]
    shared = [str(uuid.uuid4()), str(uuid.uuid4())]
    with op.emulator() as emu_a, op.emulator(seed=8) as emu_b, op.emulator(seed=9) as emu_shared:
        op.connect(apart[0], emu_a)
        op.connect(apart[1], emu_b)
        for account in shared:
            op.connect(account, emu_shared)
        for emu in (emu_a, emu_b):
            emu.state.log.clear()
            emu.state.add_fault("suppliers", "slow", count=1, delay=SLOW_CALL_S)
        emu_shared.state.log.clear()
        emu_shared.state.add_fault("suppliers", "slow", count=2, delay=SLOW_CALL_S)

        sync_together(*apart, *shared)

        (span_a,), (span_b,) = session_spans(emu_a), session_spans(emu_b)
        assert overlap(span_a, span_b), (span_a, span_b)  # two servers: no seat of one waits for the other
        first, second = session_spans(emu_shared)
        assert not overlap(first, second), (first, second)  # one server, one seat: one session at a time
        assert emu_shared.state.log.summary()["licence_denials"] == 0  # never tried a login it would refuse
        for emu in (emu_a, emu_b, emu_shared):
            assert op.live_sessions(emu) == 0
