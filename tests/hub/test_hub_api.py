"""The ward API on a real database: admissions, devices, alerts, care plans, ward view, FHIR,
reports, and RFC 9457 problem details for every error (including junk from Hypothesis)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ward.db.store import ReadingStore
from ward.domain.readings import Reading
from ward.hub.auth import Role

PROBLEM = "application/problem+json"


def store(db: psycopg.Connection[Any], pid: int, at: dt.datetime, device: str = "dev-a",
          **values: float) -> None:
    ReadingStore().write(db, [Reading(device, code, at, value, "", pid, at)
                              for code, value in values.items()])
    db.commit()


def test_referral_accept_discharge_and_decline(app_client, staff, db):
    nurse = staff(Role.HUB_NURSE)
    h = staff(Role.CLINICIAN).headers  # a nurse enters referrals; a clinician decides
    pid = app_client.post("/api/patients", headers=nurse.headers, json={
        "nhs_number": "9434765919", "given_name": "Mary", "family_name": "Seacole",
        "date_of_birth": "1940-05-01"}).json()["id"]
    bad = app_client.post("/api/referrals", headers=h, json={
        "patient_id": pid, "pathway": "step_down", "source": "gp"})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == PROBLEM
    ref = app_client.post("/api/referrals", headers=nurse.headers, json={
        "patient_id": pid, "pathway": "step_up", "source": "111", "reason": "cellulitis"})
    assert ref.status_code == 201, ref.text
    aid = ref.json()["id"]
    again = app_client.post("/api/referrals", headers=h, json={
        "patient_id": pid, "pathway": "step_up", "source": "gp"})
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert app_client.post(f"/api/admissions/{aid}/accept", headers=h, json={}).json()[
        "status"] == "admitted"
    assert app_client.post(f"/api/admissions/{aid}/accept", headers=h,
                           json={}).status_code == 409
    done = app_client.post(f"/api/admissions/{aid}/discharge", headers=h,
                           json={"outcome": "usual_residence"})
    assert done.json()["status"] == "discharged"
    second = app_client.post("/api/referrals", headers=h, json={
        "patient_id": pid, "pathway": "step_down", "source": "hospital_ward"}).json()
    no_reason = app_client.post(f"/api/admissions/{second['id']}/decline", headers=h,
                                json={"reason": ""})
    assert no_reason.status_code == 422
    declined = app_client.post(f"/api/admissions/{second['id']}/decline", headers=h,
                               json={"reason": "no capacity"})
    assert declined.json()["decision_reason"] == "no capacity"
    listing = app_client.get("/api/admissions", headers=h,
                             params={"patient_id": pid, "limit": 1, "offset": 1}).json()
    assert listing["total"] == 2
    assert len(listing["items"]) == 1
    audited = db.execute("SELECT action FROM audit_log WHERE patient_id = %s ORDER BY id",
                         (pid,)).fetchall()
    assert [a for (a,) in audited if a in {"refer", "accept", "discharge", "decline"}] == [
        "refer", "accept", "discharge", "refer", "decline"]


def test_devices_register_assign_overlap_unassign(app_client, staff, admit, clock):
    h = staff(Role.HUB_NURSE).headers
    one, two = admit(), admit(given="Bob")
    assert app_client.post("/api/devices", headers=h, json={
        "id": "ox-1", "kind": "pulse_oximeter"}).status_code == 201
    assert app_client.post("/api/devices", headers=h, json={
        "id": "ox-1", "kind": "pulse_oximeter"}).status_code == 409
    assigned = app_client.post("/api/devices/ox-1/assignments", headers=h,
                               json={"patient_id": one})
    assert assigned.json()["current_assignment"]["patient_id"] == one
    clash = app_client.post("/api/devices/ox-1/assignments", headers=h,
                            json={"patient_id": two})
    assert clash.status_code == 409
    assert clash.headers["content-type"] == PROBLEM
    clock.advance(minutes=30)
    off = app_client.post("/api/devices/ox-1/unassign", headers=h, json={})
    assert off.status_code == 200, off.text
    assert off.json()["current_assignment"] is None
    assert app_client.post("/api/devices/ox-1/assignments", headers=h,
                           json={"patient_id": two}).status_code == 201
    status = app_client.get("/api/devices/ox-1/status", headers=h).json()
    assert status["online"] is None
    page = app_client.get("/api/devices", headers=h, params={"assigned": True}).json()
    assert [d["id"] for d in page["items"]] == ["ox-1"]


def _raise_alert(db: psycopg.Connection[Any], pid: int, at: dt.datetime, severity: str = "high",
                 kind: str = "news2") -> int:
    row = db.execute(
        "INSERT INTO alerts (patient_id, kind, severity, state, summary, raised_at, updated_at, "
        "next_escalation_at) VALUES (%s, %s, %s, 'raised', 'NEWS2 8', %s, %s, %s) RETURNING id",
        (pid, kind, severity, at, at, at + dt.timedelta(minutes=30))).fetchone()
    db.commit()
    assert row is not None
    return int(row[0])


def test_alert_queue_order_and_actions(app_client, staff, admit, db, clock):
    h = staff(Role.HUB_NURSE).headers
    pid = admit()
    older_high = _raise_alert(db, pid, clock.now - dt.timedelta(minutes=5))
    # one open episode per patient: the second alert is another patient's
    newer_low = _raise_alert(db, admit(given="Other"), clock.now, severity="low",
                             kind="spo2_below_target")
    queue = app_client.get("/api/alerts", headers=h).json()
    assert [a["id"] for a in queue["items"]] == [older_high, newer_low]
    assert queue["items"][0]["seconds_to_escalation"] == 25 * 60
    acked = app_client.post(f"/api/alerts/{older_high}/acknowledge", headers=h)
    assert acked.status_code == 200, acked.text
    assert acked.json()["acknowledged_by"] == "hubnurse1"
    assert app_client.post(f"/api/alerts/{older_high}/acknowledge",
                           headers=h).status_code == 409
    snoozed = app_client.post(f"/api/alerts/{newer_low}/snooze", headers=h,
                              json={"minutes": 30})
    assert snoozed.status_code == 200, snoozed.text
    assert app_client.post(f"/api/alerts/{newer_low}/snooze", headers=h,
                           json={"minutes": 30, "until": "2030-01-01T00:00:00Z"}
                           ).status_code == 422
    assert app_client.post(f"/api/alerts/{older_high}/resolve", headers=h,
                           json={}).status_code == 422
    done = app_client.post(f"/api/alerts/{older_high}/resolve", headers=h,
                           json={"reason": "reviewed by GP, stable"})
    assert done.json()["state"] == "resolved"
    assert app_client.get("/api/alerts/999999", headers=h).status_code == 404
    detail = app_client.get(f"/api/alerts/{older_high}", headers=h).json()
    assert [e["event"] for e in detail["events"]][-1:] != []
    assert detail["findings"] == []  # inserted by hand, without findings


def test_care_plan_scale_2_by_clinician(app_client, staff, admit):
    pid = admit()
    doc = staff(Role.CLINICIAN).headers
    plan = app_client.put(f"/api/patients/{pid}/care-plan/spo2-scale", headers=doc,
                          json={"scale": 2, "reason": "hypercapnic respiratory failure"})
    assert plan.status_code == 200, plan.text
    assert plan.json()["spo2_scale"] == 2
    assert plan.json()["spo2_scale_set_by"] == "clinician1"
    assert plan.json()["spo2_target_low"] == 88
    th = app_client.put(f"/api/patients/{pid}/care-plan/thresholds/pulse", headers=doc,
                        json={"low": 40, "high": 120, "reason": "on beta blockers"})
    assert th.json()["thresholds"][0]["high"] == 120
    bad = app_client.put(f"/api/patients/{pid}/care-plan/thresholds/pulse", headers=doc,
                         json={"low": 130, "high": 120, "reason": "x"})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == PROBLEM
    assert app_client.put(f"/api/patients/{pid}/care-plan/thresholds/nonsense", headers=doc,
                          json={"reason": "x"}).status_code == 422


def test_ward_view_sorted_by_acuity_with_partial_and_overdue(app_client, staff, admit, db,
                                                              clock):
    h = staff(Role.HUB_NURSE).headers
    calm = admit(given="Calm")
    sick = admit(given="Sick")
    silent = admit(given="Silent")
    now = clock.now
    store(db, calm, now - dt.timedelta(minutes=10), spo2=97, pulse=95, resp_rate=16,
          temperature=36.8, systolic_bp=125, on_oxygen=0, consciousness=0)
    # Only oximeter values, SpO2 90 (3) and pulse 135 (3): a partial 6, medium.
    store(db, sick, now - dt.timedelta(minutes=3), device="dev-b", spo2=90, pulse=135)
    ward = app_client.get("/api/ward", headers=h).json()
    order = [r["patient_id"] for r in ward["rows"]]
    assert order == [sick, silent, calm]
    rows = {r["patient_id"]: r for r in ward["rows"]}
    assert rows[sick]["score"]["total"] == 6
    assert rows[sick]["risk"] == "medium"
    assert rows[sick]["score"]["complete"] is False
    assert set(rows[sick]["score"]["missing"]) >= {"resp_rate", "temperature"}
    assert rows[calm]["score"]["complete"] is True
    assert rows[calm]["overdue"] is False
    assert rows[silent]["score"] is None
    assert rows[silent]["overdue"] is True
    assert ward["admitted"] == 3
    assert ward["occupancy_pct"] == 30.0
    clock.advance(hours=5)  # NEWS2 1 is 4-6-hourly: overdue after 4 h (strict end)
    h = staff(Role.CLINICIAN).headers  # the nurse's 1-hour token has expired meanwhile
    assert app_client.get("/api/ward", headers=h).json()["rows"][-1]["overdue"] is True
    only = app_client.get("/api/ward", headers=h, params={"patient_id": [calm]}).json()
    assert [r["patient_id"] for r in only["rows"]] == [calm]


def test_fhir_observations_validate_against_r4_models(app_client, staff, admit, db, clock):
    h = staff(Role.HUB_NURSE).headers
    pid = admit()
    at = clock.now - dt.timedelta(minutes=1)
    store(db, pid, at, spo2=95, pulse=101, temperature=38.3, on_oxygen=0)
    db.execute(
        "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
        "spo2_scale, sub_scores, missing, evidence) VALUES (%s, %s, 3, 'low', false, false, 1, "
        "%s, %s, %s)", (pid, at, json.dumps({"spo2": 1, "pulse": 1, "temperature": 1,
                                              "air_or_oxygen": 0}),
                        ["resp_rate", "systolic_bp", "consciousness"],
                        json.dumps([{"device_id": "dev-a", "code": "spo2",
                                     "measured_at": at.isoformat(), "value": 95}])))
    db.commit()
    response = app_client.get("/api/fhir/Observation", headers=h,
                              params={"patient": f"Patient/{pid}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(response.json())
    assert bundle.total == 4  # 3 vital signs with LOINC codes + 1 NEWS2 (on_oxygen has none)
    observations = [Observation.model_validate(e.resource.model_dump()) for e in bundle.entry]
    news2 = next(o for o in observations if o.code.coding[0].code == "1104051000000101")
    # Partial: a lower bound, machine-readably (issue 11.1), never the plain integer.
    assert news2.valueInteger is None
    assert news2.valueQuantity.value == 3
    assert news2.valueQuantity.comparator == ">="
    assert "incomplete 4/7" in news2.interpretation[0].text
    codes = {c.code.coding[0].code: c for c in news2.component}
    assert codes["1104311000000102"].valueInteger == 1  # SpO2 scale 1
    assert codes["1104301000000104"].dataAbsentReason is not None  # resp rate missing
    spo2 = next(o for o in observations if o.code.coding[0].code == "59408-5")
    assert spo2.valueQuantity.system == "http://unitsofmeasure.org"
    assert spo2.valueQuantity.code == "%"
    assert news2.hasMember[0].reference == f"Observation/{spo2.id}"
    only = app_client.get("/api/fhir/Observation", headers=h, params={
        "patient": pid, "code": "http://loinc.org|8867-4", "date": "ge2000-01-01"}).json()
    assert only["total"] == 1
    assert app_client.get("/api/fhir/Observation", headers=h,
                          params={"patient": "x"}).status_code == 422


def test_reports_occupancy_outcomes_and_csv(app_client, staff, admit, db, clock):
    h = staff(Role.HUB_NURSE).headers
    first = admit(at=clock.now - dt.timedelta(days=5))
    admit(at=clock.now - dt.timedelta(days=1))
    db.execute("UPDATE admissions SET status = 'discharged', outcome = 'usual_residence', "
               "discharged_at = %s WHERE patient_id = %s",
               (clock.now - dt.timedelta(days=2), first))
    db.commit()
    start = (clock.now - dt.timedelta(days=7)).date().isoformat()
    occupancy = app_client.get("/api/reports/occupancy", headers=h,
                               params={"start": start}).json()
    assert max(d["occupied"] for d in occupancy) == 1
    assert occupancy[-1]["occupied"] == 1
    assert occupancy[-1]["beds"] == 10
    outcomes = app_client.get("/api/reports/outcomes", headers=h, params={"start": start}).json()
    assert outcomes["discharged"] == 1
    assert outcomes["remained_at_home_pct"] == 100.0
    assert outcomes["length_of_stay_mean_days"] == 3.0
    assert outcomes["admitted_step_up"] == 2
    csv_text = app_client.get("/api/reports/outcomes.csv", headers=h,
                              params={"start": start}).text
    assert "remained_at_home_pct,100.0" in csv_text
    assert app_client.get("/api/reports/occupancy.csv", headers=h).text.startswith(
        "date,occupied,beds,occupancy_pct")
    assert app_client.get("/api/reports/outcomes", headers=h,
                          params={"start": "2025-01-02", "end": "2025-01-01"}).status_code == 422


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/nowhere", 404),
    ("DELETE", "/api/ward", 405),
    ("GET", "/api/patients/abc", 422),
    ("GET", "/api/patients/99999999999999999999999", 422),
    ("GET", "/api/patients/424242", 404),
    ("GET", "/api/patients?limit=0", 422),
])
def test_errors_are_problem_details(app_client, staff, method, path, status):
    response = app_client.request(method, path, headers=staff(Role.HUB_NURSE).headers)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("/api/problems/")


# Only what JSON can carry (httpx refuses NaN/inf before any request is made).
JUNK = st.one_of(st.text(max_size=40), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.none(), st.booleans(),
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                       st.integers(), max_size=3))
POSTS = ["/api/patients", "/api/referrals", "/api/devices", "/api/users",
         "/api/admissions/1/decline", "/api/alerts/1/snooze",
         "/api/patients/1/care-plan/spo2-scale", "/api/patients/1/care-plan/thresholds/pulse"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(POSTS), body=st.dictionaries(
    st.sampled_from(["nhs_number", "patient_id", "pathway", "source", "id", "kind", "reason",
                     "scale", "low", "high", "minutes", "until", "username", "role",
                     "password", "given_name", "family_name", "date_of_birth"]),
    JUNK, max_size=6), segment=st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_categories=("Cc", "Cs"),
                  exclude_characters="/?#%\\"),
    max_size=20))
def test_junk_input_never_yields_a_500(app_client, staff, path, body, segment):
    headers = {**staff(Role.ADMIN).headers}
    for token_holder in (headers, staff(Role.CLINICIAN).headers):
        method = "PUT" if "care-plan" in path else "POST"
        response = app_client.request(method, path, json=body, headers=token_holder)
        assert response.status_code < 500, (path, body, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"] == PROBLEM
    response = app_client.get("/api/patients/" + segment, headers=headers,
                              params={"q": segment, "limit": segment or "1"})
    assert response.status_code < 500, (segment, response.text)


def test_fhir_search_without_a_date_covers_the_default_window(app_client, staff, admit, db,
                                                               clock):
    h = staff(Role.HUB_NURSE).headers
    pid = admit(at=clock.now - dt.timedelta(days=60))
    store(db, pid, clock.now - dt.timedelta(days=45), pulse=90)
    store(db, pid, clock.now - dt.timedelta(minutes=5), pulse=95)
    db.commit()
    recent = app_client.get("/api/fhir/Observation", headers=h, params={"patient": pid}).json()
    assert recent["total"] == 1  # the 45-day-old reading is outside the default 30 days
    everything = app_client.get("/api/fhir/Observation", headers=h, params={
        "patient": pid, "date": "ge2000-01-01"}).json()
    assert everything["total"] == 2
    upper_only = app_client.get("/api/fhir/Observation", headers=h, params={
        "patient": pid, "date": "le2100-01-01"}).json()
    assert upper_only["total"] == 1  # an upper bound alone still gets the default window
