"""A sync-sized session at the brief's scale (31 restaurants, 658 suppliers, a week of invoices) through faults.

What a real sync does, against the `seed` scale: every fault kind that can heal is injected once, the token
expires mid-session, and at the end the server must hold no seat: logins == logouts.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from iiko_pipeline.emulator import EmulatorConfig, EmulatorServer
from iiko_pipeline.iiko import ClientSettings, IikoClient, RetryPolicy
from iiko_pipeline.iiko.errors import IikoLicenceError
from iiko_pipeline.iiko.parsing import iter_corporate_items, iter_suppliers

LOGIN, PASSWORD = "chain_etl", "Пароль-сети#1"
FAST = ClientSettings(connect_timeout=2.0, read_timeout=10.0,
                      retry=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_total=20.0))


@pytest.fixture(scope="module")
def seed_emulator():
    cfg = EmulatorConfig(host="127.0.0.1", port=0, login=LOGIN, password=PASSWORD, seed=3, scale="seed")
    with EmulatorServer(cfg) as emu:
        yield emu


def test_seed_scale_session_through_faults_and_expiry_leaves_no_seat(seed_emulator):
    emu = seed_emulator
    state = emu.state
    for endpoint, kind in (("corporation/departments", "http_500"), ("corporation/stores", "reset"),
                           ("suppliers", "truncated"), ("documents/export/incomingInvoice", "http_503"),
                           ("documents/export/incomingInvoice", "malformed")):
        state.add_fault(endpoint=endpoint, kind=kind, count=1)
    today = date.today()
    with IikoClient(emu.url, LOGIN, PASSWORD, settings=FAST) as client:
        restaurants = [d for d in iter_corporate_items(client.departments().body) if d.get("type") == "DEPARTMENT"]
        stores = list(iter_corporate_items(client.stores().body))
        state.configure(token_ttl=0.2)  # the token dies while we "work"
        time.sleep(0.4)
        suppliers = list(iter_suppliers(client.suppliers().body))
        state.configure(token_ttl=3600)
        invoices = list(client.incoming_invoices(today - timedelta(days=6), today))
    assert len(restaurants) == 31 and len(suppliers) == 658 and len(stores) == len(state.dataset.stores())
    assert len(invoices) == len(state.dataset.invoices(today - timedelta(days=6), today)) > 31 * 5 * 7 // 2
    summary = state.log.summary()
    assert summary["active_tokens"] == 0  # every seat this session took is free again
    assert summary["max_concurrency"] == 1  # strictly sequential


def test_second_concurrent_client_gets_the_licence_error_not_a_crash(seed_emulator):
    emu = seed_emulator
    with IikoClient(emu.url, LOGIN, PASSWORD, settings=FAST) as first:
        with pytest.raises(IikoLicenceError) as caught, IikoClient(emu.url, LOGIN, PASSWORD, settings=FAST):
            pass
        assert "seat" in str(caught.value).lower() or "licen" in str(caught.value).lower()
        assert first.suppliers().root == "employees"  # the first session is unharmed
    assert emu.state.log.summary()["active_tokens"] == 0
