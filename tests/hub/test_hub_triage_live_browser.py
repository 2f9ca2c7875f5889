"""The referral triage queue is live, in two real browsers: a referral arriving from outside
either browser (the phone line of another hub, an integration, the demo's feed) appears on
both open triage screens, and a decision taken in one leaves the other's queue and joins its
recent decisions, without a reload (the hub's SSE stream, channel named by vw_channel) — a
decline reason half-typed in the other browser survives the update. Screenshot: artifacts/.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from tests.hub.browser import ARTIFACTS, launch, login, needs_chromium
from ward.db import registry
from ward.domain.patients import Patient, ReferralSource, Urgency
from ward.hub import admitting
from ward.hub.auth import Role, User, create_user
from ward.settings import Settings

pytestmark = pytest.mark.browser


def _login(browser: Any, base: str, username: str, password: str) -> Any:
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    return login(page, base, username, password, path="/referrals")


def _refer(conn: psycopg.Connection[Any], user: User, nhs: str, family: str,
           urgency: Urgency) -> int:
    patient = registry.add_patient(conn, Patient(nhs, "Ann", family, dt.date(1941, 6, 2)))
    assert patient.id is not None
    aid = admitting.refer(conn, user, dt.datetime.now(dt.UTC), patient_id=patient.id,
                          source=ReferralSource.AMBULANCE, urgency=urgency,
                          reason="fall at home, breathless", observations={"spo2": 92},
                          referrer="paramedic crew")
    conn.commit()
    return aid


@needs_chromium
def test_referrals_and_decisions_reach_every_open_triage_screen(
    db: psycopg.Connection[Any], db_url: str, nhs_number: Callable[[], str],
    to_url: Callable[[str], str], hub_server: Callable[..., str],
) -> None:
    from playwright.sync_api import expect

    for name in ("doctor", "doctor2"):
        create_user(db, name, f"{name}-password", role=Role.CLINICIAN, display_name=name.title())
    db.commit()
    uid = db.execute("SELECT id FROM users WHERE username = 'doctor2'").fetchone()
    assert uid is not None
    feed = User(int(uid[0]), "doctor2", "Doctor2", Role.CLINICIAN)
    db.commit()
    settings = Settings(database_url=SecretStr(to_url(db_url)), ward_beds=10)
    with contextlib.ExitStack() as stack:
        base = hub_server(settings)
        browser = launch(stack)
        one = _login(browser, base, "doctor", "doctor-password")
        two = _login(browser, base, "doctor2", "doctor2-password")
        for page in (one, two):
            expect(page.locator("#referral-queue")).to_contain_text("No referrals waiting")
            expect(page.locator("#live")).to_have_attribute("data-state", "live")
            page.evaluate("window.__notReloaded = true")

        # Two referrals arrive from outside both browsers.
        urgent = _refer(db, feed, nhs_number(), "Urgent", Urgency.TWO_HOUR)
        later = _refer(db, feed, nhs_number(), "Later", Urgency.SAME_DAY)
        for page in (one, two):
            rows = page.locator("#referral-queue tr.referral")
            expect(rows).to_have_count(2)
            expect(rows.first).to_contain_text("URGENT, Ann")  # 2-hour first
            expect(rows.first.locator(".clock-2h")).to_have_text(
                re.compile(r"^01:\d\d:\d\d left of 2 h$"))
            expect(rows.first.locator(".since")).to_have_text(re.compile(r"^00:\d\d:\d\d$"))

        # Browser one starts typing a decline reason for the same-day referral…
        reason = one.locator(f'tr[data-admission="{later}"] input[name=reason]')
        reason.fill("not yet decided: half-typed")
        # …while browser two declines the 2-hour one.
        declined = two.locator(f'tr[data-admission="{urgent}"]')
        declined.locator("input[name=reason]").fill("conveyed to ED by the crew")
        declined.locator("button[type=submit]").click()
        two.wait_for_url(base + "/referrals")
        expect(one.locator("#referral-queue tr.referral")).to_have_count(1)
        expect(one.locator("#decisions")).to_contain_text(
            "declined: conveyed to ED by the crew")
        expect(one.locator("#decisions")).to_contain_text("doctor2")
        expect(reason).to_have_value("not yet decided: half-typed")

        # An acceptance made elsewhere (the API) empties the queue and takes a bed.
        admitting.accept(db, feed, dt.datetime.now(dt.UTC), later, beds=10)
        db.commit()
        for page in (one, two):
            expect(page.locator("#referral-queue")).to_contain_text("No referrals waiting")
            expect(page.locator("#bed-state")).to_contain_text("1 of 10 beds occupied")
            expect(page.locator("#decisions tr")).to_have_count(3)  # head + 2 decisions
        one.screenshot(path=str(ARTIFACTS / "triage-live.png"), full_page=True)
        assert one.evaluate("window.__notReloaded") is True
