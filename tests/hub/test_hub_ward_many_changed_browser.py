"""More changed patients in one flush than `/ward/rows` takes (500 `patient_id`): the page
fetches them in turn and every row shows its new value.

A burst of gateway batches while a slow row fetch is in flight names hundreds of patients
before the next flush (at 2,000 readings/s over 1,000 patients, ~480 a flush in
`benchmarks/bench_latency.py`). The page asked for all of them in one request, which the hub
refused (422); those rows kept their old values until an event named them again. Chromium
(Debian's) through Playwright, the hub in a thread; the ward is seeded by set-based inserts
and the change is one `readings` NOTIFY naming 520 patients, as the gateway sends.
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
from ward.domain.nhs_number import with_check_digit
from ward.hub.auth import Role, create_user
from ward.settings import Settings

pytestmark = pytest.mark.browser
PATIENTS = 520  # more than one /ward/rows request takes


def seed(conn: psycopg.Connection[Any], now: dt.datetime) -> list[int]:
    numbers = [n for n in (with_check_digit(f"{940000000 + k:09d}") for k in range(3 * PATIENTS))
               if n][:PATIENTS]
    since = now - dt.timedelta(days=1)
    ids = [int(r[0]) for r in conn.execute(
        "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
        "SELECT n, 'Many', 'Many' || lpad(g::text, 3, '0'), date '1950-01-01' "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS u(n, g) RETURNING id", (numbers,))]
    conn.execute(
        "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, decided_at, "
        "admitted_at) SELECT p, 'step_up', 'gp', 'admitted', %s, %s, %s "
        "FROM unnest(%s::bigint[]) p", (since, since, since, ids))
    conn.execute(
        "INSERT INTO latest_readings (patient_id, code, measured_at, value, unit, device_id) "
        "SELECT p, 'pulse', %s, 70, '/min', 'many-' || p FROM unnest(%s::bigint[]) p",
        (now - dt.timedelta(minutes=5), ids))
    conn.commit()
    return ids


@needs_chromium
def test_a_flush_naming_more_patients_than_one_fetch_takes_updates_every_row(
    db: psycopg.Connection[Any], db_url: str, to_url: Callable[[str], str],
    hub_server: Callable[..., str],
) -> None:
    from playwright.sync_api import expect

    create_user(db, "nurse", "nurse-password", role=Role.HUB_NURSE, display_name="Nurse Jones")
    db.commit()
    ids = seed(db, dt.datetime.now(dt.UTC))
    settings = Settings(database_url=SecretStr(to_url(db_url)), ward_beds=PATIENTS)
    with contextlib.ExitStack() as stack:
        base = hub_server(settings)
        page = login(launch(stack).new_page(viewport={"width": 1280, "height": 800}), base,
                     "nurse")
        expect(page.locator("#ward-rows tr.patient")).to_have_count(PATIENTS)
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        page.evaluate("window.rowFetches = []; new PerformanceObserver(l => l.getEntries()"
                      ".forEach(e => { if (e.name.indexOf('/ward/rows') >= 0) "
                      "window.rowFetches.push(e.name); })).observe({type: 'resource'})")

        db.execute("UPDATE latest_readings SET value = 123, measured_at = %s "
                   "WHERE patient_id = ANY(%s)", (dt.datetime.now(dt.UTC), ids))
        db.execute("SELECT vw_notify(%s)", (json.dumps({"type": "readings", "patient_ids": ids}),))
        db.commit()

        expect(page.locator("#ward-rows td.vitals .vital[data-code=pulse]",
                            has_text="HR 123")).to_have_count(PATIENTS, timeout=20_000)
        fetched = page.evaluate("window.rowFetches")
        asked = [name.count("patient_id=") for name in fetched]
        assert asked, "the rows came through /ward/rows fetches"
        assert max(asked) <= 500, asked
        assert sum(asked) >= PATIENTS, asked
