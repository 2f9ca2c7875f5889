"""A reading published over MQTT reaches the ward row in a real browser through the ward
cache's readings-only rebuild (wardcache: the row rebuilt from `latest_readings` and its kept
facts), with the value, the NEWS2 total and its colour band a full rebuild gives.

Real Mosquitto, a real `vward gateway` subprocess (alerting off: only `readings` events
follow, so the row must come from the readings-only path), the hub in a thread (this test
reads its cache's counters), Debian's Chromium. With `WardCache.readings_only` off the row
still updates (by the full rebuild) but the test fails on the path it names: checked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from paho.mqtt import client as paho
from pydantic import SecretStr

from tests.hub.browser import launch, login, needs_chromium
from tests.hub.conftest import serve_app
from tests.hub.test_hub_e2e_browser import DETERIORATING, NORMAL, publish, setup_ward
from ward.hub import wardview
from ward.hub.app import create_app
from ward.hub.wardcache import WardCache
from ward.settings import Settings

pytestmark = pytest.mark.browser


@needs_chromium
def test_a_published_reading_reaches_the_row_through_the_readings_only_rebuild(
    db: psycopg.Connection[Any], db_url: str, admit: Callable[..., int], broker: Any,
    unique: str, ward: Any, to_url: Callable[[str], str], poll: Callable[..., None],
    start_gateway: Callable[..., Any], connect_mqtt: Callable[..., paho.Client],
) -> None:
    from playwright.sync_api import expect

    beds = setup_ward(db, admit, ward, unique)
    url = to_url(db_url)
    start_gateway(url, broker.url, client_id=f"gw-{unique}", group=f"g{unique}")
    mqtt = connect_mqtt(broker.url, f"rows-{unique}")
    pid, device = beds["Worsening"]
    now = dt.datetime.now(dt.UTC)
    publish(mqtt, device, NORMAL, now - dt.timedelta(minutes=2))
    publish(mqtt, beds["Stable"][1], NORMAL, now - dt.timedelta(minutes=2))
    poll(lambda: db.execute("SELECT count(*) FROM latest_readings").fetchone() == (14,), 15,
         "the baseline readings to be stored")
    db.commit()

    app = create_app(Settings(database_url=SecretStr(url), ward_beds=10), listen=True)
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(serve_app(app, poll))
        cache: WardCache = app.state.ward_cache
        page = launch(stack).new_page(viewport={"width": 1600, "height": 900})
        login(page, base, "nurse")
        row = page.locator(f"#p-{pid}")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        expect(row).to_have_class(re.compile(r"\brisk-low\b"))
        expect(row.locator("td.news2 .total")).to_have_text("0")
        recomputed, refreshed = cache.recomputed, cache.refreshed

        publish(mqtt, device, DETERIORATING, dt.datetime.now(dt.UTC))  # NEWS2 11
        expect(row).to_have_class(re.compile(r"\brisk-high\b"), timeout=10_000)
        expect(row.locator("td.news2 .total")).to_have_text("11")
        expect(row).to_contain_text("135")
        assert cache.refreshed > refreshed, "the row came through the readings-only path"
        assert cache.recomputed == recomputed, "no full rebuild was needed"
        # What the browser shows is what a full rebuild gives for the same state.
        at = dt.datetime.now(dt.UTC)
        [full] = wardview.load(db, now=at, beds=10, patient_ids=[pid]).rows
        db.commit()
        assert full.score is not None
        assert full.score.total == 11
        assert full.band == "high"
