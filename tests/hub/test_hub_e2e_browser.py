"""End to end in a real browser: MQTT → gateway → alerting → NOTIFY → hub → SSE → Chromium.

Debian's Chromium, headless, driven by Playwright (no browser download). The hub runs in a
thread on a free port, the gateway (and the alerting scheduler) as real subprocesses against
the session's Mosquitto and a freshly migrated schema. A hub nurse logs in, a deteriorating
reading is published over the broker, and the patient must rise to the top of the ward in red
without a reload; then the nurse acknowledges the alert with one click. Screenshot:
artifacts/hub-e2e.png.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from paho.mqtt import client as paho
from pydantic import SecretStr

from gateway.contract import Measurement, encode_readings, readings_topic
from tests.hub.browser import ARTIFACTS, launch, login, needs_chromium
from ward.domain.devices import DeviceKind
from ward.hub.auth import Role, create_user
from ward.settings import Settings

pytestmark = pytest.mark.browser


def publish(client: paho.Client, device: str, values: dict[str, tuple[float, str]],
            at: dt.datetime) -> None:
    readings = [Measurement(code, value, unit, at) for code, (value, unit) in values.items()]
    info = client.publish(readings_topic(device),
                          encode_readings(uuid.uuid4().hex, at, readings), qos=1)
    info.wait_for_publish(10)


def setup_ward(conn: psycopg.Connection[Any], admit: Callable[..., int], ward: Any,
               unique: str) -> dict[str, tuple[int, str]]:
    create_user(conn, "nurse", "nurse-password", role=Role.HUB_NURSE,
                display_name="Nurse Jones")
    conn.commit()
    now = dt.datetime.now(dt.UTC)
    beds: dict[str, tuple[int, str]] = {}
    for given, family in (("Alice", "Stable"), ("Brian", "Worsening")):
        pid = admit(given=given, family=family, at=now - dt.timedelta(days=1))
        device = f"hub-{family.lower()}-{unique}"
        ward.add(device, since=now - dt.timedelta(hours=2), kind=DeviceKind.HOME_HUB,
                 model="e2e", patient_id=pid)
        beds[family] = (pid, device)
    return beds


NORMAL = {"spo2": (97, "%"), "pulse": (72, "/min"), "resp_rate": (16, "/min"),
          "temperature": (36.8, "Cel"), "systolic_bp": (128, "mm[Hg]"),
          "on_oxygen": (0, "{air:0,oxygen:1}"), "consciousness": (0, "{ACVPU}")}
# NEWS2 2 (pulse 1 + resp rate 2... kept low): Alice stays on top until Brian deteriorates.
SLIGHTLY_OFF = {**NORMAL, "pulse": (96, "/min"), "resp_rate": (21, "/min")}
# SpO2 89 (3) + pulse 135 (3) + RR 26 (3) + temperature 39.4 (2): NEWS2 11, high.
DETERIORATING = {**NORMAL, "spo2": (89, "%"), "pulse": (135, "/min"),
                 "resp_rate": (26, "/min"), "temperature": (39.4, "Cel")}


@needs_chromium
def test_deteriorating_patient_rises_to_the_top_and_is_acknowledged(
    db: psycopg.Connection[Any], db_url: str, admit: Callable[..., int], broker: Any,
    unique: str, ward: Any, to_url: Callable[[str], str], poll: Callable[..., None],
    start_gateway: Callable[..., Any], start_service: Callable[..., Any],
    connect_mqtt: Callable[..., paho.Client],
    hub_server: Callable[..., str],
) -> None:
    from playwright.sync_api import expect

    beds = setup_ward(db, admit, ward, unique)
    url = to_url(db_url)
    settings = Settings(database_url=SecretStr(url), ward_beds=10)
    # The gateway queues each commit's patients (its default); `vward alerting` evaluates
    # them as NOTIFY wakes it and sweeps its timers every second, as in a deployment.
    start_gateway(url, broker.url, client_id=f"gw-{unique}", group=f"g{unique}",
                  VW_GATEWAY_ALERTING="true")
    start_service(["alerting", "--interval", "1"],
                  {"VW_DATABASE_URL": url, "VW_MQTT_URL": broker.url, "VW_LOG_LEVEL": "INFO"},
                  ready="leadership acquired")
    with contextlib.ExitStack() as stack:
        base = hub_server(settings)
        mqtt = connect_mqtt(broker.url, f"e2e-{unique}")
        now = dt.datetime.now(dt.UTC)
        publish(mqtt, beds["Stable"][1], SLIGHTLY_OFF, now - dt.timedelta(minutes=2))
        publish(mqtt, beds["Worsening"][1], NORMAL, now - dt.timedelta(minutes=2))
        poll(lambda: _scored(db, [p for p, _ in beds.values()]), 15,
             "baseline readings to be stored and scored")

        browser = launch(stack)
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.goto(base + "/")
        expect(page).to_have_url(f"{base}/login?next=/")
        login(page, base, "nurse")
        rows = page.locator("#ward-rows tr.patient")
        expect(rows).to_have_count(2)
        stable_pid, worsening_pid = beds["Stable"][0], beds["Worsening"][0]
        expect(rows.first).to_have_attribute("data-pid", str(stable_pid))
        expect(page.locator("#live")).to_have_attribute("data-state", "live")

        published = time.monotonic()
        publish(mqtt, beds["Worsening"][1], DETERIORATING, dt.datetime.now(dt.UTC))
        expect(rows.first).to_have_attribute("data-pid", str(worsening_pid), timeout=5000)
        seen = time.monotonic() - published
        expect(rows.first).to_have_class(re.compile(r"\brisk-high\b"))
        print(f"publish → browser shows the patient on top: {seen * 1000:.0f} ms")

        # The alert raised by the alerting core appears in the queue; one click acknowledges.
        ack = page.locator("#alert-rows article.state-raised button[data-ack]").first
        expect(ack).to_be_visible(timeout=5000)
        ack.click()
        expect(page.locator("#alert-rows article.state-acknowledged .state").first
               ).to_contain_text("nurse", timeout=5000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "hub-e2e.png"), full_page=True)
        # The queue reads at a laptop's width too: it keeps a usable width beside the ward
        # and a patient's name sits on one line (not one letter per line).
        for width in (1600, 1280):
            page.set_viewport_size({"width": width, "height": 900})
            queue = page.locator("aside.queue").bounding_box()
            ward = page.locator("section.ward").bounding_box()
            name = page.locator("#alert-rows article.episode a.who").first.bounding_box()
            assert queue is not None
            assert ward is not None
            assert name is not None
            assert queue["width"] >= 320, (width, queue)
            assert queue["x"] > ward["x"], (width, queue, ward)
            assert name["height"] < 30, (width, name)
        page.screenshot(path=str(ARTIFACTS / "hub-e2e-1280.png"), full_page=True)
        page.set_viewport_size({"width": 1600, "height": 900})
        page.click(f"#p-{worsening_pid} a.name")
        expect(page.locator(".patient-head")).to_contain_text("WORSENING")
        expect(page.locator("svg.chart")).to_have_count(7)
        page.screenshot(path=str(ARTIFACTS / "hub-patient.png"), full_page=True)

        cookies = {str(c["name"]): str(c["value"]) for c in page.context.cookies()}
        with httpx.Client(base_url=base, cookies=cookies) as api:
            alerts = api.get("/api/alerts", params={"patient_id": worsening_pid}).json()
        assert any(a["state"] == "acknowledged" and a["acknowledged_by"] == "nurse"
                   for a in alerts["items"]), alerts
        assert seen < 5


def _scored(conn: psycopg.Connection[Any], patient_ids: list[int]) -> bool:
    row = conn.execute("SELECT count(DISTINCT patient_id) FROM latest_readings "
                       "WHERE patient_id = ANY(%s)", (patient_ids,)).fetchone()
    conn.commit()
    return bool(row and row[0] == len(patient_ids))

