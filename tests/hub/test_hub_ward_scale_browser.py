"""The ward view at 200 patients in a real browser: fixed-height rows, the alert column on
screen, no reflow on live updates, and the filters.

Chromium (Debian's) through Playwright, the hub in a thread on a free port. The ward is
seeded by direct inserts (the `admit` helper, then latest readings, scores, device status
and alerts in a few set-based statements), and live updates are data changes followed by the
`NOTIFY vw_events` the gateway would send: no broker needed. Screenshots:
artifacts/ward-200-1280x800.png and artifacts/ward-200-1920x1080.png.
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

from tests.hub.browser import ARTIFACTS, launch, login, needs_chromium
from ward.hub.auth import Role, create_user
from ward.settings import Settings

pytestmark = pytest.mark.browser
PATIENTS = 200
CODES = ("spo2", "pulse", "resp_rate", "temperature", "systolic_bp", "on_oxygen",
         "consciousness")
UNITS = ("%", "/min", "/min", "Cel", "mm[Hg]", "{air:0,oxygen:1}", "{ACVPU}")




def seed(conn: psycopg.Connection[Any], admit: Callable[..., int], now: dt.datetime
         ) -> list[int]:
    ids = [admit(given=f"Pat{i:03d}", family=f"Family{i:03d}",
                 at=now - dt.timedelta(days=1 + i % 5)) for i in range(PATIENTS)]
    conn.execute("INSERT INTO devices (id, kind) SELECT 'scale-' || p, 'home_hub' "
                 "FROM unnest(%s::bigint[]) p", (ids,))
    conn.execute("INSERT INTO device_assignments (device_pk, patient_id, during) "
                 "SELECT d.pk, p, tstzrange(%s, NULL) FROM unnest(%s::bigint[]) p "
                 "JOIN devices d ON d.id = 'scale-' || p", (now - dt.timedelta(days=6), ids))
    # Every 7th patient's hub reports a low battery, every 11th is offline.
    conn.execute("INSERT INTO device_status (device_id, online, battery_pct, reported_at, "
                 "updated_at) SELECT 'scale-' || p, g %% 11 <> 0, "
                 "CASE WHEN g %% 7 = 0 THEN 8 ELSE 90 END, %s, %s "
                 "FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(p, g)", (now, now, ids))
    # All seven NEWS2 values for most; every 9th lacks consciousness (incomplete score);
    # every 13th was last observed 20 h ago (overdue). Values vary, so bands vary.
    conn.execute(
        "INSERT INTO latest_readings (patient_id, code, measured_at, value, unit, device_id) "
        "SELECT p, c.code, CASE WHEN g %% 13 = 0 THEN %s::timestamptz - interval '20 hours' "
        "ELSE %s::timestamptz - (g %% 50) * interval '1 minute' END, "
        "CASE c.code WHEN 'spo2' THEN 99 - g %% 9 WHEN 'pulse' THEN 60 + g %% 75 "
        "WHEN 'resp_rate' THEN 12 + g %% 16 WHEN 'temperature' THEN 36 + (g %% 30) / 10.0 "
        "WHEN 'systolic_bp' THEN 95 + g %% 60 ELSE 0 END, c.unit, 'scale-' || p "
        "FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(p, g), "
        "unnest(%s::text[], %s::text[]) AS c(code, unit) "
        "WHERE NOT (g %% 9 = 0 AND c.code = 'consciousness')",
        (now, now, ids, list(CODES), list(UNITS)))
    # Hourly scores for the sparkline.
    conn.execute(
        "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
        "spo2_scale, sub_scores, missing) SELECT p, %s::timestamptz - h * interval '1 hour', "
        "(g + h) %% 10, CASE WHEN (g + h) %% 10 >= 7 THEN 'high' WHEN (g + h) %% 10 >= 5 "
        "THEN 'medium' ELSE 'low' END, false, true, 1, '{}'::jsonb, '{}'::text[] "
        "FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(p, g), generate_series(1, 23) h",
        (now, ids))
    # Open alerts for every 5th patient, long summaries; every 20th acknowledged by "nurse".
    conn.execute(
        "INSERT INTO alerts (patient_id, kind, severity, state, summary, raised_at, updated_at, "
        "acknowledged_at, acknowledged_by, next_escalation_at) "
        "SELECT p, 'news2', CASE WHEN g %% 10 = 0 THEN 'high' ELSE 'medium' END, "
        "CASE WHEN g %% 20 = 0 THEN 'acknowledged' ELSE 'raised' END, "
        "'NEWS2 ' || (5 + g %% 5) || ': respiratory rate and pulse raised since the last set', "
        "%s, %s, CASE WHEN g %% 20 = 0 THEN %s::timestamptz END, "
        "CASE WHEN g %% 20 = 0 THEN 'nurse' END, %s "
        "FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(p, g) WHERE g %% 5 = 0",
        (now, now, now, now + dt.timedelta(minutes=30), ids))
    conn.commit()
    return ids


def change(conn: psycopg.Connection[Any], ids: list[int], step: int) -> None:
    """New readings for some patients, then the gateway's NOTIFY naming them."""
    now = dt.datetime.now(dt.UTC)
    conn.execute("UPDATE latest_readings SET measured_at = %s, value = value + %s "
                 "WHERE patient_id = ANY(%s) AND code IN ('pulse', 'resp_rate')",
                 (now, 1 + step % 3, ids))
    conn.execute("SELECT vw_notify(%s)",
                 (json.dumps({"type": "readings", "patient_ids": ids}),))
    conn.commit()


