"""`vward simulate` against the real PostgreSQL and Mosquitto: registration, publishing, CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from simulators.engine import Engine
from simulators.publisher import Publisher, publish_stream
from simulators.scenario import Scenario
from simulators.sensors import InfusionPump
from simulators.ward import build_ward
from ward.cli import main as vward
from ward.commands.simulate import register_ward
from ward.db.registry import device_directory
from ward.embedded import Broker

TINY = Scenario.model_validate({
    "name": "tiny", "patients": 6, "seed": 5,
    "trajectories": {"stable": 2, "copd_exacerbation": 2, "sepsis": 1, "step_down_recovery": 1},
    "kits": [{"name": "k", "share": 1,
              "devices": ["wearable_oximeter", "bp_cuff", "thermometer", "home_hub"]}],
    "infusion_pumps": 2, "senml": 0.3,
    "faults": {"duplicate": 0.05, "malformed": 0.05, "offline_spell": 0.05, "late": 0.02},
})


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_registration_is_complete_and_idempotent(db_url: str) -> None:
    start = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)
    patients = build_ward(TINY, TINY.seed, start)
    with psycopg.connect(db_url) as conn:
        first = register_ward(conn, TINY, patients, start)
        conn.commit()
        assert first.patients_created == 6
        assert first.admissions_created == 6
        assert first.devices_created == 6 * 4 + 2
        assert first.assignments_created == 26
        assert first.care_plans_created == len(
            {p.index for p in patients if p.profile.spo2_scale == 2
             or any(d.type.value == "infusion_pump" for d in p.devices)})
        counts = {t: _count(conn, t) for t in
                  ("patients", "admissions", "devices", "device_assignments", "care_plans")}
        again = register_ward(conn, TINY, patients, start + dt.timedelta(hours=3))
        conn.commit()
        assert (again.patients_created, again.admissions_created, again.devices_created,
                again.assignments_created, again.care_plans_created) == (0, 0, 0, 0, 0)
        assert {t: _count(conn, t) for t in counts} == counts
        assert again.patient_ids == first.patient_ids
        # Every device is attributed to its patient from before the run's first instant.
        directory = device_directory(conn)
        for p in patients:
            for d in p.devices:
                assert directory[d.device_id].patient_at(start) == first.patient_ids[p.nhs_number]
        scale2 = conn.execute(
            "SELECT spo2_scale_set_by, spo2_target_low, spo2_target_high FROM care_plans "
            "WHERE spo2_scale = 2").fetchall()
        assert len(scale2) == 2
        assert all(row == ("simulator scenario", 88.0, 92.0) for row in scale2)
        rates = conn.execute("SELECT count(*) FROM care_plans "
                             "WHERE prescribed_infusion_rate_ml_h = 10").fetchone()
        assert rates == (2,)
        pathways = Counter(r[0] for r in conn.execute("SELECT pathway FROM admissions"))
        assert pathways["step_down"] >= 1
        # An earlier run start moves the open assignments back instead of failing.
        earlier = register_ward(conn, TINY, patients, start - dt.timedelta(days=1))
        conn.commit()
        assert earlier.assignments_created == 26
        assert _count(conn, "device_assignments") == 26


def _url(conninfo: str) -> str:
    """A conninfo (with its search_path option) as the postgresql:// URL settings expect."""
    parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = parts.get("user") or "postgres"
    host = parts.get("host") or "127.0.0.1"
    query = {"host": host} if str(host).startswith("/") else {}
    netloc = f"{user}@" + ("" if query else f"{host}:{parts.get('port') or 5432}")
    if parts.get("options"):
        query["options"] = str(parts["options"])
    return f"postgresql://{netloc}/{parts.get('dbname') or 'postgres'}?{urlencode(query, quote_via=quote)}"


def test_vward_simulate_register_only_twice(db_url: str, broker: Broker) -> None:
    env = {"VW_DATABASE_URL": _url(db_url), "VW_MQTT_URL": broker.url}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert vward(["simulate", "demo", "--register-only"]) == 0
        assert vward(["simulate", "demo", "--register-only"]) == 0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with psycopg.connect(db_url) as conn:
        assert _count(conn, "patients") == 40
        assert _count(conn, "admissions") == 40


