"""The risk tier in a real browser: the ward and the worklist sort and filter by tier (and the
worklist by NEWS2), the patient page says why a patient is in their tier (every factor, what it
measured, its points), and the tier's rise is a low-severity finding in the patient's episode.

Debian's Chromium, headless, driven by Playwright, against the hub on a free port (launch
flags and login as in `test_hub_e2e_browser.py`). Stored NEWS2 scores are written straight
to the database and the tiers assessed by the alerting runner's own step
(`alerting.runner.assess_tiers`, what `vward alerting` runs per batch and on its sweep): no
broker or gateway is needed to show a tier. Screenshots: artifacts/hub-risk-tier.png,
artifacts/hub-worklist-tier.png.
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

from alerting import runner
from tests.hub.browser import ARTIFACTS, launch, login, needs_chromium
from ward.domain.patients import Pathway, ReferralSource
from ward.domain.risk_factors import Acuity, Comorbidity, RiskFactors
from ward.hub import risk
from ward.hub.auth import Role, create_user
from ward.settings import Settings

pytestmark = pytest.mark.browser


def _scores(conn: psycopg.Connection[Any], pid: int, now: dt.datetime,
            totals: dict[int, tuple[int, str]]) -> None:
    for hours_ago, (total, band) in totals.items():
        conn.execute(
            "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
            "spo2_scale, sub_scores, missing, evidence) VALUES (%s, %s, %s, %s, false, true, "
            "1, %s, '{}', '[]')",
            (pid, now - dt.timedelta(hours=hours_ago), total, band, json.dumps({})))


def _visit(conn: psycopg.Connection[Any], pid: int, now: dt.datetime, priority: int) -> None:
    conn.execute(
        "INSERT INTO tasks (kind, patient_id, reason, detail, due_at, priority, created_by, "
        "created_at) VALUES ('visit', %s, 'requested', 'check in', %s, %s, 'test', %s)",
        (pid, now + dt.timedelta(hours=priority), priority, now))


@needs_chromium
def test_ward_sorts_by_tier_and_the_patient_page_says_why(
    db: psycopg.Connection[Any], db_url: str, admit: Callable[..., int],
    to_url: Callable[[str], str], poll: Callable[..., None],
    hub_server: Callable[..., str],
) -> None:
    from playwright.sync_api import expect

    create_user(db, "nurse", "nurse-password", role=Role.HUB_NURSE, display_name="Nurse Jones")
    now = dt.datetime.now(dt.UTC)
    # Steady: NEWS2 2 all along, every set done, step-down, low readmission risk: low tier.
    steady = admit(given="Sam", family="Steady", at=now - dt.timedelta(hours=70),
                   pathway=Pathway.STEP_DOWN, source=ReferralSource.HOSPITAL_WARD)
    _scores(db, steady, now, dict.fromkeys(range(68, 0, -2), (2, "low")))
    # Rising: NEWS2 1 for two days, then 3-4 today; sets missed; LACE high; step-up.
    rising = admit(given="Rita", family="Rising", at=now - dt.timedelta(hours=70))
    _scores(db, rising, now, {**dict.fromkeys(range(68, 24, -4), (1, "low")),
                              **dict.fromkeys((20, 8, 1), (4, "low"))})
    risk.save_factors(db, rising, RiskFactors(
        admissions_6_months=2, admissions_12_months=4, index_stay_days=9,
        acuity=Acuity.EMERGENT, comorbidities=frozenset({Comorbidity.CONGESTIVE_HEART_FAILURE}),
        ed_visits_6_months=3, haemoglobin_g_dl=10.9, sodium_mmol_l=133.0, oncology=False,
        procedure=False), now=now - dt.timedelta(hours=30), by="test")
    # The runner assessed both yesterday (Rita: LACE 13 and step-up, rising) and again now,
    # after today's scores and missed sets: Rita's rise to high is a finding of her episode.
    runner.assess_tiers(db, [steady, rising], now - dt.timedelta(hours=21))
    runner.assess_tiers(db, [steady, rising], now)
    # The steady patient's visit is the more urgent task by priority.
    _visit(db, steady, now, 1)
    _visit(db, rising, now, 3)
    db.commit()
    settings = Settings(database_url=SecretStr(to_url(db_url)), ward_beds=10)
    with contextlib.ExitStack() as stack:
        base = hub_server(settings)
        browser = launch(stack)
        page = login(browser.new_page(viewport={"width": 1600, "height": 900}), base, "nurse")
        rows = page.locator("#ward-rows tr.patient")
        expect(rows).to_have_count(2)
        # The tier column shows each patient's tier beside NEWS2.
        expect(page.locator(f"#p-{rising} td.tier")).to_contain_text("high")
        expect(page.locator(f"#p-{steady} td.tier")).to_contain_text("low")
        page.select_option("#ward-sort", "tier")
        page.check("input[name=tier][value=low]")
        page.click("form.tier-filter button[type=submit]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-pid", str(steady))
        page.goto(base + "/?sort=tier")
        expect(rows.first).to_have_attribute("data-pid", str(rising))

        page.click(f"#p-{rising} a.name")
        expect(page.locator("#risk-tier-badge")).to_have_text("High")
        why = page.locator("#risk-why tbody tr")
        expect(why).to_have_count(6)
        expect(page.locator("#risk-why tr[data-factor=trajectory]")).to_contain_text(
            "NEWS2 trajectory")
        expect(page.locator("#risk-why tr[data-factor=trajectory]")).to_contain_text("3 / 3")
        expect(page.locator("#risk-why tr[data-factor=readmission]")).to_contain_text(
            "LACE 13")
        expect(page.locator("#risk-why tr[data-factor=completeness]")).to_contain_text(
            "missed")
        expect(page.locator("#readmission-scores")).to_contain_text("L 5, A 3, C 2, E 3")
        page.click("details.risk-weights summary")
        expect(page.locator("details.risk-weights")).to_contain_text("Own baseline")
        expect(page.locator("#risk-tier-when")).to_contain_text("alerting runner")
        # The rise is in the episode: a low-severity finding, with the tier's explanation.
        finding = page.locator("article.episode li.finding[data-finding=risk_tier]")
        expect(finding).to_contain_text("Risk tier high (was rising)")
        expect(finding).to_contain_text("points")
        expect(page.locator("article.episode .badge").first).to_have_text("Low")
        expect(page.locator("ul.tier-changes li").first).to_contain_text("rising → high")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "hub-risk-tier.png"), full_page=True)

        # The worklist: the tier and NEWS2 beside each task; sort and filter by either.
        page.goto(base + "/worklist")
        tasks = page.locator("#worklist-rows tr.task")
        expect(tasks.first).to_contain_text("Sam Steady")  # priority 1 first
        expect(page.locator("#worklist-rows tr[data-ref^=task] td.tier").first).to_have_text(
            "low")
        page.select_option("#worklist-sort", "tier")
        page.click("#worklist-order button[type=submit]")
        expect(tasks.first).to_contain_text("Rita Rising")
        expect(tasks.first.locator("td.tier")).to_have_text("high")
        page.check("#worklist-order input[name=tier][value=low]")
        page.click("#worklist-order button[type=submit]")
        expect(page.locator("#worklist-rows")).not_to_contain_text("Rita Rising")
        expect(tasks.first).to_contain_text("Sam Steady")
        page.goto(base + "/worklist")
        page.select_option("#worklist-news2", "3")
        page.click("#worklist-order button[type=submit]")
        expect(tasks.first).to_contain_text("Rita Rising")
        expect(page.locator("#worklist-rows")).not_to_contain_text("Sam Steady")
        expect(tasks.first.locator("td.news2")).to_have_text("4")
        page.screenshot(path=str(ARTIFACTS / "hub-worklist-tier.png"), full_page=True)
    changes = db.execute("SELECT from_tier, to_tier, alert_id IS NOT NULL FROM "
                         "risk_tier_changes WHERE patient_id = %s ORDER BY id",
                         [rising]).fetchall()
    # The runner's two changes only, however often the hub showed the tier.
    assert changes == [(None, "rising", False), ("rising", "high", True)]
