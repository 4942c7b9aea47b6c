"""The pages' security over plain HTTP (no browser needed): sign-in, the session cookie, CSRF and origin checks,
the headers, and that no secret is rendered. Each test drives the real app on a real port with `requests`."""

from __future__ import annotations

import logging
import re
import time
import uuid

import pytest
import requests

from iiko_pipeline.ui import CONTENT_SECURITY_POLICY
from iiko_pipeline.ui.sessions import SessionStore
from tests.api.conftest import log_text, serve
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(response: requests.Response) -> str:
    found = CSRF.search(response.text)
    assert found, "the page has no form token"
    return found.group(1)


def signed_in(pages, http: requests.Session | None = None) -> tuple[requests.Session, str]:
    """A session signed in with the API token, and its form token."""
    http = http or requests.Session()
    form = http.get(pages.url + "/ui/sign-in", timeout=30)
    answer = http.post(pages.url + "/ui/sign-in", data={"csrf_token": csrf_of(form), "secret": pages.token},
                       timeout=30)
    assert answer.status_code == 200 and answer.url.endswith("/ui/"), answer.text
    return http, csrf_of(answer)


def test_every_page_needs_a_session_and_a_form_without_one_is_refused(pages) -> None:
    for path in ("/ui/", "/ui/connect", f"/ui/accounts/{uuid.uuid4()}"):
        answer = requests.get(pages.url + path, allow_redirects=False, timeout=30)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/ui/sign-in?next=" + path
    answer = requests.post(pages.url + "/ui/connect", data={"account_id": str(uuid.uuid4())}, allow_redirects=False,
                           timeout=30)
    assert answer.status_code == 403
    assert "not signed in" in answer.text
    assert requests.get(pages.url + "/", allow_redirects=False, timeout=30).headers["location"] == "/ui/"


def test_sign_in_sets_a_strict_http_only_cookie_and_a_new_session_id(pages) -> None:
    http = requests.Session()
    form = http.get(pages.url + "/ui/sign-in", timeout=30)
    before = form.cookies["iiko_ui_session"]
    wrong = http.post(pages.url + "/ui/sign-in", data={"csrf_token": csrf_of(form), "secret": "guess-guess-guess"},
                      timeout=30)
    assert wrong.status_code == 401
    assert "guess-guess-guess" not in wrong.text
    answer = http.post(pages.url + "/ui/sign-in", data={"csrf_token": csrf_of(form), "secret": pages.token},
                       allow_redirects=False, timeout=30)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http to a loopback host: local development
    assert answer.cookies["iiko_ui_session"] != before  # no session fixation
    assert pages.token not in answer.text and pages.token not in cookie


def test_behind_a_public_host_name_the_cookie_is_secure_and_host_bound(pages) -> None:
    http = requests.Session()
    headers = {"Host": "integrations.example.com"}
    form = http.get(pages.url + "/ui/sign-in", headers=headers, timeout=30)
    cookie = form.headers["set-cookie"]
    assert cookie.startswith("__Host-iiko_ui_session=")
    assert "Secure" in cookie and "Path=/;" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_pages_send_a_strict_content_security_policy_and_no_framing(pages) -> None:
    answer = requests.get(pages.url + "/ui/sign-in", timeout=30)
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert "<script>" not in answer.text and " style=" not in answer.text  # nothing inline that CSP would block
    assert "content-security-policy" not in requests.get(pages.url + "/health", timeout=30).headers


def test_a_form_without_its_token_or_from_another_origin_is_refused(pages) -> None:
    assert pages.connect().status_code == 200
    http, csrf = signed_in(pages)
    url = f"{pages.url}/ui/accounts/{pages.account_id}/name"
    assert http.post(url, data={"display_name": "No token"}, timeout=30).status_code == 403
    assert http.post(url, data={"display_name": "Bad", "csrf_token": "x" + csrf}, timeout=30).status_code == 403
    foreign = http.post(url, data={"display_name": "Foreign", "csrf_token": csrf},
                        headers={"Origin": "http://evil.example"}, timeout=30)
    assert foreign.status_code == 403 and "own pages" in foreign.text
    _, other_csrf = signed_in(pages)  # another operator's token does not work in this session
    assert http.post(url, data={"display_name": "Mixed", "csrf_token": other_csrf}, timeout=30).status_code == 403
    page = http.get(f"{pages.url}/ui/accounts/{pages.account_id}", timeout=30)
    assert "No token" not in page.text and "Foreign" not in page.text and "Mixed" not in page.text
    ok = http.post(url, data={"display_name": "Café One", "csrf_token": csrf}, headers={"Origin": pages.url},
                   timeout=30)
    assert ok.status_code == 200 and "Café One" in ok.text


def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(pages) -> None:
    http, csrf = signed_in(pages)
    cookie = http.cookies["iiko_ui_session"]
    answer = http.post(pages.url + "/ui/sign-out", data={"csrf_token": csrf}, allow_redirects=False, timeout=30)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/sign-in"
    replay = requests.get(pages.url + "/ui/", cookies={"iiko_ui_session": cookie}, allow_redirects=False,
                          timeout=30)
    assert replay.status_code == 303 and replay.headers["location"].startswith("/ui/sign-in")