def _subscribe(url: str, prefix: str) -> tuple[mqtt.Client, list[tuple[str, bytes]]]:
    """Every message on a device topic whose device id starts with `prefix`."""
    received: list[tuple[str, bytes]] = []
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{time.monotonic_ns()}",
                         protocol=MQTTProtocolVersion.MQTTv311)
    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if msg.topic.split("/")[3].startswith(prefix):
            received.append((msg.topic, bytes(msg.payload)))

    client.on_message = on_message
    client.on_subscribe = lambda *_a: ready.set()
    client.on_connect = lambda c, *_a: c.subscribe("vw/v1/devices/+/+", qos=1)
    port = int(url.rsplit(":", 1)[1])
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert ready.wait(10)
    return client, received


def test_a_short_scenario_reaches_a_subscriber_whole(broker: Broker, unique: str) -> None:
    scenario = TINY.model_copy(update={"name": f"t{unique}"})
    messages = list(Engine(scenario, duration=dt.timedelta(hours=2)).messages())
    subscriber, received = _subscribe(broker.url, f"t{unique}-")
    publisher = Publisher(broker.url, client_id=f"pub-{unique}")
    try:
        sent = publish_stream(messages, publisher.publish)
        assert publisher.flush(30)
        assert publisher.acked == sent == len(messages)
        deadline = time.monotonic() + 20
        while len(received) < len(messages) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        publisher.close()
        subscriber.loop_stop()
        subscriber.disconnect()
    assert Counter(received) == Counter((m.topic, m.payload) for m in messages)


def test_dry_run_prints_the_deterministic_stream(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    cmd = [sys.executable, "-m", "ward.cli", "simulate", "demo", "--dry-run",
           "--duration", "30m", "--ground-truth", str(truth)]
    one = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    two = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    assert one == two
    lines = [json.loads(line) for line in one.splitlines()]
    assert lines
    assert all(line["topic"].startswith("vw/v1/devices/demo-p") for line in lines)
    events = [json.loads(line) for line in truth.read_text().splitlines()]
    assert events[0]["event"] == "scenario"
    assert events[-1]["event"] == "summary"
    assert events[-1]["messages"] == len(lines)


def test_live_demo_runs_until_sigint_and_exits_zero(broker: Broker) -> None:
    subscriber, received = _subscribe(broker.url, "demo-")
    env = {**os.environ, "VW_MQTT_URL": broker.url}
    child = subprocess.Popen([sys.executable, "-m", "ward.cli", "simulate", "demo"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.1)
        assert received, "the live demo published nothing"
        # Readings are never dated in the future in live mode.
        now = dt.datetime.now(dt.UTC)
        for topic, payload in received:
            if topic.endswith("/readings"):
                for reading in json.loads(payload)["readings"]:
                    when = dt.datetime.fromisoformat(reading["measured_at"].replace("Z", "+00:00"))
                    assert when <= now + dt.timedelta(minutes=5)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=20)
        assert child.returncode == 0, err
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()  # and close its pipes: no ResourceWarning in a later test
        subscriber.loop_stop()
        subscriber.disconnect()


# --- IV prescriptions: the pump rules are live in the simulated ward -------------------------

def _pump_patients(patients: list[Any]) -> dict[str, str]:
    """NHS number → pump device id."""
    return {p.nhs_number: d.device_id for p in patients for d in p.devices
            if d.type.value == "infusion_pump"}


def _pump_latest(messages: list[Any], device_id: str, until: dt.datetime) -> dict[str, Any]:
    """The pump's latest readings at `until`, decoded as the gateway decodes them."""
    from alerting.observations import Latest
    from gateway.decode import DecodedMessage, Limits, decode

    latest: dict[str, Any] = {}
    for m in messages:
        if m.topic.split("/")[3] != device_id or m.topic.endswith("/status"):
            continue
        decoded = decode(m.topic, m.payload, dt.datetime.fromtimestamp(m.at, dt.UTC), Limits())
        assert isinstance(decoded, DecodedMessage)
        for r in decoded.readings:
            if r.measured_at <= until:
                latest[r.code] = Latest(r.code, r.measured_at, r.value, device_id)
    return latest


def test_registration_prescribes_each_pump_patients_running_reservoir(db_url: str) -> None:
    from alerting import care_plan_store
    from alerting.candidates import Kind
    from alerting.care_plan import CarePlan
    from alerting.device_rules import infusion_rules
    from alerting.snapshot import PatientSnapshot, RuleConfig
    from ward.commands.sim_infusions import DRUG, PRESCRIBER

    start = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)
    patients = build_ward(TINY, TINY.seed, start)
    pumps = _pump_patients(patients)
    assert len(pumps) == 2
    engine = Engine(TINY, start=start, duration=dt.timedelta(hours=3))
    reservoirs = {d.spec.device_id: dt.datetime.fromtimestamp(d.infusion.started, dt.UTC)
                  for d in engine.devices if isinstance(d, InfusionPump)}
    messages = list(engine.messages())
    with psycopg.connect(db_url) as conn:
        report = register_ward(conn, TINY, patients, start)
        conn.commit()
        assert report.prescriptions_written == 2
        for nhs, device_id in pumps.items():
            pid = report.patient_ids[nhs]
            plan = care_plan_store.load_care_plan(conn, pid)
            # What a clinician's PUT …/care-plan/infusion writes: drug and dose, volume, rate
            # (from the duration), start — the reservoir the engine is running at the start.
            assert plan.infusion_drug == DRUG
            assert (plan.infusion_volume_ml, plan.prescribed_infusion_rate_ml_h) == (240.0, 10.0)
            assert plan.infusion_pump_type == "elastomeric"
            assert plan.infusion_started_at == reservoirs[device_id]
            assert plan.infusion_expected_end == reservoirs[device_id] + dt.timedelta(hours=24)
            assert plan.infusion_set_by == PRESCRIBER
            audit = conn.execute("SELECT actor FROM audit_log WHERE patient_id = %s AND action "
                                 "= 'care_plan.set_prescribed_infusion_rate'", (pid,)).fetchall()
            assert audit == [(PRESCRIBER,)]
            # The timing rules decide with the prescription, and only with it.
            at = start + dt.timedelta(hours=2)
            latest = _pump_latest(messages, device_id, at)
            assert "pump_state" in latest
            kinds = {o.kind for o in infusion_rules(PatientSnapshot(pid, latest, plan), at,
                                                    RuleConfig())}
            assert Kind.INFUSION_LATE in kinds
            assert {Kind.INFUSION_LATE, Kind.INFUSION_STALLED, Kind.INFUSION_FLOW} <= kinds
            bare = {o.kind for o in infusion_rules(PatientSnapshot(pid, latest, CarePlan(pid)),
                                                   at, RuleConfig())}
            assert not {Kind.INFUSION_LATE, Kind.INFUSION_STALLED, Kind.INFUSION_FLOW} & bare
        # Registering the same run again writes nothing.
        again = register_ward(conn, TINY, patients, start)
        conn.commit()
        assert again.prescriptions_written == 0
        # A clinician's prescription (or its end) is never overwritten by the simulator.
        nhs, device_id = next(iter(pumps.items()))
        pid = report.patient_ids[nhs]
        care_plan_store.set_prescribed_infusion_rate(conn, pid, rate_ml_h=None, by="dr.ahmed",
                                                     reason="switched to oral", now=start)
        conn.commit()
        later = register_ward(conn, TINY, patients, start + dt.timedelta(hours=5))
        conn.commit()
        assert later.prescriptions_written == 1  # the other pump's new run, not this one
        assert care_plan_store.load_care_plan(conn, pid).prescribed_infusion_rate_ml_h is None


