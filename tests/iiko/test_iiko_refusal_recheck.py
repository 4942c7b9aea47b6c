"""Disconnect only on proof (issue 13.4) for a blocked API module and missing rights, against the emulator.

A 403 "Module ... is blocked" or "Permission denied" would mark the account disconnected, so the client
believes one only if it persists: it logs the token out (the seat is freed), pauses, logs in again and
repeats the call once. The same refusal again is raised `definitive`; a repeat that works carries on. The
one-answer cases switch the emulator back from a `requests` response hook on the client's own session, right
after the refusal reached the client (so before the re-check).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from iiko_helpers import FAST_RETRY, Control

from iiko_pipeline.iiko import ClientSettings, IikoClient
from iiko_pipeline.iiko.errors import IikoLicenceBlockedError, IikoPermissionError

#: The pause before the re-check: the client's `retry.base_delay * 4`.
RECHECK_DELAY = FAST_RETRY.base_delay * 4

Hook = Callable[[requests.Response], None]


@pytest.fixture
def hooked(emulator: Any, fast_settings: ClientSettings) -> Iterator[Callable[..., tuple[IikoClient, list[float]]]]:
    """`hooked(on_response=None)`: a client whose session calls `on_response` on every answer it gets, and
    the list of pauses it took (its `_sleep`, recorded instead of slept)."""
    sessions: list[requests.Session] = []

    def factory(on_response: Hook | None = None) -> tuple[IikoClient, list[float]]:
        session = requests.Session()
        sessions.append(session)
        if on_response is not None:
            session.hooks["response"].append(lambda response, *args, **kwargs: on_response(response))
        client = IikoClient(emulator.url, emulator.config.login, emulator.config.password,
                            settings=fast_settings, session=session)
        pauses: list[float] = []
        client._sleep = pauses.append
        return client, pauses

    yield factory
    for session in sessions:
        session.close()


def once(path: str, status: int, action: Callable[[], object]) -> Hook:
    """A hook that runs `action` the first time `path` answers `status`."""
    done: list[bool] = []

    def hook(response: requests.Response) -> None:
        if not done and response.status_code == status and response.request.path_url.startswith(path):
            done.append(True)
            action()

    return hook


def statuses(control: Control, endpoint: str) -> list[int]:
    return [r["status"] for r in control.requests(endpoint)]


def assert_no_seat_leaked(control: Control, logins: int) -> None:
    agg = control.aggregates()
    assert agg["logins"] == agg["logouts"] == logins and agg["active_tokens"] == 0


# ------------------------------------------------------------------------------------------ missing rights


def test_a_permission_denial_for_one_answer_is_not_believed(hooked, control: Control) -> None:
    control.configure(permission_denied=["suppliers"])
    client, pauses = hooked(once("/resto/api/suppliers", 403, lambda: control.configure(permission_denied=[])))
    with client:
        assert client.suppliers().root == "employees"  # the repeat worked: carry on as if nothing happened
        assert client.departments().root == "corporateItemDtoes"
    assert statuses(control, "suppliers") == [403, 200]
    assert statuses(control, "auth") == [200, 200] and pauses == [RECHECK_DELAY]
    assert_no_seat_leaked(control, logins=2)  # the first token was logged out before the re-check's login


def test_a_persistent_permission_denial_is_definitive_after_exactly_two_attempts(hooked, control: Control) -> None:
    control.configure(permission_denied=["suppliers"])
    client, pauses = hooked()
    with client:
        with pytest.raises(IikoPermissionError) as info:
            client.suppliers()
        assert client.departments().root == "corporateItemDtoes"  # the re-check's session still works
    err = info.value
    assert err.definitive and not err.transient and err.status == 403 and err.endpoint == "suppliers"
    assert "Permission denied" in err.text
    assert statuses(control, "suppliers") == [403, 403]
    assert statuses(control, "auth") == [200, 200] and pauses == [RECHECK_DELAY]
    assert_no_seat_leaked(control, logins=2)


def test_a_refusal_of_another_kind_on_the_re_check_is_no_proof(hooked, control: Control) -> None:
    """Permission denied, then the module blocked at the re-check's login: the server is changing, not proven."""
    control.configure(permission_denied=["suppliers"])
    client, _ = hooked(once("/resto/api/suppliers", 403,
                            lambda: control.configure(permission_denied=[], mode="module_blocked")))
    with client, pytest.raises(IikoLicenceBlockedError) as info:
        client.suppliers()
    assert not info.value.definitive
    assert statuses(control, "suppliers") == [403] and statuses(control, "auth") == [200, 403]
    assert_no_seat_leaked(control, logins=1)


# --------------------------------------------------------------------------------------- blocked module


def test_a_module_blocked_for_one_login_is_not_believed(hooked, control: Control) -> None:
    control.configure(mode="module_blocked")
    client, pauses = hooked(once("/resto/api/auth", 403, lambda: control.configure(mode="normal")))
    with client:
        assert client.suppliers().root == "employees"
    assert statuses(control, "auth") == [403, 200] and pauses == [RECHECK_DELAY]
    assert_no_seat_leaked(control, logins=1)


def test_a_module_blocked_at_login_is_definitive_after_exactly_two_logins(hooked, control: Control) -> None:
    control.configure(mode="module_blocked")
    client, pauses = hooked()
    with pytest.raises(IikoLicenceBlockedError) as info:
        client.__enter__()
    err = info.value
    assert err.definitive and err.status == 403 and err.endpoint == "auth"
    assert statuses(control, "auth") == [403, 403] and pauses == [RECHECK_DELAY]
    assert not client.logged_in
    assert_no_seat_leaked(control, logins=0)


def test_a_module_blocked_mid_session_for_one_answer_is_not_believed(hooked, control: Control) -> None:
    client, pauses = hooked(once("/resto/api/suppliers", 403, lambda: control.configure(mode="normal")))
    with client:
        control.configure(mode="module_blocked")
        assert client.suppliers().root == "employees"
    assert statuses(control, "suppliers") == [403, 200]
    assert statuses(control, "auth") == [200, 200] and pauses == [RECHECK_DELAY]
    assert_no_seat_leaked(control, logins=2)


def test_a_module_blocked_mid_session_is_definitive_after_exactly_two_attempts(hooked, control: Control) -> None:
    """The call, then the re-check's login (a blocked module refuses logins too): two refusals, one proof."""
    client, pauses = hooked()
    with client:
        control.configure(mode="module_blocked")
        with pytest.raises(IikoLicenceBlockedError) as info:
            client.suppliers()
        assert not client.logged_in  # the seat was freed before the re-check, and no new one was granted
    err = info.value
    assert err.definitive and err.status == 403
    assert statuses(control, "suppliers") == [403] and statuses(control, "auth") == [200, 403]
    assert pauses == [RECHECK_DELAY]
    assert_no_seat_leaked(control, logins=1)
