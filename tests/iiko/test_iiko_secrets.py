"""Password hashing and secret hygiene of errors and URLs (no emulator needed)."""

from __future__ import annotations

import hashlib
import logging
import pickle
import socket

import pytest

from iiko_pipeline.iiko import ClientSettings, IikoClient, RetryPolicy
from iiko_pipeline.iiko.client import password_hash
from iiko_pipeline.iiko.errors import (
    IikoApiError,
    IikoError,
    IikoLicenceError,
    IikoResponseError,
    IikoTransportError,
    licence_message,
)
from iiko_pipeline.iiko.redact import RedactingFilter, redact_text, redact_url

PASSWORD = "пароль#Test1"


def test_sha1_of_documented_example() -> None:
    # docs/iiko-server-api.md §5.1: the documented hash is plain SHA-1 of "resto#test" (no salt).
    assert password_hash("resto#test") == "2155245b2c002a1986d3f384af93be813537a476"
    assert password_hash("password") == "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8"


def test_sha1_of_non_ascii_password_uses_utf8() -> None:
    digest = password_hash(PASSWORD)
    assert digest == hashlib.sha1(PASSWORD.encode("utf-8"), usedforsecurity=False).hexdigest()
    assert digest != hashlib.sha1(PASSWORD.encode("cp1251"), usedforsecurity=False).hexdigest()
    assert len(digest) == 40 and digest == digest.lower()


def test_client_keeps_only_the_hash_privately() -> None:
    client = IikoClient("http://127.0.0.1:9", "etl", PASSWORD)
    state = repr(vars(client))
    assert PASSWORD not in state
    assert password_hash(PASSWORD) not in repr(client) and PASSWORD not in repr(client)
    assert client._pass_hash == password_hash(PASSWORD)


def test_redact_url_and_text() -> None:
    url = "https://u:pw@h:8080/resto/api/auth?login=etl&pass=abc123&key=tok-1&from=2024-01-01"
    cleaned = redact_url(url)
    assert "abc123" not in cleaned and "tok-1" not in cleaned and "pw@" not in cleaned
    assert "login=etl" in cleaned and "from=2024-01-01" in cleaned
    text = "Max retries exceeded with url: /resto/api/x?key=tok-1&b=2 (pass=abc123)"
    assert "tok-1" not in redact_text(text) and "abc123" not in redact_text(text)
    assert redact_text("echo SECRETVALUE here", ["SECRETVALUE"]) == "echo *** here"


def test_error_messages_are_redacted_and_explain() -> None:
    err = IikoApiError("boom at /resto/api/x?key=tok-1", endpoint="x", status=500, text="pass=abc")
    assert "tok-1" not in str(err) and "tok-1" not in repr(err) and "abc" not in err.text
    assert str(err).startswith("x (HTTP 500): ")
    licence = IikoLicenceError(licence_message(), endpoint="auth", status=403)
    for phrase in ("28008806", "log out stale sessions", "1 h", "buy more seats", "do not retry immediately"):
        assert phrase in str(licence)
    assert issubclass(IikoResponseError, IikoError) and issubclass(IikoTransportError, IikoError)


def test_errors_survive_pickling() -> None:
    err = IikoLicenceError(licence_message(), endpoint="auth", status=403, text="License enhancement ...")
    err.with_attempts(2)
    copy = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes
    assert type(copy) is IikoLicenceError and str(copy) == str(err) and copy.text == err.text
    assert (copy.endpoint, copy.status, copy.attempts) == ("auth", 403, 2)
    response_error = pickle.loads(  # noqa: S301 - our own bytes
        pickle.dumps(IikoResponseError("x", endpoint="e", status=200, kind="root")))
    assert response_error.kind == "root" and not response_error.transient


def test_redacting_filter_masks_urllib3_style_records() -> None:
    record = logging.LogRecord("urllib3.connectionpool", logging.DEBUG, __file__, 1,
                               '%s://%s:%s "%s %s %s" %s %s',
                               ("http", "h", 80, "GET", "/resto/api/x?key=tok-1", "HTTP/1.1", 200, 5), None)
    assert RedactingFilter().filter(record)
    assert "tok-1" not in record.getMessage() and "key=***" in record.getMessage()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_connection_on_login_is_a_clean_transport_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = ClientSettings(connect_timeout=1, read_timeout=1, auth_method="get",
                              retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01, max_total=5))
    client = IikoClient(f"http://127.0.0.1:{_closed_port()}", "etl", PASSWORD, settings=settings)
    with pytest.raises(IikoTransportError) as info:
        client.__enter__()
    err = info.value
    digest = password_hash(PASSWORD)
    assert err.endpoint == "auth" and err.status is None and err.attempts == 2
    assert "Connection refused" in str(err) or "Errno" in str(err)
    assert err.__cause__ is None and err.__context__ is None  # no requests exception (with the URL) chained
    for text in (str(err), repr(err), caplog.text):
        assert digest not in text and PASSWORD not in text
    assert "pass=***" in str(err)


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        ClientSettings(auth_method="put")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ClientSettings(invoice_window_days=0)
    with pytest.raises(ValueError, match="does not exist"):
        IikoClient("https://h", "u", "p", settings=ClientSettings(verify="/nonexistent/ca.pem"))
    with pytest.raises(ValueError):
        IikoClient("ftp://h", "u", "p")


def test_base_url_normalisation() -> None:
    assert IikoClient("http://h:8080/resto/api/", "u", "p").base_url == "http://h:8080"
    assert IikoClient("http://h:8080/resto", "u", "p").base_url == "http://h:8080"


def test_verify_false_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="iiko_pipeline.iiko")
    IikoClient("https://h:443", "u", PASSWORD, settings=ClientSettings(verify=False))
    warnings = [r for r in caplog.records if "verification is disabled" in r.getMessage()]
    assert len(warnings) == 1
