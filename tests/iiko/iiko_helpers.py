"""Helpers for the client tests: the emulator's control API over HTTP and fast retry settings."""

from __future__ import annotations

from typing import Any

import requests

from iiko_pipeline.iiko import RetryPolicy

TIMEOUT = 10

#: Tiny delays so retry tests stay fast; generous attempts and a total budget that never binds by accident.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_total=10.0)


class Control:
    """The emulator's `/_emulator/` control API over real HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base = f"{base_url}/_emulator"
        self.http = requests.Session()

    def _call(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        response = self.http.request(method, f"{self.base}/{path}", json=json, params=params or None,
                                     timeout=TIMEOUT)
        assert response.status_code < 300, f"control API {method} {path}: {response.status_code} {response.text}"
        return response.json()

    def fault(self, endpoint: str, kind: str, count: int | None = None, probability: float | None = None,
              delay: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"endpoint": endpoint, "kind": kind}
        for name, value in (("count", count), ("probability", probability), ("delay", delay)):
            if value is not None:
                body[name] = value
        return self._call("POST", "faults", body)

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self._call("POST", "config", changes)

    def restart(self) -> None:
        self._call("POST", "restart")

    def aggregates(self) -> dict[str, Any]:
        return self._call("GET", "log")["aggregates"]

    def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        records = self._call("GET", "log")["requests"]
        return [r for r in records if endpoint is None or r["endpoint"] == endpoint]

    def truth(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, **params)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("PATCH", path, body)

    def close(self) -> None:
        self.http.close()