def test_the_json_api_still_wants_its_bearer_token_whatever_the_cookie(pages) -> None:
    http, _ = signed_in(pages)
    assert http.get(pages.path(""), timeout=30).status_code == 401
    assert pages.status().status_code == 404  # with the token: the account is simply unknown


@pytest.mark.parametrize("target", ["//evil.example/ui/", "https://evil.example/", "/ui/\\evil", "/health"])
def test_sign_in_goes_back_only_to_our_own_pages(pages, target: str) -> None:
    http = requests.Session()
    form = http.get(pages.url + "/ui/sign-in", timeout=30)
    answer = http.post(pages.url + "/ui/sign-in", data={"csrf_token": csrf_of(form), "secret": pages.token,
                                                        "next": target}, allow_redirects=False, timeout=30)
    assert answer.headers["location"] == "/ui/"


def test_a_refused_connect_never_shows_or_logs_the_password(pages, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    http, csrf = signed_in(pages)
    secret = "Sekret-пароль-42!"
    answer = http.post(pages.url + "/ui/connect", timeout=60, data={
        "csrf_token": csrf, "account_id": pages.account_id, "base_url": pages.emulator.url,
        "username": EMULATOR_LOGIN, "password": secret})
    assert answer.status_code == 422
    assert "the user name or the password is wrong" in answer.text
    assert secret not in answer.text and secret not in log_text(caplog)
    assert pages.stored_accounts() == []
    bad_url = http.post(pages.url + "/ui/connect", timeout=60, data={
        "csrf_token": csrf, "account_id": "not-a-uuid", "base_url": "ftp://x", "username": "", "password": secret})
    assert bad_url.status_code == 422
    for field in ("account_id", "base_url", "username"):
        assert f'id="{field}-error"' in bad_url.text, field
    assert secret not in bad_url.text
    assert pages.emulator.state.log.summary()["logins"] == 0  # refused before any request


def test_a_wrong_reconnect_keeps_the_working_credentials(pages) -> None:
    from iiko_pipeline.warehouse.credentials import IIKO, load_credentials

    assert pages.connect().status_code == 200
    http, csrf = signed_in(pages)
    answer = http.post(f"{pages.url}/ui/accounts/{pages.account_id}/connect", timeout=60, data={
        "csrf_token": csrf, "base_url": pages.emulator.url, "username": EMULATOR_LOGIN, "password": "wrong-one"})
    assert answer.status_code == 422
    assert "keeps its working credentials" in answer.text
    assert load_credentials(pages.engine, pages.keyring, pages.account_id, IIKO).password == EMULATOR_PASSWORD


def test_local_mode_signs_in_at_once_but_only_on_a_loopback_host(backend) -> None:
    for pages in serve(backend, api_token=None, insecure=True):
        answer = requests.get(pages.url + "/ui/", allow_redirects=False, timeout=30)
        assert answer.status_code == 200 and "Local mode" in answer.text
        assert "iiko_ui_session" in answer.cookies
        rebound = requests.get(pages.url + "/ui/", headers={"Host": "attacker.example"}, timeout=30)
        assert rebound.status_code == 400


def test_sessions_expire_when_idle_and_the_oldest_go_first_when_there_are_too_many() -> None:
    store = SessionStore(idle_timeout=0.2, max_age=60, max_sessions=2)
    first, _ = store.new(signed_in=True)
    assert store.get(first) is not None
    time.sleep(0.3)
    assert store.get(first) is None
    a, _ = store.new()
    b, _ = store.new()
    store.get(a)  # a used more recently than b
    c, _ = store.new()
    assert store.get(b) is None and store.get(a) is not None and store.get(c) is not None
    store.end(a)
    assert store.get(a) is None
    aged = SessionStore(idle_timeout=60, max_age=0.1)
    old, _ = aged.new(signed_in=True)
    time.sleep(0.2)
    assert aged.get(old) is None


def test_a_backfill_form_with_a_bad_range_is_refused_next_to_its_fields_and_starts_nothing(pages) -> None:
    assert pages.connect().status_code == 200
    http, csrf = signed_in(pages)
    url = f"{pages.url}/ui/accounts/{pages.account_id}/backfill"
    missing = http.post(url, data={"csrf_token": csrf, "entity": "invoices", "date_from": "2026-11-01"}, timeout=30)
    assert missing.status_code == 422 and 'id="date_to-error"' in missing.text
    assert 'value="2026-11-01"' in missing.text  # what was typed stays in the form
    reversed_ = http.post(url, data={"csrf_token": csrf, "entity": "invoices", "date_from": "2026-11-05",
                                     "date_to": "2026-11-01"}, timeout=30)
    assert reversed_.status_code == 422 and 'id="date_from-error"' in reversed_.text
    assert pages.instance.get_runs() == []
