"""Login, logout, licence seats and 401 handling against the emulator over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import requests
from iiko_helpers import Control

from iiko_pipeline.iiko import ClientSettings, IikoClient
from iiko_pipeline.iiko.errors import (
    IikoAuthError,
    IikoLicenceBlockedError,
    IikoLicenceError,
    IikoPermissionError,
    IikoTransportError,
)

MakeClient = Callable[..., IikoClient]


def test_server_info_needs_no_login(make_client: MakeClient, control: Control) -> None:
    client = make_client()
    info = client.server_info()
    assert info.edition == "chain" and info.is_chain and info.version == "8.9.5012.0"
    assert info.server_name == "Эмулятор iiko" and info.server_state == "STARTED_SUCCESSFULLY"
    agg = control.aggregates()
    assert agg["logins"] == 0 and agg["by_endpoint"] == {"server_info": 1}


def test_one_login_one_logout_and_key_on_every_call(make_client: MakeClient, control: Control) -> None:
    with make_client() as client:
        assert client.logged_in
        client.departments()
        client.stores()
        client.suppliers()
    assert not client.logged_in
    agg = control.aggregates()
    assert agg["logins"] == 1 and agg["logouts"] == 1 and agg["active_tokens"] == 0
    assert agg["by_endpoint"]["auth"] == 1
    data = [r for r in control.requests() if r["endpoint"] not in ("auth", "logout")]
    assert len(data) == 3 and all(r["key_present"] for r in data)
    assert [r["method"] for r in control.requests("auth")] == ["POST"]  # form body: no hash in any URL


def test_get_login_method(make_client: MakeClient, control: Control) -> None:
    with make_client(auth_method="get") as client:
        client.suppliers()
    assert [r["method"] for r in control.requests("auth")] == ["GET"]
    assert control.aggregates()["logouts"] == 1


def test_logout_also_when_the_body_raises(make_client: MakeClient, control: Control) -> None:
    with pytest.raises(ZeroDivisionError), make_client() as client:
        client.suppliers()
        _ = 1 / 0
    agg = control.aggregates()
    assert agg["logins"] == agg["logouts"] == 1 and agg["active_tokens"] == 0


def test_bad_credentials_are_believed_only_when_a_second_login_is_refused_too(make_client: MakeClient,
                                                                            control: Control) -> None:
    """Disconnect only on proof (issue 13.4): one refused login may be an iiko restarting; two, a pause apart,
    are the wrong password. Never more than two: repeating a wrong password only fills the server log."""
    client = make_client(password="wrong password")
    with pytest.raises(IikoAuthError) as info:
        client.__enter__()
    err = info.value
    assert err.status == 401 and err.endpoint == "auth" and err.attempts is None
    assert "wrong login or password" in str(err) and "check the credentials" in str(err)
    assert err.definitive and not err.transient
    assert len(control.requests("auth")) == 2
    agg = control.aggregates()
    assert agg["failed_logins"] == 2 and agg["logins"] == 0 and "logout" not in agg["by_endpoint"]


def test_server_starting_answers_401_on_login(make_client: MakeClient, control: Control) -> None:
    """iiko's "server is starting" 401 is transient: retried within the policy, never proof of a bad password."""
    control.configure(mode="starting")
    with pytest.raises(IikoAuthError, match="starting") as info:
        make_client().__enter__()
    assert info.value.transient and not info.value.definitive
    assert len(control.requests("auth")) == info.value.attempts > 1


def test_expired_token_means_exactly_one_relogin(make_client: MakeClient, control: Control) -> None:
    with make_client() as client:
        client.suppliers()
        control.restart()  # every token dies, as on an iiko server restart or after ~1 h idle
        response = client.suppliers()
        assert response.root == "employees"
        client.departments()
    agg = control.aggregates()
    assert agg["by_endpoint"]["auth"] == 2 and agg["unauthorized"] == 1
    assert [r["status"] for r in control.requests("suppliers")] == [200, 401, 200]
    # The dead token's seat was freed by the restart and the new one by our logout: nothing leaks.
    # (The emulator counts only logouts that free a live seat, so logins == logouts + 1 here.)
    assert agg["logins"] == 2 and agg["logouts"] == 1 and agg["active_tokens"] == 0


def test_a_failed_relogin_leaves_the_client_able_to_log_in_again(make_client: MakeClient, control: Control) -> None:
    """The token expires and the re-login meets a proxy's HTML page: that call fails, but the client is
    still in its session, so the next call logs in again instead of refusing with "not logged in" (seen under
    heavy faults: every later step of the run failed as an internal error)."""
    with make_client() as client:
        client.suppliers()
        control.fault("suppliers", "token_expired", count=1)
        control.fault("auth", "html200", count=1)
        with pytest.raises(IikoTransportError) as info:
            client.suppliers()
        assert info.value.endpoint == "auth" and not client.logged_in
        assert client.departments().root == "corporateItemDtoes"  # logs in again first
    agg = control.aggregates()
    assert agg["by_endpoint"]["auth"] == 3  # the first login, the failed re-login, the one before departments
    assert agg["logins"] == agg["logouts"] + 1 and agg["active_tokens"] == 0  # + the seat the expiry freed


