"""In a real browser: a partial score, stale values and an overdue parameter on the ward row
and the patient page (issue 11). Debian's Chromium, headless, driven by Playwright; the hub
runs in a thread on a free port against a freshly migrated schema. Screenshots:
artifacts/hub-missing-ward.png, artifacts/hub-missing-patient.png."""

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
from ward.db.store import ReadingStore
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.domain.readings import Reading
from ward.domain.vitals import spec_for
from ward.hub.auth import Role, create_user
from ward.settings import Settings

pytestmark = pytest.mark.browser


FULL = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.8, "systolic_bp": 125,
        "on_oxygen": 0, "consciousness": 0}


def _store(conn: psycopg.Connection[Any], pid: int, device: str, at: dt.datetime,
           **values: float) -> None:
    ReadingStore().write(conn, [Reading(device, c, at, float(v), spec_for(c).unit, pid, at)
                                for c, v in values.items()])
    conn.commit()


@needs_chromium
def test_partial_stale_and_overdue_are_shown_as_such(
        db: psycopg.Connection[Any], db_url: str, admit: Callable[..., int],
        to_url: Callable[[str], str], poll: Callable[..., None],
        hub_server: Callable[..., str]) -> None:
    from playwright.sync_api import expect

    create_user(db, "nurse", "nurse-password", role=Role.HUB_NURSE, display_name="Nurse")
    now = dt.datetime.now(dt.UTC)
    pid = admit(given="Wendy", family="Wearable", at=now - dt.timedelta(hours=8))
    device = f"ox-{pid}"
    registry.add_device(db, Device(device, DeviceKind.PULSE_OXIMETER))
    registry.assign_device(db, Assignment(device, pid, now - dt.timedelta(hours=8)))
    db.commit()
    # A nurse's full set 6 h ago (RR, BP, T, ACVPU now stale), the wearable's SpO2 and pulse
    # a minute ago: NEWS2 is partial, and RR / BP / T / ACVPU are overdue.
    _store(db, pid, f"staff-{pid}", now - dt.timedelta(hours=6), **FULL)
    _store(db, pid, device, now - dt.timedelta(minutes=1), spo2=96, pulse=72)
    settings = Settings(database_url=SecretStr(to_url(db_url)), ward_beds=10)
    with contextlib.ExitStack() as stack:
        base = hub_server(settings)
        browser = launch(stack)
        page = login(browser.new_page(viewport={"width": 1600, "height": 900}), base, "nurse")
        row = page.locator(f"#p-{pid}")
        expect(row).to_have_class(re.compile(r"\brisk-incomplete\b"))
        expect(row).not_to_have_class(re.compile(r"\brisk-low\b"))
        expect(row.locator("td.band .badge")).to_have_text("Incomplete 3/7 — full set due")
        expect(row.locator("td.news2 .total")).to_have_text("≥0")
        # Stale values are greyed with their age; fresh ones are not.
        expect(row.locator('.vital.stale[data-code="resp_rate"]')).to_contain_text("6 h")
        expect(row.locator('.vital[data-code="spo2"]')).not_to_have_class(re.compile("stale"))
        expect(row.locator('.vital[data-code="spo2"] .age')).to_have_text("1 min")
        expect(row.locator('.due-item[data-parameter="resp_rate"]')).to_contain_text(
            "phone call")
        expect(row.locator('.due-item[data-parameter="systolic_bp"]')).to_contain_text("visit")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "hub-missing-ward.png"), full_page=True)

        page.click(f"#p-{pid} a.name")
        box = page.locator("#score-box")
        expect(box).to_contain_text("Incomplete 3/7 — full set due")
        expect(box).to_contain_text("the total is a lower bound")
        expect(box.locator(".advice")).to_contain_text("full set due now")
        expect(box).not_to_contain_text("12-hourly")
        expect(page.locator('#latest-values tr.stale[data-code="systolic_bp"]')).to_contain_text(
            "stale, not in NEWS2")
        expect(page.locator('#latest-values tr[data-code="spo2"]')).not_to_have_class(
            re.compile("stale"))
        expect(page.locator('#overdue-list .due-item[data-parameter="consciousness"]')
               ).to_contain_text("phone call")
        page.screenshot(path=str(ARTIFACTS / "hub-missing-patient.png"), full_page=True)
