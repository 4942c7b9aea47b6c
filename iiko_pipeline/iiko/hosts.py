"""Which iiko servers this process may talk to: the one URL policy of connect, the API and the sync runs.

Why a policy at all: a connect sends the login and the password's SHA-1 to `base_url`, so the URL decides who
receives the credentials. There is no built-in server; the rules, checked before any request (no DNS lookup,
no connection), are:

* `base_url` is required unless the operator sets `IIKO_DEFAULT_BASE_URL`;
* `https` only, except for loopback hosts (127.0.0.0/8, ::1, localhost), for an account connected with the
  explicit opt-in `allow_http` (stored with its credentials and passed as `allow_http=True` at every check), or
  for every account when the operator sets `IIKO_ALLOW_HTTP=true` (the process-wide switch);
* when `IIKO_ALLOWED_HOSTS` is set (comma-separated patterns, `*` standing for one or more labels, e.g.
  `*.iiko.it,*.syrve.online`), only matching hosts pass, whatever `allow_http` says. Empty means any host.

Every variable is read at call time, so a stored account is checked again, with its stored `allow_http`,
when it is synced. Messages never hold the URL itself (the API's 422 never echoes a submitted value);
they name the rule that refused it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from iiko_pipeline import loopback

DEFAULT_BASE_URL_ENV = "IIKO_DEFAULT_BASE_URL"
ALLOW_HTTP_ENV = "IIKO_ALLOW_HTTP"
ALLOWED_HOSTS_ENV = "IIKO_ALLOWED_HOSTS"

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no", ""})


class HostPolicyError(ValueError):
    """`base_url` refused by the policy; the message is safe to show (it names no URL and no secret)."""

    field = "base_url"


class MissingBaseUrlError(HostPolicyError):
    """No `base_url` was given and the operator set no `IIKO_DEFAULT_BASE_URL`."""

    def __init__(self) -> None:
        super().__init__(f"no iiko server given: base_url is required ({DEFAULT_BASE_URL_ENV} is not set)")


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def default_base_url(environ: Mapping[str, str] | None = None) -> str | None:
    """`IIKO_DEFAULT_BASE_URL`, or None: there is no built-in iiko server."""
    return _env(environ).get(DEFAULT_BASE_URL_ENV, "").strip() or None


def http_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """`IIKO_ALLOW_HTTP` (default false); a value that is not a boolean is a configuration error."""
    raw = _env(environ).get(ALLOW_HTTP_ENV, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise HostPolicyError(f"{ALLOW_HTTP_ENV} must be one of true/false/1/0/yes/no")


def allowed_hosts(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The patterns of `IIKO_ALLOWED_HOSTS`, lowercased; empty means any host."""
    raw = _env(environ).get(ALLOWED_HOSTS_ENV, "")
    return tuple(p.strip().lower().rstrip(".") for p in raw.split(",") if p.strip())


def is_loopback(host: str) -> bool:
    """`loopback.is_loopback` for a URL's host, which may be written in the absolute DNS form (`localhost.`)."""
    return loopback.is_loopback(host.rstrip("."))


def host_matches(host: str, pattern: str) -> bool:
    """Whether `host` matches `pattern`: exact (case-insensitive), `*` standing for one or more labels."""
    host, pattern = host.lower().rstrip("."), pattern.lower().rstrip(".")
    regex = r"[^.]+(?:\.[^.]+)*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, host) is not None


def check_base_url(url: str, environ: Mapping[str, str] | None = None, *, allow_http: bool = False) -> str:
    """`url` when the policy lets this process send credentials there, else :class:`HostPolicyError`.

    `allow_http` is the account's own opt-in to plain http (a non-loopback host is then accepted over http);
    without it only `IIKO_ALLOW_HTTP=true` does that. Neither lifts `IIKO_ALLOWED_HOSTS`."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        raise HostPolicyError("base_url must be an https URL with a host, e.g. https://name.iiko.it")
    if scheme == "http" and not is_loopback(host) and not (http_allowed(environ) or allow_http):
        raise HostPolicyError(f"base_url must use https (http only for loopback hosts, for an account connected "
                              f"with allow_http=true, or with {ALLOW_HTTP_ENV}=true)")
    patterns = allowed_hosts(environ)
    if patterns and not any(host_matches(host, p) for p in patterns):
        raise HostPolicyError(f"the host of base_url is not in {ALLOWED_HOSTS_ENV}")
    return url.strip()


def resolve_base_url(base_url: str | None, environ: Mapping[str, str] | None = None, *,
                     allow_http: bool = False) -> str:
    """The server to use: `base_url`, else `IIKO_DEFAULT_BASE_URL`, checked (with the account's `allow_http`,
    see :func:`check_base_url`); raises :class:`HostPolicyError`."""
    url = (base_url or "").strip() or default_base_url(environ)
    if url is None:
        raise MissingBaseUrlError()
    return check_base_url(url, environ, allow_http=allow_http)