def test_second_401_after_relogin_is_an_auth_error(emulator: Any, fast_settings: ClientSettings,
                                                   control: Control) -> None:
    # Kill every token right after each login answer (a response hook on our own requests.Session), so
    # that both the first call and its repeat after the re-login arrive with a dead token.
    session = requests.Session()

    def restart_after_login(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.request.path_url.startswith("/resto/api/auth"):
            control.restart()

    session.hooks["response"].append(restart_after_login)
    client = IikoClient(emulator.url, emulator.config.login, emulator.config.password,
                        settings=fast_settings, session=session)
    with client, pytest.raises(IikoAuthError) as info:
        client.suppliers()
    err = info.value
    assert err.status == 401 and err.endpoint == "suppliers"
    assert "401 again right after a fresh login" in str(err)
    assert [r["status"] for r in control.requests("suppliers")] == [401, 401]
    assert control.aggregates()["by_endpoint"]["auth"] == 2  # one re-login, not a loop
    session.close()


def test_server_restarting_mid_session(make_client: MakeClient, control: Control) -> None:
    with make_client() as client:
        control.configure(mode="starting")  # 401 to everything, including the re-login
        with pytest.raises(IikoAuthError, match="starting") as info:
            client.suppliers()
    assert info.value.transient and not info.value.definitive  # a restart is no reason to disconnect
    assert len(control.requests("suppliers")) == 1
    assert control.aggregates()["by_endpoint"]["auth"] == 1 + info.value.attempts  # the re-login was retried


def test_all_seats_taken_is_a_licence_error_and_the_holder_keeps_working(
        make_client: MakeClient, control: Control) -> None:
    with make_client() as first:
        first.suppliers()
        second = make_client()
        with pytest.raises(IikoLicenceError) as info:
            second.__enter__()
        err = info.value
        assert err.status == 403 and err.endpoint == "auth" and err.attempts is None
        for phrase in ("28008806", "log out stale sessions", "~1 h", "buy more seats", "do not retry immediately"):
            assert phrase in str(err)
        assert "no connections available" in err.text
        assert not second.logged_in
        assert first.suppliers().root == "employees"  # the seat holder is unaffected
    assert len(control.requests("auth")) == 2  # the licence error was not retried
    with make_client() as third:  # the seat is free again after the first client's logout
        third.departments()
    agg = control.aggregates()
    assert agg["licence_denials"] == 1 and agg["logins"] == agg["logouts"] == 2


def test_module_blocked_on_login(make_client: MakeClient, control: Control) -> None:
    control.configure(mode="module_blocked")
    with pytest.raises(IikoLicenceBlockedError) as info:
        make_client().__enter__()
    assert info.value.status == 403 and "blocked within current license" in str(info.value)
    assert info.value.definitive  # believed because a second login, a pause later, was blocked too
    assert len(control.requests("auth")) == 2


def test_module_blocked_mid_session_is_re_checked_once_and_logout_still_happens(
        make_client: MakeClient, control: Control) -> None:
    with make_client() as client:
        control.configure(mode="module_blocked")
        with pytest.raises(IikoLicenceBlockedError) as info:
            client.suppliers()
    assert info.value.definitive
    assert len(control.requests("suppliers")) == 1 and len(control.requests("auth")) == 2  # the re-check's login
    agg = control.aggregates()
    assert agg["logins"] == agg["logouts"] == 1


def test_permission_denied(make_client: MakeClient, control: Control) -> None:
    control.configure(permission_denied=["suppliers"])
    with make_client() as client:
        with pytest.raises(IikoPermissionError) as info:
            client.suppliers()
        assert "Permission denied" in info.value.text and "rights" in str(info.value)
        assert info.value.definitive  # denied again after a logout, a pause and a new login
        assert client.departments().root == "corporateItemDtoes"
    assert len(control.requests("suppliers")) == 2


def test_logout_falls_back_to_post(make_client: MakeClient, control: Control) -> None:
    control.fault("logout", "http_400", count=1)
    with make_client() as client:
        client.suppliers()
    assert [r["method"] for r in control.requests("logout")] == ["GET", "POST"]
    assert control.aggregates()["logouts"] == 1


def test_logout_failure_is_logged_and_swallowed(make_client: MakeClient, control: Control,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    control.fault("logout", "http_503", count=10)
    with make_client() as client:
        client.suppliers()
        token = client._token
    assert token is not None
    methods = [r["method"] for r in control.requests("logout")]
    assert methods == ["GET", "GET", "POST"]  # a short retry of the GET, then the POST fallback
    assert "logout from" in caplog.text and "seat stays taken" in caplog.text
    assert token not in caplog.text
    assert control.aggregates()["active_tokens"] == 1  # the seat really is still held


def test_client_is_not_usable_without_login(make_client: MakeClient) -> None:
    with pytest.raises(RuntimeError, match="not logged in"):
        make_client().suppliers()
