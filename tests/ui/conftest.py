"""Fixtures for the management pages: the API app (pages included) over the emulator, a SQLite warehouse and a
Dagster test instance, served on a free localhost port; and a real Chromium (Debian's package) driven by
Playwright, for the browser tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import Api, Backend, _backend, backend, serve
from tests.conftest import IN_CI

__all__ = ["Api", "Backend", "backend"]  # `backend`: a fixture, shared with tests/api
CHROMIUM_ENV = "CHROMIUM_PATH"
#: Where the browser tests save screenshots of the main pages when set (docs/ui is regenerated this way).
SCREENSHOTS_ENV = "UI_SCREENSHOTS"


@pytest.fixture
def pages(emulator, monkeypatch, tmp_path) -> Iterator[Api]:
    """The app with its pages, warehouse on SQLite (the pages read the same tables on both backends; the
    queries behind them run on PostgreSQL in tests/ui/test_ui_overview.py)."""
    for stack in _backend(emulator, monkeypatch, tmp_path, f"sqlite:///{tmp_path / 'warehouse.db'}", None):
        yield from serve(stack, dagster_ui_url="http://127.0.0.1:3999")


def chromium_path() -> str | None:
    return os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium per test worker. Missing, the browser tests skip with the reason, except in CI,
    where they fail: CI installs Debian's chromium (.ci/run)."""
    path = chromium_path()
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium); the browser tests need it"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def screenshot(page, name: str) -> None:
    """Save a full-page screenshot under $UI_SCREENSHOTS (unset: nothing is saved)."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