_ROW_HEIGHTS = "Array.from(document.querySelectorAll('#ward-rows tr.patient:not([hidden])'))" \
    ".map(r => Math.round(r.getBoundingClientRect().height * 10) / 10)"
_ALERTS_RIGHT = "Math.max(...Array.from(document.querySelectorAll(" \
    "'#ward th:last-child, #ward-rows tr.patient td.alerts'))" \
    ".map(c => c.getBoundingClientRect().right))"


@needs_chromium
def test_ward_of_200_patients_has_fixed_rows_visible_alerts_and_filters(
    db: psycopg.Connection[Any], db_url: str, admit: Callable[..., int],
    to_url: Callable[[str], str], poll: Callable[..., None],
    hub_server: Callable[..., str],
) -> None:
    from playwright.sync_api import expect

    create_user(db, "nurse", "nurse-password", role=Role.HUB_NURSE, display_name="Nurse Jones")
    db.commit()
    now = dt.datetime.now(dt.UTC)
    ids = seed(db, admit, now)
    settings = Settings(database_url=SecretStr(to_url(db_url)), ward_beds=250)
    ARTIFACTS.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        base = hub_server(settings)
        browser = launch(stack)
        page = login(browser.new_page(viewport={"width": 1280, "height": 800}), base, "nurse")
        rows = page.locator("#ward-rows tr.patient")
        expect(rows).to_have_count(PATIENTS)
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        expect(page.locator("#f-count")).to_have_text(f"{PATIENTS} patients")

        for width, height in ((1280, 800), (1920, 1080)):
            page.set_viewport_size({"width": width, "height": height})
            heights = set(page.evaluate(_ROW_HEIGHTS))
            assert len(heights) == 1, (width, sorted(heights))
            right = page.evaluate(_ALERTS_RIGHT)
            assert right <= width, (width, right)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(ARTIFACTS / f"ward-200-{width}x{height}.png"))
            fit = page.evaluate(
                "Array.from(document.querySelectorAll('#ward-rows tr.patient'))"
                ".filter(r => r.getBoundingClientRect().bottom <= window.innerHeight).length")
            print(f"{width}x{height}: rows of {heights.pop()} px, {fit} rows fully in view")

        # Live updates: 40 patients change, five times; the page does not grow or shrink and
        # each changed row is highlighted at most once.
        page.set_viewport_size({"width": 1280, "height": 800})
        before = page.evaluate("document.documentElement.scrollHeight")
        page.evaluate("window.flashes = 0; document.getElementById('ward-rows')"
                      ".addEventListener('animationstart', () => window.flashes++)")
        changed = ids[:40]
        first = page.locator(f"#p-{changed[0]} td.vitals").inner_text()
        for step in range(5):
            change(db, changed, step)
            page.wait_for_timeout(150)
        expect(page.locator(f"#p-{changed[0]} td.vitals")).not_to_have_text(first,
                                                                           timeout=5000)
        page.wait_for_timeout(500)
        assert page.evaluate("document.documentElement.scrollHeight") == before
        assert len(set(page.evaluate(_ROW_HEIGHTS))) == 1
        assert 0 < page.evaluate("window.flashes") <= len(changed)

        # Filters: each narrows to the rows it names, they combine, and they hold for rows
        # replaced by a live update.
        def shown(attr: str) -> list[str]:
            return list(page.evaluate(
                f"Array.from(document.querySelectorAll('#ward-rows tr.patient:not([hidden])'))"
                f".map(r => r.dataset.{attr})"))

        page.select_option("#f-risk", "high")
        risks = shown("risk")
        assert risks
        assert set(risks) == {"high"}
        assert page.locator("#ward-rows tr.patient.risk-high").count() == len(risks)
        page.select_option("#f-risk", "")
        page.check("#f-overdue")
        overdue = shown("overdue")
        assert overdue
        assert set(overdue) == {"1"}
        assert len(overdue) == page.locator("#ward-rows tr.patient.overdue").count()
        page.uncheck("#f-overdue")
        page.check("#f-device")
        assert set(shown("deviceProblem")) == {"1"}
        assert len(shown("pid")) == len({i for i in range(PATIENTS) if i % 7 == 6 or
                                         i % 11 == 10})
        page.uncheck("#f-device")
        page.check("#f-mine")
        mine = shown("pid")
        assert sorted(int(p) for p in mine) == sorted(ids[g - 1] for g in range(20, 201, 20))
        change(db, [int(mine[0]), ids[1]], 9)  # a mine row and another one change
        page.wait_for_timeout(800)
        assert sorted(shown("pid")) == sorted(mine)
        page.uncheck("#f-mine")
        page.fill("#f-search", "family123")
        expect(page.locator("#ward-rows tr.patient:not([hidden])")).to_have_count(1)
        expect(page.locator("#f-count")).to_have_text(f"1 of {PATIENTS} patients")
        page.fill("#f-search", "")
        expect(page.locator("#ward-rows tr.patient:not([hidden])")).to_have_count(PATIENTS)
