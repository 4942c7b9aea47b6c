"""Helpers for the emulator tests: talk to it over real HTTP with `requests`, like a client would."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from typing import Any

import requests

from iiko_pipeline.emulator import EmulatorServer

TIMEOUT = 10
# Same credentials as the root conftest's `emulator` fixture (non-ASCII password on purpose).
EMULATOR_LOGIN = "etl_user"
EMULATOR_PASSWORD = "пароль#Test1"


def sha1(password: str) -> str:
    return hashlib.sha1(password.encode("utf-8")).hexdigest()  # noqa: S324 - the iiko protocol


class Api:
    """A minimal iiko client for tests: explicit about every parameter, no retries, no magic."""

    def __init__(self, emu: EmulatorServer):
        self.emu = emu
        self.base = emu.url
        self.login_name = emu.config.login
        self.password = emu.config.password

    def url(self, path: str) -> str:
        return f"{self.base}/resto/api/{path}"

    def login(self) -> str:
        r = requests.get(self.url("auth"), params={"login": self.login_name, "pass": sha1(self.password)},
                         timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return r.text.strip()

    def logout(self, token: str) -> requests.Response:
        return requests.get(self.url("logout"), params={"key": token}, timeout=TIMEOUT)

    def get(self, path: str, token: str | None = None, **params: Any) -> requests.Response:
        if token is not None:
            params["key"] = token
        return requests.get(self.url(path), params=params, timeout=TIMEOUT)

    def control(self, method: str, path: str, json: Any = None, **params: Any) -> requests.Response:
        return requests.request(method, f"{self.base}/_emulator/{path}", json=json, params=params or None,
                                timeout=TIMEOUT)

    def invoices(self, token: str, date_from: str, date_to: str, **params: Any) -> requests.Response:
        return self.get("documents/export/incomingInvoice", token, **{"from": date_from, "to": date_to}, **params)


def parse(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314 - our own emulator's output


def children(root: ET.Element) -> list[dict[str, str | None]]:
    """Direct children of the root as {tag: text} of their direct children (the safe way to read
    `employees`, whose records contain a nested `<employee>` flag)."""
    return [{c.tag: (c.text if c.text and c.text.strip() else None) for c in rec} for rec in root]


def documents(root: ET.Element) -> list[dict[str, Any]]:
    """Invoice `document` elements as dicts of their direct children's text, with `items` a list of
    dicts (absent elements missing, empty ones None)."""
    out: list[dict[str, Any]] = []
    for doc in root:
        rec: dict[str, Any] = {}
        for child in doc:
            if child.tag == "items":
                rec["items"] = [{f.tag: f.text for f in item} for item in child]
            else:
                rec[child.tag] = child.text
        out.append(rec)
    return out
