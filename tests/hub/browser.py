"""What the hub's browser tests share: Debian's Chromium and its flags (`launch`), signing in
through the login form (`login`), where screenshots go.

Playwright drives the system browser (`playwright install` cannot download one here); the
flags are those checked on these machines (docs in /work/shared/ARCHITECTURE.md). The hub
itself is served by the `hub_server` fixture of `tests/hub/conftest.py`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason="Debian's chromium is not installed")


def login(page: Any, base_url: str, username: str, password: str | None = None, *,
          path: str = "/") -> Any:
    """Open `path` on the hub, sign in through the form it sends to, and return the page once
    the hub has brought it back to `path`.

    The password defaults to `<username>-password`, the one the browser tests create users with.
    """
    page.goto(base_url + path)
    page.fill("#username", username)
    page.fill("#password", password if password is not None else f"{username}-password")
    page.click("button[type=submit]")
    page.wait_for_url(base_url + path)
    return page


def launch(stack: contextlib.ExitStack) -> Any:
    """Debian's Chromium, headless with the checked flags; it and Playwright close with `stack`."""
    from playwright.sync_api import sync_playwright

    pw = stack.enter_context(sync_playwright())
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    stack.callback(browser.close)
    return browser
