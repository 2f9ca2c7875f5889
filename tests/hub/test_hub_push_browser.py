"""In Chromium: a pushed row (`ward.hub.push`) never goes under a fetch the page had already
started. The page fetches a row for a `device` event; while that fetch is held (Playwright
answers it later with the row as it was before), a reading's push arrives; the page must
apply the push after the fetch, so the new value stays on screen.

Applying a push as it arrives (no wait for the fetch in flight) fails this test: no push is
seen waiting, and with that check replaced by a wait the held, older answer replaces the
pushed row and "HR 72" stays on screen (both checked). On the code before the push it fails
too: no push arrives (the readings event is fetched, and that fetch is held as well).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from tests.hub.browser import launch, login, needs_chromium
from tests.hub.conftest import serve_app
from tests.hub.test_hub_push import FULL_SET, set_latest
from ward.hub.app import create_app
from ward.hub.auth import Role, create_user
from ward.settings import Settings

pytestmark = pytest.mark.browser


def notify(conn: psycopg.Connection[Any], kind: str, pids: list[int]) -> None:
    conn.execute("SELECT vw_notify(%s)", (json.dumps({"type": kind, "patient_ids": pids}),))
    conn.commit()


@needs_chromium
def test_a_push_waits_for_the_fetch_in_flight_and_stays_on_screen(
    db: psycopg.Connection[Any], db_url: str, admit: Callable[..., int],
    to_url: Callable[[str], str], poll: Callable[..., None],
) -> None:
    from playwright.sync_api import expect

    create_user(db, "nurse", "nurse-password", role=Role.HUB_NURSE, display_name="Nurse")
    pid = admit()
    now = dt.datetime.now(dt.UTC)
    for code, value in FULL_SET:
        set_latest(db, pid, code, value, now - dt.timedelta(minutes=2))
    db.commit()
    app = create_app(Settings(database_url=SecretStr(to_url(db_url)), ward_beds=10),
                     listen=True)
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(serve_app(app, poll))
        page = launch(stack).new_page(viewport={"width": 1600, "height": 900})
        login(page, base, "nurse")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        row = page.locator(f"#p-{pid} td.vitals")
        expect(row).to_contain_text("HR 72")
        old = page.request.get(f"{base}/ward/rows?patient_id={pid}").text()

        held: list[Any] = []

        def hold(route: Any) -> None:  # Playwright wants a Python function, not a builtin
            held.append(route)

        page.route("**/ward/rows*", hold)
        with page.expect_request("**/ward/rows*"):
            notify(db, "device", [pid])  # the page fetches this row (held)
        set_latest(db, pid, "pulse", 131, dt.datetime.now(dt.UTC))
        db.commit()
        notify(db, "readings", [pid])  # pushed while the fetch is in flight
        expect(page.locator("#ward-rows")).to_have_attribute("data-pushes-waiting", "1")
        expect(row).to_contain_text("HR 72")  # not applied under the fetch in flight

        held[0].fulfill(status=200, body=old, content_type="text/html",
                        headers={"X-Ward-Admitted": "1"})
        page.unroute("**/ward/rows*")
        expect(page.locator("#ward-rows")).to_have_attribute("data-pushes-waiting", "0")
        expect(row).to_contain_text("HR 131")
        assert app.state.pusher.batches >= 1
