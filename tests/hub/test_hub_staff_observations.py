"""Observations entered by hub staff on a patient's behalf, on a real database: stored and
converted like device readings, attributed to a staff device and a person, audited,
announced, scored and alerted; refused with problem details naming the field and value."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg
import pytest

from ward.db import channels, registry
from ward.domain.patients import Patient
from ward.hub.auth import Role

PROBLEM = "application/problem+json"


def url(pid: int) -> str:
    return f"/api/patients/{pid}/observations"


def count(db: psycopg.Connection[Any], sql: str, *params: object) -> int:
    row = db.execute(sql, params).fetchone()
    db.commit()
    assert row is not None
    return int(row[0])


def test_stored_converted_attributed_audited_and_announced(app_client, staff, admit, db, db_url,
                                                          clock):
    nurse = staff(Role.HUB_NURSE)
    admitted_at = clock.now - dt.timedelta(days=2)
    pid = admit(at=admitted_at)
    with psycopg.connect(db_url, autocommit=True) as listener:
        channels.listen(listener, channels.EVENTS)
        response = app_client.post(url(pid), headers=nurse.headers, json={
            "observations": [{"code": "temperature", "value": 100.4, "unit": "[degF]"},
                             {"code": "resp_rate", "value": 18, "unit": "/min"},
                             {"code": "consciousness", "value": "A"},
                             {"code": "on_oxygen", "value": "air"}],
            "note": "phoned, patient well"})
        assert response.status_code == 201, response.text
        payloads = [json.loads(n.payload) for n in listener.notifies(timeout=5, stop_after=10)
                    if json.loads(n.payload).get("type") == "readings"]
        # Other tests may share the database: look for ours among whatever arrived.
        while {"type": "readings", "patient_ids": [pid]} not in payloads:
            more = [json.loads(n.payload) for n in listener.notifies(timeout=5, stop_after=1)]
            assert more, f"no readings event for patient {pid}: {payloads}"
            payloads += more
    body = response.json()
    assert body["device_id"] == f"staff-{pid}"
    assert body["entered_by"] == nurse.username
    assert body["msg_id"].startswith(f"staff:{nurse.username}:")
    assert dt.datetime.fromisoformat(body["measured_at"]) == clock.now
    temperature = next(r for r in body["readings"] if r["code"] == "temperature")
    assert temperature["value"] == pytest.approx(38.0)
    assert (temperature["unit"], temperature["source_value"], temperature["source_unit"]) == (
        "Cel", 100.4, "[degF]")
    rows = db.execute(
        "SELECT code, value, unit, device_id, msg_id, source_value, source_unit, measured_at "
        "FROM readings WHERE patient_id = %s ORDER BY code", (pid,)).fetchall()
    assert [(r[0], r[2]) for r in rows] == [
        ("consciousness", "{ACVPU}"), ("on_oxygen", "{air:0,oxygen:1}"), ("resp_rate", "/min"),
        ("temperature", "Cel")]
    assert {r[3] for r in rows} == {f"staff-{pid}"}
    assert {r[4] for r in rows} == {body["msg_id"]}
    assert rows[3][1] == pytest.approx(38.0)
    assert (rows[3][5], rows[3][6]) == (100.4, "[degF]")
    assert {r[7] for r in rows} == {clock.now}
    # The virtual device: registered as a home hub and assigned from the admission.
    device = registry.device_directory(db, [f"staff-{pid}"])[f"staff-{pid}"]
    assert (device.device.kind.value, device.device.model, device.device.active) == (
        "home_hub", "staff entry", True)
    assert [(a.patient_id, a.start, a.end) for a in device.assignments] == [
        (pid, admitted_at, None)]
    audit = db.execute(
        "SELECT a.at, u.username, a.actor, a.entity_id, a.detail FROM audit_log a "
        "JOIN users u ON u.id = a.user_id "
        "WHERE a.action = 'create' AND a.entity = 'observations' AND a.patient_id = %s",
        (pid,)).fetchall()
    db.commit()
    assert len(audit) == 1
    at, username, actor, entity_id, detail = audit[0]
    assert (at, username, actor, entity_id) == (clock.now, nurse.username, nurse.username,
                                                body["msg_id"])
    assert detail["note"] == "phoned, patient well"
    assert {o["code"] for o in detail["observations"]} == {
        "temperature", "resp_rate", "consciousness", "on_oxygen"}
    # A second entry reuses the device and its assignment.
    clock.advance(minutes=30)
    again = app_client.post(url(pid), headers=nurse.headers, json={
        "observations": [{"code": "pulse", "value": 72, "unit": "bpm"},
                         {"code": "temperature", "value": 99.5, "unit": "°F"}]})
    assert again.status_code == 201, again.text
    assert again.json()["readings"][1]["value"] == pytest.approx(37.5)
    assert count(db, "SELECT count(*) FROM device_assignments") == 1


def test_high_respiration_rate_and_new_confusion_raise_the_news2_alert(app_client, staff,
                                                                       admit, db, clock):
    clinician = staff(Role.CLINICIAN)
    pid = admit()
    response = app_client.post(url(pid), headers=clinician.headers, json={
        "observations": [{"code": "resp_rate", "value": 26, "unit": "/min"},
                         {"code": "consciousness", "value": "C"}]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["evaluated"] is True
    score = body["score"]
    assert score["sub_scores"]["resp_rate"] == 3
    assert score["sub_scores"]["consciousness"] == 3
    assert (score["total"], score["risk"], score["complete"]) == (6, "medium", False)
    kinds = {c["kind"]: c for c in body["alert_changes"]}
    assert kinds["news2"]["state"] == "raised"
    assert kinds["news2"]["severity"] == "medium"
    alerts = db.execute("SELECT kind, state FROM alerts WHERE patient_id = %s",
                        (pid,)).fetchall()
    db.commit()
    assert ("news2", "raised") in alerts
    assert count(db, "SELECT count(*) FROM scores WHERE patient_id = %s AND total = 6", pid) == 1
    # The patient's record shows the staff-entered values and the score.
    record = app_client.get(f"/api/patients/{pid}/record", headers=clinician.headers).json()
    assert record["latest"]["resp_rate"]["value"] == 26
    assert record["score"]["total"] == 6


def test_roles(app_client, staff, admit, db):
    pid = admit()
    entry = {"observations": [{"code": "resp_rate", "value": 16}]}
    anonymous = app_client.post(url(pid), json=entry)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == PROBLEM
    admin = app_client.post(url(pid), headers=staff(Role.ADMIN).headers, json=entry)
    assert admin.status_code == 403
    assert admin.headers["content-type"] == PROBLEM
    assert count(db, "SELECT count(*) FROM readings") == 0
    assert app_client.post(url(pid), headers=staff(Role.HUB_NURSE).headers,
                           json=entry).status_code == 201


def test_refused_for_a_patient_not_admitted_or_unknown(app_client, staff, db):
    nurse = staff(Role.HUB_NURSE)
    patient = registry.add_patient(db, Patient("9434765919", "Mary", "Seacole",
                                               dt.date(1940, 5, 1)))
    db.commit()
    entry = {"observations": [{"code": "resp_rate", "value": 16}]}
    refused = app_client.post(url(patient.id or 0), headers=nurse.headers, json=entry)
    assert refused.status_code == 409
    assert refused.headers["content-type"] == PROBLEM
    assert "not currently admitted" in refused.json()["detail"]
    assert app_client.post(url(999_999), headers=nurse.headers, json=entry).status_code == 404
    assert count(db, "SELECT count(*) FROM readings") == 0
    assert count(db, "SELECT count(*) FROM devices") == 0


@pytest.mark.parametrize(("entry", "loc", "kind", "value", "mentions"), [
    ({"observations": [{"code": "resp_rate", "value": 200, "unit": "/min"}]},
     ["body", "observations", "0", "value"], "implausible_value", 200, "200"),
    ({"observations": [{"code": "pulse", "value": 70}, {"code": "temperature", "value": 120,
                                                         "unit": "Cel"}]},
     ["body", "observations", "1", "value"], "implausible_value", 120, "120"),
    ({"observations": [{"code": "heart_sounds", "value": 1}]},
     ["body", "observations", "0", "code"], "unknown_code", "heart_sounds", "heart_sounds"),
    ({"observations": [{"code": "temperature", "value": 37, "unit": "K"}]},
     ["body", "observations", "0", "unit"], "unknown_unit", "K", "'K'"),
    ({"observations": [{"code": "consciousness", "value": "X"}]},
     ["body", "observations", "0", "value"], "unknown_label", "X", "'X'"),
    ({"observations": [{"code": "pulse", "value": "72"}]},
     ["body", "observations", "0", "value"], "schema_invalid", "72", "'72'"),
    ({"observations": [{"code": "pulse", "value": 70}, {"code": "pulse", "value": 72}]},
     ["body", "observations", "1", "code"], "repeated_reading", "pulse", "twice"),
    ({"measured_at": "2025-03-10T09:10:00+00:00",
      "observations": [{"code": "pulse", "value": 70}]},
     ["body", "measured_at"], "future_timestamp", "2025-03-10T09:10:00+00:00", "future"),
    ({"measured_at": "2025-03-01T09:00:00+00:00",
      "observations": [{"code": "pulse", "value": 70}]},
     ["body", "measured_at"], "before_admission", "2025-03-01T09:00:00+00:00", "admission"),
])
def test_bad_input_is_422_naming_field_and_value(app_client, staff, admit, db, entry, loc, kind,
                                                 value, mentions):
    pid = admit()  # admitted two days before the test clock (2025-03-10 09:00 UTC)
    response = app_client.post(url(pid), headers=staff(Role.HUB_NURSE).headers, json=entry)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "/api/problems/invalid"
    assert mentions in problem["detail"]
    assert {"loc": loc, "type": kind, "value": value} == {
        k: problem["errors"][0][k] for k in ("loc", "type", "value")}
    assert count(db, "SELECT count(*) FROM readings") == 0
    assert count(db, "SELECT count(*) FROM devices") == 0


def test_every_problem_is_reported_at_once_and_malformed_bodies_are_refused(app_client, staff,
                                                                           admit):
    nurse = staff(Role.HUB_NURSE)
    pid = admit()
    # 1e400 is valid JSON that parses to infinity: refused, and echoed as text.
    both = app_client.post(url(pid), headers={**nurse.headers,
                                              "Content-Type": "application/json"},
                           content=b'{"observations": [{"code": "spo2", "value": 140}, '
                                   b'{"code": "nope", "value": 1}, '
                                   b'{"code": "pulse", "value": 1e400}]}')
    assert both.status_code == 422
    errors = both.json()["errors"]
    assert [e["type"] for e in errors] == ["implausible_value", "unknown_code",
                                           "implausible_value"]
    assert errors[2]["value"] == "inf"
    for bad in ({"observations": []}, {"observations": [{"code": "pulse", "value": True}]},
                {"observations": [{"code": "pulse", "value": 70}],
                 "measured_at": "2025-03-10T09:00:00"},
                {"observations": [{"code": "pulse", "value": 70}], "extra": 1}):
        refused = app_client.post(url(pid), headers=nurse.headers, json=bad)
        assert refused.status_code == 422, bad
        assert refused.headers["content-type"] == PROBLEM


def test_a_time_within_the_gateway_tolerance_is_accepted(app_client, staff, admit, clock):
    pid = admit()
    ahead = (clock.now + dt.timedelta(minutes=4)).isoformat()
    response = app_client.post(url(pid), headers=staff(Role.HUB_NURSE).headers, json={
        "measured_at": ahead, "observations": [{"code": "resp_rate", "value": 14}]})
    assert response.status_code == 201, response.text
    earlier = app_client.post(url(pid), headers=staff(Role.HUB_NURSE).headers, json={
        "measured_at": "2025-03-10T10:30:00+02:00",  # 08:30 UTC, half an hour ago
        "observations": [{"code": "resp_rate", "value": 15}]})
    assert earlier.status_code == 201, earlier.text
    assert earlier.json()["measured_at"].startswith("2025-03-10T08:30:00")
    assert earlier.json()["late"] is True


def test_a_duplicate_is_409_naming_it_and_nothing_changes(app_client, staff, admit, db):
    nurse = staff(Role.HUB_NURSE)
    pid = admit()
    at = "2025-03-10T08:45:00+00:00"
    first = app_client.post(url(pid), headers=nurse.headers, json={
        "measured_at": at, "observations": [{"code": "resp_rate", "value": 18}]})
    assert first.status_code == 201, first.text
    audits = count(db, "SELECT count(*) FROM audit_log WHERE entity = 'observations'")
    # The same value again (the same slot): an exact duplicate, as today.
    again = app_client.post(url(pid), headers=nurse.headers, json={
        "measured_at": at, "observations": [{"code": "pulse", "value": 80},
                                            {"code": "resp_rate", "value": 18}]})
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    problem = again.json()
    assert problem["type"] == "/api/problems/conflict"
    assert "resp_rate at 2025-03-10T08:45:00+00:00" in problem["detail"]
    assert problem["duplicates"] == [{"code": "resp_rate",
                                      "measured_at": "2025-03-10T08:45:00+00:00"}]
    assert "conflicts" not in problem
    rows = db.execute("SELECT code, value FROM readings WHERE patient_id = %s",
                      (pid,)).fetchall()
    db.commit()
    assert rows == [("resp_rate", 18.0)]
    assert count(db, "SELECT count(*) FROM audit_log WHERE entity = 'observations'") == audits


def test_another_value_in_a_recorded_slot_is_a_409_conflict_and_nothing_of_it_is_stored(
        app_client, staff, admit, db):
    nurse = staff(Role.HUB_NURSE)
    pid = admit()
    at = "2025-03-10T08:45:00+00:00"
    first = app_client.post(url(pid), headers=nurse.headers, json={
        "measured_at": at, "observations": [{"code": "resp_rate", "value": 18},
                                            {"code": "temperature", "value": 37.0}]})
    assert first.status_code == 201, first.text
    first_msg = first.json()["msg_id"]
    audits = count(db, "SELECT count(*) FROM audit_log WHERE entity = 'observations'")
    entries = count(db, "SELECT count(*) FROM staff_entries WHERE patient_id = %s", pid)
    # pulse is new, resp_rate another value, temperature another unit and value (°F sent),
    # consciousness new: the whole entry is refused, so the nurse can correct and resend it.
    again = app_client.post(url(pid), headers=nurse.headers, json={
        "measured_at": at, "observations": [
            {"code": "pulse", "value": 80}, {"code": "resp_rate", "value": 22},
            {"code": "temperature", "value": 100.4, "unit": "°F"},
            {"code": "consciousness", "value": "C"}]})
    assert again.status_code == 409, again.text
    assert again.headers["content-type"] == PROBLEM
    problem = again.json()
    assert problem["type"] == "/api/problems/conflicting-reading"
    assert problem["status"] == 409
    assert problem["duplicates"] == []
    by_code = {c["code"]: c for c in problem["conflicts"]}
    assert set(by_code) == {"resp_rate", "temperature"}
    rr = by_code["resp_rate"]
    assert rr["measured_at"] == at
    assert rr["stored"] == {"value": 18.0, "unit": "/min", "msg_id": first_msg}
    assert rr["sent"] == {"value": 22.0, "unit": "/min", "source_value": None,
                          "source_unit": None}
    # Plain words, in the display zone (08:45 UTC on 10 March is 08:45 GMT).
    assert rr["msg"] == (f"Respiration rate at 10 Mar 2025 08:45:00 is already recorded as "
                         f"18 /min (entered by {nurse.username}); you entered 22 /min. "
                         "Nothing was saved: check the value and the time")
    temp = by_code["temperature"]
    assert temp["stored"]["value"] == pytest.approx(37.0)
    assert temp["sent"]["value"] == pytest.approx(38.0)
    assert temp["sent"]["source_value"] == pytest.approx(100.4)
    assert "you entered 100.4 °F (38 °C)" in temp["msg"]
    assert rr["msg"] in problem["detail"]
    rows = db.execute("SELECT code, value, msg_id FROM readings WHERE patient_id = %s "
                      "ORDER BY code", (pid,)).fetchall()
    db.commit()
    assert rows == [("resp_rate", 18.0, first_msg), ("temperature", 37.0, first_msg)]
    assert count(db, "SELECT count(*) FROM audit_log WHERE entity = 'observations'") == audits
    assert count(db, "SELECT count(*) FROM staff_entries WHERE patient_id = %s", pid) == entries
    # Corrected (another time), it is stored.
    fixed = app_client.post(url(pid), headers=nurse.headers, json={
        "measured_at": "2025-03-10T08:46:00+00:00",
        "observations": [{"code": "resp_rate", "value": 22}]})
    assert fixed.status_code == 201, fixed.text


def test_a_conflict_and_a_duplicate_in_one_entry_answer_the_conflict_naming_both(
        app_client, staff, admit, db):
    nurse = staff(Role.HUB_NURSE)
    pid = admit()
    at = "2025-03-10T08:45:00+00:00"
    assert app_client.post(url(pid), headers=nurse.headers, json={
        "measured_at": at, "observations": [{"code": "resp_rate", "value": 18},
                                            {"code": "consciousness", "value": "A"}]}
                           ).status_code == 201
    again = app_client.post(url(pid), headers=nurse.headers, json={
        "measured_at": at, "observations": [{"code": "resp_rate", "value": 18},
                                            {"code": "consciousness", "value": "C"}]})
    assert again.status_code == 409, again.text
    problem = again.json()
    assert problem["type"] == "/api/problems/conflicting-reading"
    assert problem["duplicates"] == [{"code": "resp_rate", "measured_at": at}]
    [conflict] = problem["conflicts"]
    assert conflict["code"] == "consciousness"
    assert "already recorded as A" in conflict["msg"]
    assert "you entered C." in conflict["msg"]
    row = db.execute("SELECT value FROM readings WHERE patient_id = %s AND code = %s",
                     (pid, "consciousness")).fetchone()
    db.commit()
    assert row == (0.0,)


def test_patient_page_shows_the_form_to_clinical_staff_only(app_client, staff, admit, db):
    pid = admit()
    html = {"Accept": "text/html"}
    page = app_client.get(f"/patients/{pid}", headers={**staff(Role.HUB_NURSE).headers, **html})
    assert page.status_code == 200
    text = page.text
    assert 'id="obs-form"' in text
    assert f'data-patient="{pid}"' in text
    assert 'data-tz="Europe/London"' in text
    # Time defaults to now in Europe/London: 09:00 UTC on 10 March is 09:00 GMT.
    assert 'value="2025-03-10T09:00"' in text
    for name in ("resp_rate", "spo2", "on_oxygen", "systolic_bp", "pulse", "consciousness",
                 "temperature"):
        assert f'name="{name}"' in text
    assert '<option value="C">' in text
    assert "<script>" not in text  # no inline script under the CSP
    # Outside the live panel, so a live update never wipes what a nurse is typing.
    assert text.index('id="obs-form"') < text.index('id="patient-panel"')
    admin_page = app_client.get(f"/patients/{pid}", headers={**staff(Role.ADMIN).headers,
                                                             **html})
    assert admin_page.status_code == 200
    assert 'id="obs-form"' not in admin_page.text


def test_patient_page_shows_who_entered_values_how_and_their_note(app_client, staff, admit, db,
                                                                  clock):
    nurse = staff(Role.HUB_NURSE)
    pid = admit(at=clock.now - dt.timedelta(days=2))
    response = app_client.post(url(pid), headers=nurse.headers, json={
        "observations": [{"code": "resp_rate", "value": 18}, {"code": "consciousness",
                                                             "value": "C"}],
        "method": "visit", "note": "daughter says more muddled since lunch"})
    assert response.status_code == 201, response.text
    assert app_client.post(url(pid), headers=nurse.headers, json={
        "observations": [{"code": "pulse", "value": 80}], "method": "letter"}).status_code == 422
    page = app_client.get(f"/patients/{pid}", headers={**nurse.headers, "Accept": "text/html"})
    assert page.status_code == 200
    start = page.text.index('id="staff-entries"')
    entries = page.text[start:page.text.index("</ul>", start)]
    assert nurse.username in entries
    assert "visit" in entries
    assert "daughter says more muddled since lunch" in entries
    assert "Respiration rate 18" in entries
    row = db.execute("SELECT entered_by, method, note FROM staff_entries WHERE patient_id = %s",
                     (pid,)).fetchone()
    db.commit()
    assert row == (nurse.username, "visit", "daughter says more muddled since lunch")
