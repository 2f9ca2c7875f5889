"""Each page holds one EventSource to /api/events, whatever scripts it runs: the ward's
(hub.js), the worklist's and the triage queue's share it (hub.js's window.vwEvents). Two
streams per tab doubled the hub's SSE connections and queues for nothing. (Checked: fails on
the old code, where the worklist and referrals pages opened two.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.hub.browser import CHROMIUM_ARGS, needs_chromium
from ward.hub.auth import Role, create_user

pytestmark = pytest.mark.browser

# Counts the streams a page opens (before any of its scripts runs).
COUNT_STREAMS = """
(() => {
  const Real = window.EventSource;
  window.__streams = [];
  window.EventSource = function (url, init) {
    window.__streams.push(String(url));
    return new Real(url, init);
  };
  window.EventSource.prototype = Real.prototype;
})();
"""


@needs_chromium
def test_every_page_opens_one_event_stream(
    db: psycopg.Connection[Any], hub_server: Callable[..., str], admit: Callable[..., int],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.hub.browser import CHROMIUM

    create_user(db, "doctor", "doctor-password", role=Role.CLINICIAN, display_name="Doctor")
    admit()
    db.commit()
    with contextlib.ExitStack() as stack:
        base = hub_server()
        pw = stack.enter_context(sync_playwright())
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     headless=True)
        stack.callback(browser.close)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.add_init_script(COUNT_STREAMS)
        page = context.new_page()
        page.goto(base + "/")
        page.fill("#username", "doctor")
        page.fill("#password", "doctor-password")
        page.click("button[type=submit]")
        page.wait_for_url(base + "/")
        for path in ("/", "/worklist", "/referrals", "/handover", "/alerts"):
            page.goto(base + path)
            expect(page.locator("#live")).to_have_attribute("data-state", "live")
            page.wait_for_load_state("load")
            assert page.evaluate("window.__streams") == ["/api/events"], path
