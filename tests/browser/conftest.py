"""Headless Debian Chromium driven by Playwright (sync API) against pytest-django's live_server.

``scripts/browser-setup.sh`` installs both; where either is missing the tests skip and say
which. Playwright's own browser downloads are never used: it launches /usr/bin/chromium.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (scripts/browser-setup.sh installs it)"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return f"Chromium is not at {CHROMIUM} (scripts/browser-setup.sh installs Debian's)"
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, so Django would
    # refuse the test's own ORM calls as "async unsafe". Only for these tests.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()


@pytest.fixture
def page(chromium) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


class Screens:
    """Numbered full-page screenshots of each screen, kept as CI artefacts."""

    def __init__(self, page: Any, prefix: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page, self.prefix, self.count = page, prefix, 0
        self.paths: list[Path] = []

    def shot(self, name: str) -> Path:
        self.count += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = SCREENSHOTS / f"{self.prefix}-{self.count:02d}-{slug}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.paths.append(path)
        return path


@pytest.fixture
def screens(page, request) -> Screens:
    return Screens(page, request.node.name.removeprefix("test_"))
