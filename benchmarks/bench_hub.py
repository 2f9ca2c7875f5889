"""Hub benchmark: ward view and patient page API latency, publish → browser update latency.

Loads 200, then 1,000 admitted patients (each size in its own schema) with 30 days of
readings every 5 minutes (~8.6 million rows at 1,000, one vital per slot in rotation, so each vital is sampled every 25 minutes), hourly stored
NEWS2 scores and some open alerts into a throwaway schema with `generate_series` (no Python
row loop), then measures over real HTTP against the hub served by uvicorn:

* `GET /api/ward` (every admitted patient, sorted by acuity) — target p95 < 100 ms;
* `GET /api/patients/{id}/record?hours=72` (the patient page) — target p95 < 150 ms;
* `GET /api/worklist` (every open task of every kind, most urgent then soonest due first) —
  target p95 < 100 ms, with a task for roughly every patient (`load_tasks`);
* publish → update: a reading published over MQTT to a real Mosquitto, stored by a real
  `vward gateway` (with its alerting hook), NOTIFY → hub → SSE event received by a client,
  which then fetches that patient's row as the browser does — target p95 < 1 s;
* reading → row in the browser: the same real reading, and headless Chromium (Playwright,
  Debian's /usr/bin/chromium) showing the ward page: a MutationObserver in the page stamps
  each ward row the live script puts in (`performance.timeOrigin + performance.now()`, the
  machine's wall clock, like the publisher's `time.time()`; the offset between the two is
  measured and printed) and the figure is that stamp minus the publish time, for the row
  that shows the published SpO2. Skipped (with a note) when Chromium or Playwright is absent.

Usage: python benchmarks/bench_hub.py [--patients 200 1000] [--days 30] [--requests 200]
       [--updates 50] [--browser-updates 30]
Uses VW_DATABASE_URL (default: the local server); the schema is dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from pydantic import SecretStr

from gateway.contract import Measurement, encode_readings, readings_topic
from ward.db.connect import create_schema, drop_schema, migrate_url, with_schema
from ward.domain.nhs_number import with_check_digit
from ward.embedded import free_port, start_broker
from ward.hub.app import create_app
from ward.hub.auth import Role, create_user
from ward.settings import Settings

REPO = Path(__file__).resolve().parents[1]
CODES = ("spo2", "pulse", "resp_rate", "temperature", "systolic_bp")


def as_url(conninfo: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user, host = params.pop("user", "postgres"), params.pop("host", "127.0.0.1")
    port, dbname = params.pop("port", 5432), params.pop("dbname", "postgres")
    password = params.pop("password", None)
    auth = f"{user}:{password}@" if password else f"{user}@"
    query = urllib.parse.urlencode({k: str(v) for k, v in params.items()},
                                   quote_via=urllib.parse.quote)
    return f"postgresql://{auth}{host}:{port}/{dbname}" + (f"?{query}" if query else "")


def load(url: str, patients: int, days: int, now: dt.datetime) -> None:
    start = now - dt.timedelta(days=days)
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        numbers = [n for n in (with_check_digit(f"{900000000 + i:09d}") for i in
                               range(patients * 2)) if n is not None][:patients]
        conn.execute(
            "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
            "SELECT n, 'Patient', 'Number ' || g, date '1950-01-01' + g::int "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS u(n, g)", (numbers,))
        conn.execute(
            "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, "
            "decided_at, admitted_at) SELECT id, 'step_up', 'gp', 'admitted', %s, %s, %s "
            "FROM patients", (start - dt.timedelta(hours=1), start, start))
        conn.execute("INSERT INTO devices (id, kind) SELECT 'bench-' || id, 'home_hub' "
                     "FROM patients")
        conn.execute("INSERT INTO device_assignments (device_pk, patient_id, during) "
                     "SELECT d.pk, p.id, tstzrange(%s, NULL) FROM patients p "
                     "JOIN devices d ON d.id = 'bench-' || p.id", (start,))
        month = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        while month <= now:
            conn.execute("SELECT vw_ensure_reading_partition(%s)", (month,))
            month = (month + dt.timedelta(days=32)).replace(day=1)
        slots = days * 24 * 12
        # Values drift gently per patient; one code per 5-minute slot in rotation.
        conn.execute(
            "INSERT INTO readings (device_id, code, measured_at, value, unit, patient_id, "
            "received_at) SELECT 'bench-' || p, (%s::text[])[1 + s %% 5], "
            "%s::timestamptz + s * interval '5 minutes', "
            "CASE s %% 5 WHEN 0 THEN 94 + (p + s) %% 5 WHEN 1 THEN 70 + (p * 7 + s) %% 40 "
            "WHEN 2 THEN 14 + (p + s) %% 8 WHEN 3 THEN 36.5 + ((p + s) %% 20) / 10.0 "
            "ELSE 105 + (p * 3 + s) %% 40 END, "
            "(ARRAY['%%','/min','/min','Cel','mm[Hg]'])[1 + s %% 5], p, "
            "%s::timestamptz + s * interval '5 minutes' "
            "FROM generate_series(1, %s) p, generate_series(0, %s) s",
            (list(CODES), start, start, patients, slots - 1))
        t1 = time.perf_counter()
        conn.execute(
            "INSERT INTO latest_readings (patient_id, code, measured_at, value, unit, device_id) "
            "SELECT DISTINCT ON (patient_id, code) patient_id, code, measured_at, value, unit, "
            "device_id FROM readings WHERE measured_at > %s "
            "ORDER BY patient_id, code, measured_at DESC", (now - dt.timedelta(hours=2),))
        conn.execute(
            "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
            "spo2_scale, sub_scores, missing) SELECT p, %s::timestamptz + h * interval '1 hour', "
            "(p + h) %% 9, CASE WHEN (p + h) %% 9 >= 7 THEN 'high' WHEN (p + h) %% 9 >= 5 "
            "THEN 'medium' ELSE 'low' END, false, false, 1, '{}'::jsonb, "
            "ARRAY['consciousness'] FROM generate_series(1, %s) p, generate_series(0, %s) h",
            (start, patients, days * 24 - 1))
        conn.execute(
            "INSERT INTO alerts (patient_id, kind, severity, state, summary, raised_at, "
            "updated_at, next_escalation_at) SELECT p, 'news2', 'medium', 'raised', 'NEWS2 5', "
            "%s, %s, %s FROM generate_series(1, %s, 10) p",
            (now, now, now + dt.timedelta(minutes=30), patients))
        conn.execute("ANALYZE")
        count = conn.execute("SELECT count(*) FROM readings").fetchone()
        print(f"loaded {count[0] if count else 0:,} readings for {patients} patients in "
              f"{t1 - t0:.0f} s (+ {time.perf_counter() - t1:.0f} s latest/scores/analyze)")
    load_tasks(url, patients, now)


def load_tasks(url: str, patients: int, now: dt.datetime) -> None:
    """Worklist load: a full set for every 3rd patient, a phone-call observation for every
    2nd, a visit for every 5th, a follow-up call and an urgent clock for every 7th."""
    with psycopg.connect(url, autocommit=True) as conn:
        for kind, step, due_min in (("full_set", 3, 30), ("visit", 5, 90),
                                    ("follow_up_call", 7, 2880), ("urgent_response", 7, 60)):
            conn.execute(
                "INSERT INTO tasks (kind, patient_id, reason, detail, due_at, created_by, "
                "created_at) SELECT %s, p, 'bench', 'bench task', "
                "%s::timestamptz + ((p %% 60) - 30 + %s) * interval '1 minute', 'bench', "
                "%s::timestamptz - interval '2 hours' FROM generate_series(1, %s, %s) p",
                (kind, now, due_min, now, patients, step))
        conn.execute(
            "INSERT INTO observation_tasks (patient_id, parameter, method, due_at, created_at) "
            "SELECT p, 'resp_rate', 'phone call', %s::timestamptz + (p %% 120) * "
            "interval '1 minute', %s FROM generate_series(1, %s, 2) p",
            (now - dt.timedelta(minutes=60), now - dt.timedelta(hours=4), patients))
        conn.execute("ANALYZE tasks; ANALYZE observation_tasks")


def bench_worklist(client: httpx.Client, requests: int, patients: int) -> None:
    timed(client, "/api/worklist")
    work = [timed(client, "/api/worklist") for _ in range(requests)]
    items = client.get("/api/worklist").json()["total"]
    print(f"worklist API ({items} open tasks, {patients} patients): {percentiles(work)}")


@contextlib.contextmanager
def hub(settings: Settings) -> Iterator[str]:
    port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # End open SSE streams first, as `vward hub` does on SIGINT (else uvicorn waits for
        # them, then cancels them with a traceback).
        loop = getattr(app.state, "loop", None)
        if loop is not None:
            loop.call_soon_threadsafe(app.state.broadcaster.close)
        server.should_exit = True
        thread.join(10)


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return (f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   "
            f"max {ordered[-1] * 1000:7.1f} ms   (n={len(ordered)})")


def timed(client: httpx.Client, path: str) -> float:
    t0 = time.perf_counter()
    response = client.get(path)
    if response.status_code != 200:
        raise SystemExit(f"{path}: {response.status_code} {response.text[:500]}")
    return time.perf_counter() - t0


def publish_to_update(base: str, token: str, broker_url: str, patients: int, n: int
                      ) -> list[float]:
    host, port = broker_url.removeprefix("mqtt://").split(":")
    mqtt = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:6]}",
                       protocol=MQTTProtocolVersion.MQTTv5)
    mqtt.connect(host, int(port))
    mqtt.loop_start()
    headers = {"Authorization": f"Bearer {token}"}
    samples: list[float] = []
    waiting: dict[int, float] = {}
    done = threading.Event()
    lock = threading.Lock()

    def reader() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(5, read=None)) as sse, \
                httpx.Client(base_url=base, headers=headers) as api, \
                sse.stream("GET", "/api/events") as stream:
            for line in stream.iter_lines():
                if done.is_set():
                    return
                if not line.startswith("data: "):
                    continue
                data = json.loads(line[6:])
                with lock:
                    hits = [p for p in data.get("patient_ids", []) if p in waiting]
                for pid in hits:
                    api.get("/ward/rows", params={"patient_id": pid}).raise_for_status()
                    with lock:
                        samples.append(time.perf_counter() - waiting.pop(pid))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    time.sleep(1.0)  # let the SSE stream open before the first publish
    for i in range(n):
        pid = 1 + (i * 37) % patients
        at = dt.datetime.now(dt.UTC)
        with lock:
            waiting[pid] = time.perf_counter()
        payload = encode_readings(uuid.uuid4().hex, at,
                                  [Measurement("spo2", 90 + i % 8, "%", at)])
        mqtt.publish(readings_topic(f"bench-{pid}"), payload, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                if pid not in waiting:
                    break
            time.sleep(0.002)
        time.sleep(0.05)
    done.set()
    mqtt.loop_stop()
    return samples


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Stamps every ward row the live script inserts (a replaced row is a new element; rows only
# moved by the re-sort are elements already seen, so they are not stamped), with the SpO2
# it shows. Installed by evaluate() (the hub's CSP forbids inline scripts and eval).
OBSERVE_JS = """() => {
  const seen = new WeakSet(document.querySelectorAll('#ward-rows tr.patient'));
  window.vwBench = [];
  new MutationObserver((records) => {
    const t = performance.timeOrigin + performance.now();
    for (const rec of records) for (const node of rec.addedNodes) {
      if (node.nodeType !== 1 || !node.matches('tr.patient') || seen.has(node)) continue;
      seen.add(node);
      const abbr = node.querySelector('[data-code=spo2] abbr');
      const spo2 = abbr && abbr.nextSibling ? parseFloat(abbr.nextSibling.textContent) : null;
      window.vwBench.push({pid: Number(node.dataset.pid), spo2: spo2, t: t});
    }
  }).observe(document.getElementById('ward-rows'), {childList: true});
}"""
# Longer than any row seen (~1.3 s p100 at load ~15) by a wide margin: a row not shown by
# then is counted as not shown, separately from the latency figure.
BROWSER_WAIT_MS = 15000
SHOWN_JS = """([pid, spo2, after]) => (window.vwBench || []).find(
  r => r.pid === pid && r.spo2 === spo2 && r.t >= after) || null"""


def clock_offset_ms(page: Any) -> tuple[float, float]:
    """Browser clock minus this process's `time.time()`, in ms, and the uncertainty (half the
    evaluate round trip), best of 5."""
    guesses = []
    for _ in range(5):
        t0 = time.time()
        browser = float(page.evaluate("() => performance.timeOrigin + performance.now()"))
        t1 = time.time()
        guesses.append((browser - (t0 + t1) * 500.0, (t1 - t0) * 500.0))
    return min(guesses, key=lambda g: g[1])


def publish_to_browser(base: str, broker_url: str, patients: int, n: int
                       ) -> tuple[list[float], int, tuple[float, float]] | None:
    """Reading published over MQTT → the ward row replaced in Chromium, per reading (s)."""
    try:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("reading → browser row: skipped (playwright is not installed)")
        return None
    if not os.path.exists(CHROMIUM):
        print(f"reading → browser row: skipped ({CHROMIUM} is not installed)")
        return None
    host, port = broker_url.removeprefix("mqtt://").split(":")
    mqtt = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:6]}",
                       protocol=MQTTProtocolVersion.MQTTv5)
    mqtt.connect(host, int(port))
    mqtt.loop_start()
    samples: list[float] = []
    missed = 0
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                         headless=True)
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(base + "/login?next=/")
            page.fill("#username", "bench")
            page.fill("#password", "bench-password")
            page.click("button[type=submit]")
            page.wait_for_url(base + "/", timeout=60000)
            page.locator("#live[data-state=live]").wait_for(timeout=30000)
            page.evaluate(OBSERVE_JS)
            offset = clock_offset_ms(page)
            for i in range(n):
                pid = 1 + (i * 53 + 7) % patients
                value = 80 + i % 5  # the bench's load never shows SpO2 below 94
                at = dt.datetime.now(dt.UTC)
                payload = encode_readings(uuid.uuid4().hex, at, [Measurement("spo2", value, "%",
                                                                             at)])
                published_ms = time.time() * 1000.0 + offset[0]  # on the browser's clock
                mqtt.publish(readings_topic(f"bench-{pid}"), payload, qos=1).wait_for_publish(5)
                try:
                    handle = page.wait_for_function(SHOWN_JS, arg=[pid, value, published_ms],
                                                    timeout=BROWSER_WAIT_MS, polling=10)
                except PlaywrightTimeout:
                    missed += 1
                    continue
                shown = handle.json_value()
                samples.append((float(shown["t"]) - published_ms) / 1000.0)
                time.sleep(0.05)
            browser.close()
    finally:
        mqtt.loop_stop()
    return samples, missed, offset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[200, 1000],
                        help="ward sizes, each measured in its own schema")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--updates", type=int, default=50)
    parser.add_argument("--browser-updates", type=int, default=30,
                        help="readings timed to the ward row in Chromium (0: skip)")
    args = parser.parse_args()
    for patients in args.patients:
        print(f"--- {patients} patients")
        run(argparse.Namespace(**{**vars(args), "patients": patients}))
    return 0


def run(args: argparse.Namespace) -> None:
    base_url = os.environ.get("VW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"bench_hub_{uuid.uuid4().hex[:8]}"
    create_schema(base_url, schema)
    url = as_url(with_schema(base_url, schema))
    broker = start_broker()
    gateway = None
    try:
        migrate_url(url)
        now = dt.datetime.now(dt.UTC)
        load(url, args.patients, args.days, now)
        with psycopg.connect(url) as conn:
            create_user(conn, "bench", "bench-password", role=Role.HUB_NURSE)
        settings = Settings(database_url=SecretStr(url), ward_beds=max(args.patients, 1))
        env = {**os.environ, "VW_DATABASE_URL": url, "VW_MQTT_URL": broker.url,
               "VW_MQTT_CLIENT_ID": f"gw-{schema}", "VW_MQTT_SHARE_GROUP": schema,
               "VW_LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO)}
        gateway = subprocess.Popen([sys.executable, "-m", "ward.cli", "gateway"], env=env,
                                   cwd=REPO)
        with hub(settings) as base:
            token = httpx.post(base + "/api/auth/token", json={
                "username": "bench", "password": "bench-password"}).json()["access_token"]
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                              timeout=30) as client:
                for _ in range(5):
                    timed(client, "/api/ward")
                ward = [timed(client, "/api/ward") for _ in range(args.requests)]
                rows = len(client.get("/api/ward").json()["rows"])
                print(f"ward view API ({rows} patients):          {percentiles(ward)}")
                # The same under change: before each request a NOTIFY names 20 patients (a
                # busy gateway batch), so the cache recomputes 20 rows per request.
                churn = []
                with psycopg.connect(url, autocommit=True) as note:
                    for i in range(args.requests):
                        ids = [1 + (i * 20 + k) % args.patients for k in range(20)]
                        note.execute("SELECT vw_notify(%s)", (json.dumps(
                            {"type": "readings", "patient_ids": ids}),))
                        time.sleep(0.005)  # the listener hears it (as a browser would)
                        churn.append(timed(client, "/api/ward"))
                print(f"ward view API, 20 patients changed each: {percentiles(churn)}")
                record = [timed(client, f"/api/patients/{1 + (i * 13) % args.patients}/record")
                          for i in range(args.requests)]
                print(f"patient page API (72 h of vitals):       {percentiles(record)}")
                bench_worklist(client, args.requests, args.patients)
            time.sleep(2)  # the gateway subscribes
            updates = publish_to_update(base, token, broker.url, args.patients, args.updates)
            if updates:
                print(f"publish → SSE → row fetched (MQTT, gateway): {percentiles(updates)}")
            print(f"  ({args.updates - len(updates)} of {args.updates} updates not seen in 5 s)")
            shown = (publish_to_browser(base, broker.url, args.patients, args.browser_updates)
                     if args.browser_updates else None)
            if shown is not None:
                browser_samples, missed, (offset, error) = shown
                if browser_samples:
                    print("reading → row in Chromium (MQTT, gateway, SSE, DOM): "
                          f"{percentiles(browser_samples)}")
                print(f"  ({missed} of {args.browser_updates} rows not shown in "
                      f"{BROWSER_WAIT_MS // 1000} s; browser "
                      f"clock − bench clock {offset:+.1f} ± {error:.1f} ms, corrected)")
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(15)
        broker.stop()
        drop_schema(base_url, schema)


if __name__ == "__main__":
    raise SystemExit(main())
