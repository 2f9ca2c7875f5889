"""The manager's screens in a real browser (Debian's Chromium via Playwright): a clinician
changes a care plan and sees the change in its history; an admin creates a user and changes
their role; the clinical-safety officer filters the audit log by patient and exports it as
CSV; the reports page draws its charts with readable text (≥ 11 px on screen) and no value
or label outside its chart. Screenshots: artifacts/hub-care-plan.png, hub-people.png,
hub-audit.png, hub-reports.png.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from tests.hub.browser import ARTIFACTS, launch, login, needs_chromium
from ward.hub.auth import Role, create_user
from ward.settings import Settings

pytestmark = pytest.mark.browser
# WCAG gives no minimum, but NHS service-manual text is never below this on screen.
MIN_TEXT_PX = 11.0

# For every text element of every chart: its on-screen font size (computed size times the
# SVG's scale) and whether its box lies inside its SVG's box.
TEXT_CHECK = """
() => [...document.querySelectorAll('svg.chart text')].map(t => {
  const svg = t.ownerSVGElement, box = svg.getBoundingClientRect(), r = t.getBoundingClientRect();
  const scale = box.width / svg.viewBox.baseVal.width;
  return {text: t.textContent, px: parseFloat(getComputedStyle(t).fontSize) * scale,
          inside: r.left >= box.left - 0.5 && r.right <= box.right + 0.5 &&
                  r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5,
          chart: svg.getAttribute('aria-label')};
})
"""


def _history(conn: psycopg.Connection[Any], pid: int, now: dt.datetime) -> None:
    """A month of ward activity: discharges of each outcome, alerts acknowledged or not."""
    outcomes = ["usual_residence"] * 7 + ["conveyed_ed", "admitted_hospital", "transferred"]
    for i, outcome in enumerate(outcomes):
        admitted = now - dt.timedelta(days=25 - i)
        conn.execute(
            "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, "
            "decided_at, admitted_at, discharged_at, outcome) "
            "VALUES (%s, 'step_up', 'gp', 'discharged', %s, %s, %s, %s, %s)",
            (pid, admitted - dt.timedelta(hours=2), admitted, admitted,
             admitted + dt.timedelta(days=3 + i % 4), outcome))
    for i, severity in enumerate(["high", "high", "medium", "low_medium", "medium"]):
        raised = now - dt.timedelta(days=2, hours=i)
        conn.execute(
            "INSERT INTO alerts (patient_id, kind, severity, state, summary, raised_at, "
            "updated_at, acknowledged_at) VALUES (%s, %s, %s, 'resolved', 's', %s, %s, %s)",
            (pid, f"k{i}", severity, raised, raised,
             raised + dt.timedelta(minutes=4 + 7 * i)))
    conn.commit()


@needs_chromium
def test_care_plan_people_audit_and_reports_in_a_browser(
    db: psycopg.Connection[Any], db_url: str, admit: Callable[..., int],
    to_url: Callable[[str], str], poll: Callable[..., None], tmp_path: Path,
    hub_server: Callable[..., str],
) -> None:
    from playwright.sync_api import expect

    for username, role in (("doctor", Role.CLINICIAN), ("admin", Role.ADMIN),
                           ("cso", Role.SAFETY_OFFICER)):
        create_user(db, username, f"{username}-password", role=role,
                    display_name=f"Demo {username}")
    db.commit()
    now = dt.datetime.now(dt.UTC)
    pid = admit(given="Cora", family="Copd", at=now - dt.timedelta(days=1))
    other = admit(given="Olly", family="Other", at=now - dt.timedelta(days=40))
    _history(db, other, now)
    settings = Settings(database_url=SecretStr(to_url(db_url)), ward_beds=10)
    ARTIFACTS.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        base = hub_server(settings, listen=False)
        browser = launch(stack)

        def sign_in(username: str) -> Any:
            context = browser.new_context(viewport={"width": 1280, "height": 900},
                                          accept_downloads=True)
            page = login(context.new_page(), base, username)
            expect(page.locator("header .account")).to_contain_text(f"Demo {username}")
            return page

        # 1. A clinician puts the patient on Scale 2 with a reason: saved, and in the history.
        page = sign_in("doctor")
        page.goto(f"{base}/patients/{pid}")
        page.click("#care-plan-link")
        expect(page).to_have_url(f"{base}/patients/{pid}/care-plan")
        page.select_option("#spo2-scale-select", "2")
        page.fill("#spo2-reason", "Hypercapnic COPD: ABG pCO2 7.1 kPa")
        page.click("#spo2-save")
        expect(page.locator("#saved")).to_be_visible()
        expect(page.locator("#spo2-scale")).to_contain_text("Scale 2")
        first = page.locator("#care-plan-history tbody tr").first
        expect(first).to_contain_text("Hypercapnic COPD: ABG pCO2 7.1 kPa")
        expect(first).to_contain_text("doctor")
        expect(first).to_contain_text("Scale 2, target 88–92 %")
        page.select_option("#ceiling-select", "not_for_conveyance")
        page.fill("#ceiling-reason", "ReSPECT form signed with family")
        page.click("#ceiling-save")
        expect(page.locator("#care-plan-history tbody tr")).to_have_count(2)
        expect(page.locator("#care-plan-history tbody tr").first).to_contain_text(
            "not for conveyance")
        expect(page.locator("#iv-prescription")).to_be_visible()
        expect(page.locator("nav a[href='/people']")).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "hub-care-plan.png"), full_page=True)
        page.context.close()

        # 2. An admin creates a user, then changes their role.
        page = sign_in("admin")
        page.click("nav a[href='/people']")
        page.fill("#new-username", "sam.nurse")
        page.fill("#new-display-name", "Sam Nurse")
        page.select_option("#new-role", "hub_nurse")
        page.fill("#new-password", "a long initial password")
        page.click("#create-user")
        expect(page.locator("#saved")).to_be_visible()
        row = page.locator("tr[data-username='sam.nurse']")
        expect(row).to_contain_text("Sam Nurse")
        row.locator("select[name=role]").select_option("clinician")
        row.locator("button.change-role").click()
        expect(page.locator("#saved")).to_be_visible()
        expect(page.locator("tr[data-username='sam.nurse'] select[name=role]")).to_have_value(
            "clinician")
        page.screenshot(path=str(ARTIFACTS / "hub-people.png"), full_page=True)
        page.context.close()
        role = db.execute("SELECT role FROM users WHERE username = 'sam.nurse'").fetchone()
        db.commit()
        assert role == ("clinician",)

        # 3. The safety officer filters the audit log by patient and exports it.
        page = sign_in("cso")
        expect(page.locator("nav a[href='/people']")).to_have_count(0)
        page.click("nav a[href='/audit']")
        page.fill("#f-patient", str(pid))
        page.click("#f-apply")
        rows = page.locator("#audit-rows tbody tr[data-id]")
        expect(rows.first).to_be_visible()
        actors = set(page.locator("#audit-rows td.actor").all_inner_texts())
        # The doctor's reads and changes, and every ward view that listed the patient (each
        # log-in lands on the ward: one row naming all its patients in patient_ids).
        assert {"doctor", "admin", "cso"} <= actors, actors
        texts = " ".join(page.locator("#audit-rows tbody").all_inner_texts())
        assert "care_plan.set_spo2_scale" in texts
        with page.expect_download() as info:
            page.click("#audit-csv")
        saved = tmp_path / "audit.csv"
        info.value.save_as(saved)
        exported = list(csv.DictReader(io.StringIO(saved.read_text())))
        assert exported
        assert all(str(pid) in r["patient_ids"].split() for r in exported)
        assert {"care_plan.set_spo2_scale", "care_plan.set_ceiling_of_care"} <= {
            r["action"] for r in exported}
        page.screenshot(path=str(ARTIFACTS / "hub-audit.png"), full_page=True)

        # 4. Reports: charts present, text readable, nothing clipped.
        page.click("nav a[href='/reports']")
        charts = page.locator("svg.chart")
        expect(charts.first).to_be_visible()
        assert charts.count() >= 4
        expect(page.locator("#m-urgent_response_2h")).to_contain_text("compliance pct")
        for width in (1280, 900):
            page.set_viewport_size({"width": width, "height": 900})
            texts_info = page.evaluate(TEXT_CHECK)
            labels = {t["text"] for t in texts_info}
            assert {"Home", "To ED", "7"} <= labels, labels
            small = [t for t in texts_info if t["px"] < MIN_TEXT_PX]
            outside = [t for t in texts_info if not t["inside"]]
            assert not small, (width, small)
            assert not outside, (width, outside)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.screenshot(path=str(ARTIFACTS / "hub-reports.png"), full_page=True)
        seen = db.execute("SELECT count(*) FROM audit_log WHERE entity = 'audit_log' "
                          "AND actor = 'cso'").fetchone()
        db.commit()
        assert seen is not None
        assert seen[0] >= 2  # the filtered view and the export
