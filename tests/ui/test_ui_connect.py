"""A refused connect says in words what went wrong, next to the field it concerns, and stores nothing."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD
from tests.ui.test_ui_security import signed_in


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("case", "field", "words"), [
    ("licence full", "form", "no free API licence seat"),
    ("module blocked", "form", "API module is not licensed"),
    ("unreachable", "base_url", "could not be reached"),
    ("tls", "base_url", "(TLS)"),
])
def test_a_refused_connect_names_the_cause_in_words_next_to_its_field(pages, case: str, field: str,
                                                                     words: str) -> None:
    url = pages.emulator.url
    if case == "licence full":
        pages.emulator.state.configure(seats=0)
    elif case == "module blocked":
        pages.emulator.state.configure(mode="module_blocked")
    elif case == "unreachable":
        url = f"http://127.0.0.1:{closed_port()}"
    else:  # https to a server that speaks plain http: the TLS handshake fails
        url = url.replace("http://", "https://")
    http, csrf = signed_in(pages)
    answer = http.post(pages.url + "/ui/connect", timeout=90, data={
        "csrf_token": csrf, "account_id": pages.account_id, "base_url": url, "username": EMULATOR_LOGIN,
        "password": EMULATOR_PASSWORD})
    assert answer.status_code == 422
    marker = 'id="form-error"' if field == "form" else f'id="{field}-error"'
    start = answer.text.index(marker)
    assert words in answer.text[start:answer.text.index("</p>", start)]
    assert EMULATOR_PASSWORD not in answer.text
    assert pages.stored_accounts() == []
