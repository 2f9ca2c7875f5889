"""Missing is never normal, on every screen's data (issue 11), on a real database.

The ward API row, the patient record API and the FHIR export for partial scores, stale
values, per-parameter overdue with hub tasks, Scale 2 with oxygen unknown, the row's band
against its open alert, discharge, staff entries in the admission's own second, and the IV
prescription."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from alerting.runner import evaluate_after_commit
from ward.db import registry
from ward.db.store import ReadingStore
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.domain.readings import Reading
from ward.domain.vitals import spec_for
from ward.hub.auth import Role

Conn = psycopg.Connection[Any]
FULL = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.8, "systolic_bp": 125,
        "on_oxygen": 0, "consciousness": 0}


def store(db: Conn, pid: int, at: dt.datetime, device: str = "dev-a", **values: float) -> None:
    ReadingStore().write(db, [Reading(device, c, at, float(v), spec_for(c).unit, pid, at)
                              for c, v in values.items()])
    db.commit()


def device(db: Conn, pid: int, device_id: str, kind: DeviceKind, since: dt.datetime) -> None:
    registry.add_device(db, Device(device_id, kind))
    registry.assign_device(db, Assignment(device_id, pid, since))
    db.commit()


def ward_rows(client: Any, headers: dict[str, str]) -> dict[int, dict[str, Any]]:
    response = client.get("/api/ward", headers=headers)
    assert response.status_code == 200, response.text
    return {r["patient_id"]: r for r in response.json()["rows"]}


def test_partial_score_is_incomplete_never_low_with_stale_values_aged(
        app_client, staff, admit, db, clock) -> None:
    h = staff(Role.HUB_NURSE).headers
    pid = admit()
    now = clock.now
    store(db, pid, now - dt.timedelta(hours=6), **{**FULL, "on_oxygen": 0})  # all but O2 stale
    store(db, pid, now - dt.timedelta(minutes=2), spo2=97, pulse=70)
    row = ward_rows(app_client, h)[pid]
    score = row["score"]
    assert (score["total"], score["complete"]) == (0, False)
    assert score["status"] == "incomplete"
    assert score["present"] == 3  # SpO2, pulse, air/oxygen (12 h window)
    assert score["label"] == "Incomplete 3/7 — full set due"
    assert row["risk"] == "incomplete"  # never the green "low" of a complete 0
    assert score["monitoring_frequency"].startswith("full set due now (missing RR")
    latest = row["latest"]
    assert latest["resp_rate"] == {"value": 16.0, "measured_at": latest["resp_rate"][
        "measured_at"], "age_minutes": 360, "stale": True}
    assert latest["spo2"]["stale"] is False
    assert latest["spo2"]["age_minutes"] == 2
    record = app_client.get(f"/api/patients/{pid}/record", headers=h).json()
    assert record["score"]["label"] == "Incomplete 3/7 — full set due"
    assert record["latest_age"]["systolic_bp"]["stale"] is True


def test_a_complete_zero_is_low(app_client, staff, admit, db, clock) -> None:
    h = staff(Role.HUB_NURSE).headers
    pid = admit()
    store(db, pid, clock.now - dt.timedelta(minutes=5), **FULL)
    row = ward_rows(app_client, h)[pid]
    assert row["risk"] == "low"
    assert row["score"]["label"] == "Low"
    assert row["score"]["monitoring_frequency"] == "12-hourly"


def test_wearable_only_row_lists_each_overdue_parameter_as_a_hub_task(
        app_client, staff, admit, db, clock) -> None:
    h = staff(Role.HUB_NURSE).headers
    pid = admit(at=clock.now - dt.timedelta(hours=5))
    device(db, pid, f"ox-{pid}", DeviceKind.PULSE_OXIMETER, clock.now - dt.timedelta(hours=5))
    store(db, pid, clock.now - dt.timedelta(minutes=1), device=f"ox-{pid}", spo2=96, pulse=80)
    row = ward_rows(app_client, h)[pid]
    assert row["overdue"] is True
    overdue = {d["parameter"]: d["method"] for d in row["due"] if d["overdue"]}
    assert overdue == {"resp_rate": "phone call", "consciousness": "phone call",
                       "air_or_oxygen": "phone call", "systolic_bp": "visit",
                       "temperature": "visit"}
    due = {d["parameter"]: d for d in row["due"]}
    assert due["spo2"]["overdue"] is False
    assert due["spo2"]["method"] == "kit"
    record = app_client.get(f"/api/patients/{pid}/record", headers=h).json()
    assert {d["parameter"] for d in record["due"] if d["overdue"]} == set(overdue)


def test_scale_2_with_oxygen_unknown_is_flagged(app_client, staff, admit, db, clock) -> None:
    doctor = staff(Role.CLINICIAN).headers
    pid = admit()
    assert app_client.put(f"/api/patients/{pid}/care-plan/spo2-scale", headers=doctor, json={
        "scale": 2, "reason": "type 2 respiratory failure"}).status_code == 200
    store(db, pid, clock.now - dt.timedelta(hours=13), on_oxygen=1)
    store(db, pid, clock.now - dt.timedelta(minutes=3),
          **{k: v for k, v in FULL.items() if k != "on_oxygen"})
    row = ward_rows(app_client, doctor)[pid]
    assert row["score"]["complete"] is False
    assert row["score"]["oxygen_unknown"] is True
    assert "air_or_oxygen" in {d["parameter"] for d in row["due"] if d["overdue"]}


def test_row_band_never_sits_below_its_open_news2_alert(app_client, staff, admit, db,
                                                        clock) -> None:
    h = staff(Role.HUB_NURSE).headers
    pid = admit()
    sick = {**FULL, "pulse": 115, "resp_rate": 22, "temperature": 38.5}  # NEWS2 5: medium
    store(db, pid, clock.now - dt.timedelta(hours=5), **sick)
    evaluate_after_commit(db, [pid], clock.now - dt.timedelta(hours=5))
    # Five hours on, everything but air/oxygen is stale: a partial 0. The NEWS2 alert is
    # not cleared by a partial low score, so the row must not sort as Low 0.
    store(db, pid, clock.now - dt.timedelta(minutes=1), spo2=97)
    row = ward_rows(app_client, h)[pid]
    assert [a["kind"] for a in row["alerts"]].count("news2") == 1
    assert row["alert_band"] == "medium"
    assert row["risk"] == "medium"
    assert row["score"]["complete"] is False


def test_discharge_ends_devices_and_the_record_says_so(app_client, staff, admit, db,
                                                       clock) -> None:
    h = staff(Role.HUB_NURSE).headers
    pid = admit()
    device(db, pid, f"ox-{pid}", DeviceKind.PULSE_OXIMETER, clock.now - dt.timedelta(days=2))
    store(db, pid, clock.now - dt.timedelta(minutes=5), device=f"ox-{pid}", **FULL)
    aid = db.execute("SELECT id FROM admissions WHERE patient_id = %s", (pid,)).fetchone()
    db.commit()
    assert aid is not None
    # Discharge is a clinician's (or the ward manager's) decision, not a hub nurse's.
    done = app_client.post(f"/api/admissions/{aid[0]}/discharge",
                           headers=staff(Role.CLINICIAN).headers,
                           json={"outcome": "usual_residence"})
    assert done.status_code == 200, done.text
    record = registry.device_directory(db, [f"ox-{pid}"])[f"ox-{pid}"]
    db.commit()
    assert record.patient_at(clock.now - dt.timedelta(minutes=5)) == pid
    assert record.patient_at(clock.now + dt.timedelta(seconds=1)) is None  # dead-lettered
    out = app_client.get(f"/api/patients/{pid}/record", headers=h).json()
    assert out["admitted"] is False
    assert out["discharged_at"] is not None
    assert out["score"] is None  # no NEWS2 presented as current
    assert out["due"] == []
    page = app_client.get(f"/patients/{pid}", headers=h)
    assert "Discharged" in page.text
    assert "observations</div>" not in page.text


def test_staff_entry_in_the_admissions_own_second_is_accepted(app_client, staff, admit,
                                                              clock) -> None:
    clock.now = clock.now.replace(microsecond=400_000)
    nurse = staff(Role.HUB_NURSE)
    pid = admit(at=clock.now)
    clock.now += dt.timedelta(microseconds=300_000)  # same second as the admission
    response = app_client.post(f"/api/patients/{pid}/observations", headers=nurse.headers,
                               json={"observations": [{"code": "resp_rate", "value": 18}]})
    assert response.status_code == 201, response.text
    assert response.json()["measured_at"].startswith(clock.now.strftime("%Y-%m-%dT%H:%M:%S.7"))


def test_iv_prescription_by_a_clinician_switches_the_pump_rules_on(
        app_client, staff, admit, db, clock) -> None:
    nurse = staff(Role.HUB_NURSE).headers
    doctor = staff(Role.CLINICIAN).headers
    pid = admit()
    start = clock.now - dt.timedelta(hours=4)
    body = {"drug": "ceftriaxone 2 g", "volume_ml": 240, "duration_h": 24,
            "started_at": start.isoformat(), "pump_type": "elastomeric",
            "reason": "cellulitis, day 2 of IV"}
    assert app_client.put(f"/api/patients/{pid}/care-plan/infusion", headers=nurse,
                          json=body).status_code == 403
    bad = app_client.put(f"/api/patients/{pid}/care-plan/infusion", headers=doctor,
                         json={**body, "duration_h": None})
    assert bad.status_code == 422
    response = app_client.put(f"/api/patients/{pid}/care-plan/infusion", headers=doctor,
                              json=body)
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["prescribed_infusion_rate_ml_h"] == 10.0
    assert plan["infusion_drug"] == "ceftriaxone 2 g"
    assert plan["infusion_expected_end"].startswith(
        (start + dt.timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M"))
    audited = db.execute("SELECT actor FROM audit_log WHERE action = "
                         "'care_plan.set_prescribed_infusion_rate' AND patient_id = %s",
                         (pid,)).fetchall()
    db.commit()
    assert audited == [("clinician1",)]
    # Pump running but only 15 mL in after 4 h (40 mL expected): the stall rule fires.
    store(db, pid, clock.now - dt.timedelta(minutes=1), device="pump-1", pump_state=0,
          infusion_volume_infused=15, infusion_rate=10)
    changes = evaluate_after_commit(db, [pid], clock.now)
    assert "infusion_stalled" in {c.kind for c in changes}
    record = app_client.get(f"/api/patients/{pid}/record", headers=doctor).json()
    assert round(record["infusion_expected_ml"]) == 40
    page = app_client.get(f"/patients/{pid}", headers=doctor).text
    assert "expected 40 mL · actual 15 mL" in page


def test_an_alert_raised_on_a_partial_score_says_so(app_client, staff, admit, db,
                                                     clock) -> None:
    h = staff(Role.HUB_NURSE).headers
    pid = admit()
    store(db, pid, clock.now - dt.timedelta(minutes=1), spo2=90, pulse=135)  # partial 6
    evaluate_after_commit(db, [pid], clock.now)
    items = app_client.get("/api/alerts", headers=h, params={"patient_id": pid}).json()["items"]
    news2 = next(a for a in items if a["kind"] == "news2")
    assert news2["partial"] is True
    queue = app_client.get("/alerts", headers=h).text
    assert "incomplete — full set due" in queue
