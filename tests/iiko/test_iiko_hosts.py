"""The URL policy itself (`iiko_pipeline.iiko.hosts`): pure functions, no network."""

from __future__ import annotations

import pytest

from iiko_pipeline.iiko.answers import DEBUG_TEXT, debug_excerpt
from iiko_pipeline.iiko.hosts import (
    HostPolicyError,
    MissingBaseUrlError,
    check_base_url,
    host_matches,
    is_loopback,
    resolve_base_url,
)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST."])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["128.0.0.1", "10.0.0.1", "iiko.example", "localhost.example", "::2"])
def test_not_loopback_hosts(host):
    assert not is_loopback(host)


def test_no_built_in_server():
    with pytest.raises(MissingBaseUrlError):
        resolve_base_url(None, {})
    assert resolve_base_url(None, {"IIKO_DEFAULT_BASE_URL": "https://iiko.example"}) == "https://iiko.example"
    assert resolve_base_url("https://a.iiko.example", {"IIKO_DEFAULT_BASE_URL": "https://b"}) == "https://a.iiko.example"


def test_https_only_unless_loopback_or_opted_in():
    assert check_base_url("https://iiko.example", {})
    assert check_base_url("http://127.0.0.1:8080", {})
    assert check_base_url("http://[::1]:8080", {})
    with pytest.raises(HostPolicyError, match="https"):
        check_base_url("http://iiko.example", {})
    assert check_base_url("http://iiko.example", {"IIKO_ALLOW_HTTP": "true"})
    with pytest.raises(HostPolicyError, match="IIKO_ALLOW_HTTP"):
        check_base_url("http://iiko.example", {"IIKO_ALLOW_HTTP": "sure"})


def test_an_account_may_opt_in_to_plain_http():
    with pytest.raises(HostPolicyError, match="https"):
        check_base_url("http://iiko.example", {}, allow_http=False)
    assert check_base_url("http://iiko.example:8080", {}, allow_http=True) == "http://iiko.example:8080"
    assert check_base_url("http://10.0.0.5", {"IIKO_ALLOW_HTTP": "false"}, allow_http=True)
    assert check_base_url("https://iiko.example", {}, allow_http=True)  # https needs no opt-in, nor refuses one
    assert resolve_base_url("http://iiko.example", {}, allow_http=True) == "http://iiko.example"
    assert resolve_base_url(None, {"IIKO_DEFAULT_BASE_URL": "http://iiko.example"}, allow_http=True)
    with pytest.raises(HostPolicyError, match="https"):
        resolve_base_url(None, {"IIKO_DEFAULT_BASE_URL": "http://iiko.example"})


def test_loopback_needs_no_opt_in():
    for url in ("http://127.0.0.1:8080", "http://localhost", "http://[::1]:9"):
        assert check_base_url(url, {}, allow_http=False) == url
        assert check_base_url(url, {}, allow_http=True) == url


def test_the_opt_in_lifts_only_the_https_rule():
    env = {"IIKO_ALLOWED_HOSTS": "*.iiko.it"}
    assert check_base_url("http://name.iiko.it", env, allow_http=True)
    with pytest.raises(HostPolicyError, match="https"):
        check_base_url("http://name.iiko.it", env)
    with pytest.raises(HostPolicyError, match="IIKO_ALLOWED_HOSTS"):
        check_base_url("http://iiko.example", env, allow_http=True)  # the allow-list still applies
    with pytest.raises(HostPolicyError, match="https URL with a host"):
        check_base_url("ftp://name.iiko.it", env, allow_http=True)  # and only http(s) at all
    with pytest.raises(HostPolicyError, match="IIKO_ALLOW_HTTP must be"):
        check_base_url("http://iiko.example", {"IIKO_ALLOW_HTTP": "sure"}, allow_http=True)  # misconfiguration shows


def test_the_refusal_names_both_ways_to_allow_http():
    with pytest.raises(HostPolicyError) as info:
        check_base_url("http://iiko.example", {})
    assert "allow_http" in str(info.value) and "IIKO_ALLOW_HTTP=true" in str(info.value)
    assert info.value.field == "base_url"


@pytest.mark.parametrize(("host", "pattern", "ok"), [
    ("name.iiko.it", "*.iiko.it", True), ("a.b.iiko.it", "*.iiko.it", True), ("iiko.it", "*.iiko.it", False),
    ("eviliiko.it", "*.iiko.it", False), ("name.iiko.it.evil.example", "*.iiko.it", False),
    ("NAME.Syrve.Online", "*.syrve.online", True), ("iiko.example", "iiko.example", True),
])
def test_host_patterns(host, pattern, ok):
    assert host_matches(host, pattern) is ok


def test_allowed_hosts():
    env = {"IIKO_ALLOWED_HOSTS": " *.iiko.it , *.syrve.online ,"}
    assert check_base_url("https://name.iiko.it", env)
    with pytest.raises(HostPolicyError, match="IIKO_ALLOWED_HOSTS"):
        check_base_url("https://iiko.example", env)
    with pytest.raises(HostPolicyError, match="IIKO_ALLOWED_HOSTS"):
        check_base_url("http://127.0.0.1:9", env)  # loopback is exempt from https, not from the allow-list
    assert check_base_url("https://iiko.example", {"IIKO_ALLOWED_HOSTS": ""})


def test_messages_never_hold_the_url():
    with pytest.raises(HostPolicyError) as info:
        check_base_url("http://secret-internal.example/x", {})
    assert "secret-internal" not in str(info.value)


def test_debug_excerpt_is_short_and_redacted():
    text = debug_excerpt('INTERNAL-SECRET: db_password=hunter2 "api_key": "k 1" Authorization: Bearer abc ' + "x" * 500)
    assert len(text) <= DEBUG_TEXT + 3
    assert "hunter2" not in text and "k 1" not in text and "abc" not in text
