"""Auth, tokens, licence seats and server modes, checked over real HTTP."""

from __future__ import annotations

import hashlib
import time
import uuid

import requests
from emulator_helpers import TIMEOUT, Api, parse, sha1

from iiko_pipeline.emulator import EmulatorServer

LICENCE_TEXT = "License enhancement is required: no connections available for module 28008806"
BLOCKED_TEXT = "Module 28008806 is blocked within current license"


def test_sha1_is_over_utf8_bytes_of_a_non_ascii_password(api: Api) -> None:
    assert any(ord(ch) > 127 for ch in api.password)
    assert sha1("resto#test") == "2155245b2c002a1986d3f384af93be813537a476"  # the docs' example
    # Hashing the platform/legacy encoding instead of UTF-8 must fail.
    wrong = hashlib.sha1(api.password.encode("cp1251")).hexdigest()  # noqa: S324
    r = requests.get(api.url("auth"), params={"login": api.login_name, "pass": wrong}, timeout=TIMEOUT)
    assert r.status_code == 401


def test_auth_get_returns_token_and_cookie(api: Api) -> None:
    r = requests.get(api.url("auth"), params={"login": api.login_name, "pass": sha1(api.password)},
                     timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.headers["Server"] == "Apache-Coyote/1.1"
    token = r.text
    uuid.UUID(token)
    assert len(token) == 36
    assert r.cookies.get("key") == token
    assert "Path=/resto" in r.headers["Set-Cookie"]
    assert api.logout(token).status_code == 200


def test_auth_post_form_body(api: Api) -> None:
    r = requests.post(api.url("auth"), data={"login": api.login_name, "pass": sha1(api.password)},
                      timeout=TIMEOUT)
    assert r.status_code == 200
    token = r.text
    r = requests.post(api.url("logout"), data={"key": token}, timeout=TIMEOUT)
    assert r.status_code == 200
    assert api.emu.state.log.logouts == 1


def test_wrong_credentials_and_missing_params(api: Api) -> None:
    r = requests.get(api.url("auth"), params={"login": api.login_name, "pass": sha1("nope")}, timeout=TIMEOUT)
    assert r.status_code == 401
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text
    r = requests.get(api.url("auth"), params={"login": "someone", "pass": sha1(api.password)}, timeout=TIMEOUT)
    assert r.status_code == 401
    upper = sha1(api.password).upper()
    r = requests.get(api.url("auth"), params={"login": api.login_name, "pass": upper}, timeout=TIMEOUT)
    assert r.status_code == 401, "pass must be lowercase hex"
    r = requests.get(api.url("auth"), params={"login": api.login_name}, timeout=TIMEOUT)
    assert r.status_code == 400
    assert api.emu.state.log.failed_logins == 4
    assert api.emu.state.log.logins == 0


def test_missing_unknown_and_malformed_keys_get_401(api: Api) -> None:
    assert api.get("suppliers").status_code == 401
    r = api.get("suppliers", str(uuid.uuid4()))
    assert r.status_code == 401
    assert r.headers["Content-Type"].startswith("text/plain")
    assert api.get("suppliers", "not-a-token").status_code == 401


def test_key_by_query_and_by_cookie(api: Api) -> None:
    token = api.login()
    assert api.get("corporation/stores", token).status_code == 200
    r = requests.get(api.url("corporation/stores"), cookies={"key": token}, timeout=TIMEOUT)
    assert r.status_code == 200
    api.logout(token)
    # A requests.Session keeps the cookie set by /auth, so a cookie-only client works end to end.
    with requests.Session() as s:
        s.get(api.url("auth"), params={"login": api.login_name, "pass": sha1(api.password)}, timeout=TIMEOUT)
        assert s.get(api.url("corporation/stores"), timeout=TIMEOUT).status_code == 200
        assert s.post(api.url("logout"), timeout=TIMEOUT).status_code == 200
    assert [r.key_present for r in api.emu.state.log.records("corporation/stores")] == [True, True, True]
    assert api.emu.state.log.logouts == 2


def test_single_seat_second_login_gets_exact_403_until_logout(api: Api) -> None:
    first = api.login()
    r = requests.get(api.url("auth"), params={"login": api.login_name, "pass": sha1(api.password)},
                     timeout=TIMEOUT)
    assert r.status_code == 403
    assert r.text == LICENCE_TEXT
    assert r.headers["Content-Type"].startswith("text/plain")
    assert api.logout(first).status_code == 200
    second = api.login()
    assert second != first
    assert api.get("suppliers", first).status_code == 401, "a logged-out token is dead"
    api.logout(second)
    log = api.emu.state.log
    assert (log.logins, log.logouts, log.active_tokens) == (2, 2, 0)


def test_more_seats_via_config(api: Api) -> None:
    api.control("POST", "config", json={"seats": 2})
    a, b = api.login(), api.login()
    assert api.get("auth", login=api.login_name, **{"pass": sha1(api.password)}).status_code == 403
    r = api.get("licence/info", moduleId="28008806")
    assert r.status_code == 200
    assert parse(r.content).findtext("freeSeats") == "0"
    api.logout(a)
    assert parse(api.get("licence/info", moduleId="28008806").content).findtext("freeSeats") == "1"
    api.logout(b)


def test_logout_variants(api: Api) -> None:
    tok = api.login()
    r = requests.get(api.url("logout"), cookies={"key": tok}, timeout=TIMEOUT)
    assert r.status_code == 200
    tok = api.login()
    r = requests.post(api.url("logout"), params={"key": tok}, timeout=TIMEOUT)
    assert r.status_code == 200
    # Unknown token: 200 by default, 401 when configured.
    assert api.logout(str(uuid.uuid4())).status_code == 200
    api.emu.state.configure(logout_unknown_status=401)
    assert api.logout(str(uuid.uuid4())).status_code == 401
    assert api.emu.state.log.logouts == 2


def test_sliding_ttl_expiry_frees_the_seat(api: Api) -> None:
    api.emu.state.configure(token_ttl=0.6)
    tok = api.login()
    for _ in range(3):  # each request slides the expiry forward
        time.sleep(0.3)
        assert api.get("corporation/stores", tok).status_code == 200
    time.sleep(0.9)
    assert api.get("corporation/stores", tok).status_code == 401
    fresh = api.login()  # the expired token no longer holds the only seat
    api.logout(fresh)


def test_restart_invalidates_all_tokens(api: Api) -> None:
    tok = api.login()
    assert api.control("POST", "restart").json() == {"ok": True}
    assert api.get("suppliers", tok).status_code == 401
    tok = api.login()
    api.emu.state.restart()
    assert api.get("suppliers", tok).status_code == 401


def test_modes_and_permissions(api: Api) -> None:
    state = api.emu.state
    state.configure(mode="starting")
    assert requests.get(api.url("auth"), params={"login": api.login_name, "pass": sha1(api.password)},
                        timeout=TIMEOUT).status_code == 401
    info = requests.get(f"{api.base}/resto/get_server_info.jsp", params={"encoding": "UTF-8"}, timeout=TIMEOUT)
    assert parse(info.content).findtext("serverState") == "STARTING"
    state.configure(mode="module_blocked")
    r = requests.get(api.url("auth"), params={"login": api.login_name, "pass": sha1(api.password)}, timeout=TIMEOUT)
    assert (r.status_code, r.text) == (403, BLOCKED_TEXT)
    state.configure(mode="normal", permission_denied=["suppliers"])
    tok = api.login()
    r = api.get("suppliers", tok)
    assert (r.status_code, r.text) == (403, "Permission denied")
    assert api.get("corporation/stores", tok).status_code == 200
    api.logout(tok)


def test_server_info_needs_no_login(make_emulator) -> None:
    with make_emulator(version="7.5.0", edition="default", computer_name="IIKO-X") as emu:
        emu: EmulatorServer
        r = requests.get(f"{emu.url}/resto/get_server_info.jsp", params={"encoding": "UTF-8"}, timeout=TIMEOUT)
        assert r.status_code == 200
        assert r.content.startswith(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>')
        root = parse(r.content)
        assert root.tag == "r"
        assert [c.tag for c in root] == ["serverName", "edition", "version", "computerName", "serverState"]
        assert root.findtext("version") == "7.5.0"
        assert root.findtext("edition") == "default"
        assert root.findtext("computerName") == "IIKO-X"
        assert emu.state.log.logins == 0
