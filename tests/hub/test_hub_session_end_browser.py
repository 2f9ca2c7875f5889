"""A live page whose session ends lands on the log-in page, which says why (real Chromium).

A nurse has the ward open; their session is logged out from another client (the same cookie,
as another tab or device would hold it). The open stream says `session-ended`; hub.js goes to
`/login?ended=revoked&next=/` and the page says, in plain words, that the session ended
elsewhere; logging in again brings the nurse back to the ward. (Checked: fails on the old
code, whose page stayed on the ward, still live.)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from tests.hub.browser import launch, login, needs_chromium
from ward.hub.auth import Role, create_user

pytestmark = pytest.mark.browser


@needs_chromium
def test_the_ward_goes_to_the_log_in_page_saying_the_session_ended_elsewhere(
    db: psycopg.Connection[Any], hub_server: Callable[..., str], admit: Callable[..., int],
) -> None:
    from playwright.sync_api import expect

    create_user(db, "nurse", "nurse-password", role=Role.HUB_NURSE, display_name="Nurse")
    admit()
    db.commit()
    with contextlib.ExitStack() as stack:
        base = hub_server(listen=False)
        page = launch(stack).new_page()
        login(page, base, "nurse")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "vw_session")

        elsewhere = httpx.post(base + "/logout", cookies={"vw_session": cookie},
                               headers={"Origin": base})
        assert elsewhere.status_code == 303

        page.wait_for_url(re.compile(r"/login\?ended=revoked&next=%2F$"), timeout=10_000)
        expect(page.locator("#ended")).to_have_text(
            re.compile(r"^You were signed out: your session ended elsewhere"))
        page.fill("#username", "nurse")
        page.fill("#password", "nurse-password")
        page.click("button[type=submit]")
        page.wait_for_url(base + "/")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
