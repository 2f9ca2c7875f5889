"""The trend finding's evidence in a real browser: a nurse opens a patient with an amber
"drift from own baseline" finding and sees, on the pulse chart, the band the method considers
normal for this patient, the readings that made the finding ringed outside it, and the
finding's active stretch.

Debian's Chromium, headless, driven by Playwright, against the hub on a free port
(`hub_server`, launch flags and login as in `test_hub_e2e_browser.py`). The finding is made
by the real alerting runner from readings stored through the real `ReadingStore`; no broker
is needed. Screenshots: the test's tmp dir (`patient-evidence.png`, `pulse-chart.png`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from alerting.runner import evaluate_after_commit
from tests.hub.browser import launch, login, needs_chromium
from tests.hub.test_hub_chart_evidence import NORMAL, store
from ward.hub.auth import Role, create_user
from ward.settings import Settings

pytestmark = pytest.mark.browser


@needs_chromium
def test_the_pulse_chart_shows_the_own_baseline_band_and_the_readings_outside_it(
    db: psycopg.Connection[Any], db_url: str, admit: Callable[..., int],
    to_url: Callable[[str], str], hub_server: Callable[..., str], tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    create_user(db, "nurse", "nurse-password", role=Role.HUB_NURSE, display_name="Nurse Jones")
    db.commit()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    pid = admit(given="Dora", family="Drift", at=now - dt.timedelta(days=1))
    first = now - dt.timedelta(hours=10)
    for hour in range(7):  # this patient's normal: pulse 62-64, learned by hour 6
        at = first + dt.timedelta(hours=hour)
        store(db, pid, at, **{**NORMAL, "pulse": 62 + hour % 3})
        evaluate_after_commit(db, [pid], at)
    for minutes in (50, 20):  # pulse 90 and 94 score 0-1 on NEWS2 but leave the band
        at = now - dt.timedelta(minutes=minutes)
        store(db, pid, at, **{**NORMAL, "pulse": 90 + (50 - minutes) // 7,
                              "temperature": 37.9})
        evaluate_after_commit(db, [pid], at)
    kinds = {k for (k,) in db.execute(
        "SELECT f.kind FROM alert_findings f JOIN alerts a ON a.id = f.alert_id "
        "WHERE a.patient_id = %s AND f.cleared_at IS NULL", (pid,))}
    db.commit()
    assert "trend" in kinds

    settings = Settings(database_url=SecretStr(to_url(db_url)), ward_beds=10)
    with contextlib.ExitStack() as stack:
        base = hub_server(settings)
        browser = launch(stack)
        page = login(browser.new_page(viewport={"width": 1400, "height": 1000}), base, "nurse")
        page.click(f"#p-{pid} a.name")
        pulse = page.locator('svg.chart[data-code="pulse"]')
        band = pulse.locator("rect.baseline-band")
        expect(band).to_have_count(1)
        expect(band).to_be_visible()
        rings = pulse.locator('circle.evidence[data-findings~="trend"]')
        expect(rings).to_have_count(2)
        expect(rings.first.locator("title")).to_contain_text("cited by Drift from own baseline")
        expect(pulse.locator('g.finding[data-finding="trend"] rect.finding-span')).to_be_visible()
        # drawn where they belong: the band around the first hours' line, the rings above it
        band_box = band.bounding_box()
        assert band_box is not None
        assert band_box["height"] > 5
        for i in range(2):
            ring = rings.nth(i).bounding_box()
            assert ring is not None
            assert ring["y"] + ring["height"] / 2 < band_box["y"], "ring not above the band"
        # every trend-charted sign has its band; blood pressure (not charted) has none
        for code in ("resp_rate", "spo2", "temperature"):
            expect(page.locator(f'svg.chart[data-code="{code}"] rect.baseline-band')
                   ).to_have_count(1)
        expect(page.locator('svg.chart[data-code="systolic_bp"] rect.baseline-band')
               ).to_have_count(0)
        caption = page.locator("figure", has=pulse).locator("figcaption")
        expect(caption).to_contain_text("Own baseline")
        expect(caption).to_contain_text("Drift from own baseline")
        expect(caption).to_contain_text("active")
        page.locator("figure", has=pulse).screenshot(path=str(tmp_path / "pulse-chart.png"))
        page.screenshot(path=str(tmp_path / "patient-evidence.png"), full_page=True)
    assert (tmp_path / "pulse-chart.png").stat().st_size > 0
