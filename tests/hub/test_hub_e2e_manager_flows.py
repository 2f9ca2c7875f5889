"""End to end in a real browser: the ward manager's day, from a phone call to the follow-up.

A hub nurse enters a referral taken on the phone; a clinician sees it in the triage queue with
its clock running, accepts it and admits the patient with a kit scanned in (an unknown device
is refused on screen); a reading published over the real broker reaches the patient page
without a reload; the clinician discharges (devices listed for collection, follow-up call on
the worklist), the record reads as discharged, and the nurse claims and completes the
follow-up call from the worklist.
Debian's Chromium, headless, driven by Playwright; the gateway is a real subprocess.
Screenshots: artifacts/flow-*.png.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from paho.mqtt import client as paho
from pydantic import SecretStr

from gateway.contract import Measurement, encode_readings, readings_topic
from tests.hub.browser import ARTIFACTS, launch, login, needs_chromium
from ward.db import registry
from ward.domain.devices import Device, DeviceKind
from ward.hub.auth import Role, create_user
from ward.settings import Settings

pytestmark = pytest.mark.browser


def _login(browser: Any, base: str, username: str, password: str) -> Any:
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    return login(page, base, username, password, path="/")


@needs_chromium
def test_referral_to_follow_up_in_the_browser(
    db: psycopg.Connection[Any], db_url: str, broker: Any, unique: str,
    to_url: Callable[[str], str], poll: Callable[..., None],
    start_gateway: Callable[..., Any], connect_mqtt: Callable[..., paho.Client],
    hub_server: Callable[..., str],
) -> None:
    from playwright.sync_api import expect

    create_user(db, "nurse", "nurse-password", role=Role.HUB_NURSE, display_name="Nurse Jones")
    create_user(db, "doctor", "doctor-password", role=Role.CLINICIAN, display_name="Dr Okafor")
    oximeter = f"ox-{unique}"
    registry.add_device(db, Device(oximeter, DeviceKind.PULSE_OXIMETER, "e2e"))
    db.commit()
    url = to_url(db_url)
    start_gateway(url, broker.url, client_id=f"gw-{unique}", group=f"g{unique}")
    with contextlib.ExitStack() as stack:
        base = hub_server(Settings(database_url=SecretStr(url), ward_beds=10))
        browser = launch(stack)
        ARTIFACTS.mkdir(exist_ok=True)

        # A hub nurse takes the call and enters the referral.
        nurse = _login(browser, base, "nurse", "nurse-password")
        nurse.click("nav >> text=Referrals")
        nurse.click("text=New referral (phone call)")
        nurse.fill("#nhs_number", "943 476 5919")
        nurse.fill("#given_name", "Mary")
        nurse.fill("#family_name", "Seacole")
        nurse.fill("#date_of_birth", "1940-05-01")
        nurse.select_option("#source", "111")
        nurse.select_option("#urgency", "two_hour")
        nurse.fill("#reason", "COPD exacerbation, breathless")
        nurse.fill("#obs-spo2", "90")
        nurse.click("#referral-form button[type=submit]")
        row = nurse.locator("#referral-queue tr.referral")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("SEACOLE, Mary")
        expect(row).to_contain_text("for a clinician")

        # A clinician triages: the clock since referral runs; accept and admit with a kit.
        doctor = _login(browser, base, "doctor", "doctor-password")
        doctor.goto(base + "/referrals")
        clock = doctor.locator("#referral-queue .since").first
        expect(clock).to_have_text(re.compile(r"^00:00:\d\d$"))
        first = clock.text_content()
        expect(clock).not_to_have_text(first or "", timeout=3000)  # it ticks
        doctor.screenshot(path=str(ARTIFACTS / "flow-triage.png"), full_page=True)
        doctor.click("#referral-queue a.accept")
        expect(doctor.locator("#nhs_number")).to_have_value("9434765919")
        doctor.fill("#address", "1 Mill Lane, Leeds LS1 1AA")
        doctor.fill("#phone", "0113 496 0000")
        doctor.fill("#next_of_kin", "Tom Seacole (son) 07700 900123")
        doctor.fill("#gp_practice", "Mill Lane Surgery")
        doctor.fill("#kit-scan", "no-such-device")
        doctor.press("#kit-scan", "Enter")
        expect(doctor.locator("#kit-error")).to_contain_text("is not registered")
        doctor.fill("#kit-scan", oximeter)
        doctor.press("#kit-scan", "Enter")
        expect(doctor.locator(f'#kit-list li.ok[data-device="{oximeter}"]')).to_contain_text(
            "pulse oximeter")
        expect(doctor.locator("#kit-ids")).to_have_value(oximeter)
        doctor.select_option("#spo2_scale", "2")
        doctor.select_option("#ceiling_of_care", "not_for_conveyance")
        doctor.fill("#care_plan_reason", "hypercapnic COPD, ReSPECT form at home")
        doctor.screenshot(path=str(ARTIFACTS / "flow-admit.png"), full_page=True)
        doctor.click("#admit-submit")
        expect(doctor).to_have_url(re.compile(r"/patients/\d+$"))
        expect(doctor.locator(".patient-head")).to_contain_text("SEACOLE")
        expect(doctor.locator("#patient-panel")).to_contain_text("Scale 2")
        expect(doctor.locator("#live")).to_have_attribute("data-state", "live")

        # A reading over the real broker arrives on the open patient page.
        mqtt = connect_mqtt(broker.url, f"e2e-{unique}")
        at = dt.datetime.now(dt.UTC)
        info = mqtt.publish(readings_topic(oximeter), encode_readings(
            uuid.uuid4().hex, at, [Measurement("spo2", 89, "%", at),
                                   Measurement("pulse", 97, "/min", at)]), qos=1)
        info.wait_for_publish(10)
        expect(doctor.locator("#patient-panel")).to_contain_text("89 %", timeout=10000)

        # Discharge: devices listed for collection, follow-up booked, record reads discharged.
        doctor.click("#discharge-link")
        doctor.select_option("#outcome", "usual_residence")
        doctor.fill("#note", "recovered at home")
        doctor.click("#discharge-form button[type=submit]")
        expect(doctor.locator("#collect")).to_contain_text(oximeter)
        expect(doctor.locator("#follow-up")).to_contain_text("due")
        doctor.screenshot(path=str(ARTIFACTS / "flow-discharged.png"), full_page=True)
        doctor.click("text=Back to the patient's record")
        expect(doctor.locator("#record-status")).to_contain_text("Discharged")
        expect(doctor.locator("#discharge-summary")).to_contain_text(
            "usual residence · discharged by doctor · recovered at home")

        # The follow-up call is on the worklist: the nurse claims it, makes it, records it.
        nurse.goto(base + "/worklist")
        call = nurse.locator("#worklist-rows tr.task", has_text="Follow-up call")
        expect(call).to_have_count(1)
        expect(call).to_contain_text("Mary Seacole")
        call.locator("button[data-claim]").click()
        expect(call.locator("td.owner")).to_have_text("nurse")
        call.locator("select.outcome").select_option("reached")
        call.locator("button[data-complete]").click()
        expect(nurse.locator("#worklist-rows tr.task", has_text="Follow-up call")
               ).to_have_count(0)
    row_db = db.execute("SELECT a.status, a.outcome, a.decided_by, t.status, t.outcome, "
                        "t.closed_by FROM admissions a JOIN tasks t ON t.admission_id = a.id "
                        "AND t.kind = 'follow_up_call'").fetchone()
    assert row_db == ("discharged", "usual_residence", "doctor", "done", "reached", "nurse")
    # The 111 referral was a 2-hour one, so its clock started; nobody recorded the patient as
    # seen before the discharge (within the 2 hours), which closed it without a verdict.
    assert db.execute("SELECT t.status FROM tasks t JOIN admissions a ON a.id = t.admission_id "
                      "WHERE t.kind = 'urgent_response' AND a.urgency = 'two_hour'"
                      ).fetchall() == [("done",)]
