"""Whether a host name or address stays on this machine: one answer for the URL policy (plain http allowed),
the API's insecure local mode (bind address and Host header) and the emulator's exposure warning."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """`localhost`, or a loopback address (127.0.0.0/8, ::1), brackets around an IPv6 address allowed."""
    host = host.strip().lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