def test_a_live_run_prescribes_each_new_reservoir_as_the_nurse_connects_it(db_url: str) -> None:
    from alerting import care_plan_store
    from ward.commands.sim_infusions import prescribing

    start = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)
    patients = build_ward(TINY, TINY.seed, start)
    with psycopg.connect(db_url) as conn:
        report = register_ward(conn, TINY, patients, start)
        conn.commit()
    # 30 h from 06:00 UTC: the nurse visits at 10:00 (London = UTC in January) twice.
    engine = Engine(TINY, start=start, duration=dt.timedelta(hours=30))
    warnings: list[str] = []
    for _ in prescribing(engine.messages(), engine, db_url, report.patient_ids, warnings.append):
        pass
    assert warnings == []
    visits = [dt.datetime(2026, 1, d, 10, 0, tzinfo=dt.UTC) for d in (5, 6)]
    with psycopg.connect(db_url) as conn:
        for nhs in _pump_patients(patients):
            pid = report.patient_ids[nhs]
            plan = care_plan_store.load_care_plan(conn, pid)
            assert plan.infusion_started_at == visits[-1]
            starts = [r[0] for r in conn.execute(
                "SELECT detail->'new'->>'started_at' FROM audit_log WHERE patient_id = %s "
                "AND action = 'care_plan.set_prescribed_infusion_rate' ORDER BY id", (pid,))]
            assert starts[1:] == [v.isoformat() for v in visits]
