"""The patient page's *Record observations* form says, in plain words, that a slot already holds
another value (real Chromium).

A nurse records a respiration rate at a stated time, then records another value for that same
time: the API answers 409 `conflicting-reading` and the form says, next to the field, what is
stored, what she entered and that nothing was saved. (Checked: fails on the old code, whose
form said only "already recorded".)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.hub.browser import launch, login, needs_chromium
from ward.hub.auth import Role, create_user

pytestmark = pytest.mark.browser


@needs_chromium
def test_the_form_says_which_value_is_already_recorded_and_that_nothing_was_saved(
    db: psycopg.Connection[Any], hub_server: Callable[..., str], admit: Callable[..., int],
) -> None:
    from playwright.sync_api import expect

    create_user(db, "nurse", "nurse-password", role=Role.HUB_NURSE, display_name="Nurse")
    now = dt.datetime.now(dt.UTC)
    pid = admit(at=now - dt.timedelta(days=1))
    db.commit()
    # A stated time (the form's minute), ten minutes ago on the hub's wall clock.
    when = (now - dt.timedelta(minutes=10)).astimezone(ZoneInfo("Europe/London"))
    wall = when.strftime("%Y-%m-%dT%H:%M")
    with contextlib.ExitStack() as stack:
        base = hub_server(listen=False)
        page = launch(stack).new_page()
        login(page, base, "nurse", path=f"/patients/{pid}")
        page.click(".obs-entry summary")
        form = page.locator("#obs-form")
        status = form.locator(".obs-status")
        form.locator("input[name=measured_at]").fill(wall)
        form.locator("input[name=resp_rate]").fill("18")
        form.locator("button[type=submit]").click()
        expect(status).to_have_text(re.compile(r"^Saved 1 value"), timeout=10_000)

        form.locator("input[name=measured_at]").fill(wall)
        form.locator("input[name=resp_rate]").fill("22")
        form.locator("input[name=pulse]").fill("80")
        form.locator("button[type=submit]").click()
        expect(status).to_have_text(
            "Not saved: a value is already recorded at this time; see the fields marked.",
            timeout=10_000)
        expect(form.locator('[data-error-for="resp_rate"]')).to_have_text(
            f"Respiration rate at {when.strftime('%d %b %Y %H:%M')}:00 is already recorded as "
            "18 /min (entered by nurse); you entered 22 /min. Nothing was saved: check the "
            "value and the time")
        expect(form.locator('[data-error-for="pulse"]')).to_have_text("")
    rows = db.execute("SELECT code, value FROM readings WHERE patient_id = %s",
                      (pid,)).fetchall()
    db.commit()
    assert rows == [("resp_rate", 18.0)]
