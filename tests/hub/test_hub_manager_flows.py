"""The ward manager's flows through the API and the pages: refer, triage (capacity, time to
decision), admit with a kit in one transaction, discharge with a follow-up call (a worklist
task); the 2-hour clock only for 2-hour referrals; roles."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ward.db import registry
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.domain.patients import Patient, ReferralSource, Urgency
from ward.hub.app import create_app
from ward.hub.auth import Role

T0 = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)
DETAILS = {"address": "1 Mill Lane, Leeds LS1 1AA", "phone": "0113 496 0000",
           "next_of_kin": "Tom Seacole (son) 07700 900123", "gp_practice": "Mill Lane Surgery"}


def _patient(db: Any, nhs: str, family: str = "Seacole") -> int:
    p = registry.add_patient(db, Patient(nhs, "Mary", family, dt.date(1940, 5, 1)))
    db.commit()
    assert p.id is not None
    return p.id


def _refer(client: TestClient, headers: dict[str, str], pid: int, **extra: Any) -> int:
    body = {"patient_id": pid, "pathway": "step_up", "source": "gp", **extra}
    response = client.post("/api/referrals", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _device(db: Any, device_id: str, *, active: bool = True) -> None:
    registry.add_device(db, Device(device_id, DeviceKind.PULSE_OXIMETER, "test", active))
    db.commit()


def _admit_body(db: Any, pid: int, devices: list[str], **extra: Any) -> dict[str, Any]:
    nhs, given, family, born = db.execute(
        "SELECT nhs_number, given_name, family_name, date_of_birth FROM patients "
        "WHERE id = %s", (pid,)).fetchone()
    return {"patient": {"nhs_number": nhs, "given_name": given, "family_name": family,
                        "date_of_birth": born.isoformat(), **DETAILS},
            "device_ids": devices, **extra}


def test_a_self_referral_keeps_urgency_observations_and_caller(app_client, staff,
                                                                nhs_number, db):
    nurse = staff(Role.HUB_NURSE)
    pid = _patient(db, nhs_number())
    aid = _refer(app_client, nurse.headers, pid, source="self_carer", urgency="two_hour",
                 reason="breathless", observations={"spo2": 91, "resp_rate": 24},
                 referrer="daughter, 07700 900456")
    got = app_client.get(f"/api/admissions/{aid}", headers=nurse.headers).json()
    assert got["source"] == "self_carer"
    assert got["pathway"] == "step_up"
    assert got["urgency"] == "two_hour"
    assert got["referral_observations"] == {"spo2": 91.0, "resp_rate": 24.0}
    assert got["referrer"] == "daughter, 07700 900456"
    assert got["referred_by"] == nurse.username
    bad = app_client.post("/api/referrals", headers=nurse.headers, json={
        "patient_id": pid, "pathway": "step_up", "source": "gp",
        "observations": {"not_a_vital": 1}})
    assert bad.status_code == 422


def test_time_to_decision_is_stored_and_exposed_for_reports(app_client, staff, nhs_number,
                                                            db, clock):
    nurse, doctor = staff(Role.HUB_NURSE), staff(Role.CLINICIAN)
    aid = _refer(app_client, nurse.headers, _patient(db, nhs_number()),
                 referred_at=(T0 - dt.timedelta(minutes=47)).isoformat())
    declined = app_client.post(f"/api/admissions/{aid}/decline", headers=doctor.headers,
                               json={"reason": "needs a hospital bed"}).json()
    assert declined["decided_by"] == doctor.username
    assert declined["time_to_decision"] == "PT47M"
    row = db.execute("SELECT decision, seconds_to_decision, decided_by FROM "
                     "referral_decisions WHERE admission_id = %s", (aid,)).fetchone()
    assert row == ("declined", 47 * 60, doctor.username)


def test_accepting_says_when_the_ward_is_full(hub_settings, clock, staff, nhs_number, db):
    app = create_app(hub_settings.model_copy(update={"ward_beds": 1}), clock=clock,
                     listen=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        from ward.hub.auth import create_user
        create_user(db, "doc", "correct horse battery", role=Role.CLINICIAN, display_name="D")
        db.commit()
        token = client.post("/api/auth/token", json={
            "username": "doc", "password": "correct horse battery"}).json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}
        first = _refer(client, h, _patient(db, nhs_number(), "One"))
        second = _refer(client, h, _patient(db, nhs_number(), "Two"))
        assert client.post(f"/api/admissions/{first}/accept", headers=h, json={}
                           ).status_code == 200
        full = client.post(f"/api/admissions/{second}/accept", headers=h, json={})
        assert full.status_code == 409
        assert "the ward is full: 1 of 1 beds" in full.json()["detail"]
        page = client.get("/referrals", headers=h)
        assert "the ward is full" in page.text
        assert f'href="/referrals/{second}/admit"' not in page.text
        assert db.execute("SELECT status FROM admissions WHERE id = %s",
                          (second,)).fetchone() == ("referred",)


def test_admission_is_one_transaction(app_client, staff, nhs_number, db, unique):
    nurse, doctor = staff(Role.HUB_NURSE), staff(Role.CLINICIAN)
    pid = _patient(db, nhs_number())
    other = _patient(db, nhs_number(), "Other")
    aid = _refer(app_client, nurse.headers, pid)
    ok, off, taken = f"ox-{unique}", f"off-{unique}", f"taken-{unique}"
    _device(db, ok)
    _device(db, off, active=False)
    _device(db, taken)
    registry.assign_device(db, Assignment(taken, other, T0 - dt.timedelta(days=1)))
    db.commit()
    kit = app_client.get(f"/api/admissions/{aid}/kit", headers=doctor.headers,
                         params={"device_id": [ok, off, taken, "nope"]}).json()
    assert [d["assignable"] for d in kit] == [True, False, False, False]
    assert [d["refusal"] for d in kit[1:]] == [
        f"device {off!r} is deactivated",
        f"device {taken!r} is already assigned to another patient",
        "device 'nope' is not registered"]
    plan = {"spo2_scale": 2, "ceiling_of_care": "not_for_conveyance", "reason": "COPD"}
    for devices, message in (([ok, taken], "already assigned to another patient"),
                             ([ok, "nope"], "is not registered")):
        refused = app_client.post(f"/api/admissions/{aid}/admit", headers=doctor.headers,
                                  json=_admit_body(db, pid, devices, care_plan=plan))
        assert refused.status_code == 409, refused.text
        assert message in refused.json()["detail"]
    # Nothing of the refused admissions stayed: still a referral, no details, no kit, no plan.
    assert db.execute("SELECT a.status, p.address FROM admissions a JOIN patients p "
                      "ON p.id = a.patient_id WHERE a.id = %s", (aid,)).fetchone() == (
        "referred", None)
    assert db.execute("SELECT count(*) FROM device_assignments WHERE patient_id = %s",
                      (pid,)).fetchone() == (0,)
    bad_nhs = _admit_body(db, pid, [ok])
    bad_nhs["patient"]["nhs_number"] = "9434765918"
    invalid = app_client.post(f"/api/admissions/{aid}/admit", headers=doctor.headers,
                              json=bad_nhs)
    assert invalid.status_code == 422
    assert "check digit" in invalid.json()["detail"]
    done = app_client.post(f"/api/admissions/{aid}/admit", headers=doctor.headers,
                           json=_admit_body(db, pid, [ok], care_plan=plan))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "admitted"
    assert db.execute("SELECT address, phone, next_of_kin, gp_practice FROM patients "
                      "WHERE id = %s", (pid,)).fetchone() == tuple(DETAILS.values())
    assert db.execute("SELECT spo2_scale, ceiling_of_care FROM care_plans "
                      "WHERE patient_id = %s", (pid,)).fetchone() == (2, "not_for_conveyance")
    assert db.execute("SELECT count(*) FROM device_assignments WHERE patient_id = %s "
                      "AND upper_inf(during)", (pid,)).fetchone() == (1,)


def test_discharge_unassigns_the_kit_and_books_a_follow_up_call(app_client, staff,
                                                                nhs_number, db, unique,
                                                                clock):
    nurse, admin = staff(Role.HUB_NURSE), staff(Role.ADMIN)
    pid = _patient(db, nhs_number())
    aid = _refer(app_client, nurse.headers, pid)
    kit = [f"ox-{unique}", f"hub-{unique}"]
    for d in kit:
        _device(db, d)
    # An admin (the ward manager) admits, but may not set the care plan.
    with_plan = app_client.post(f"/api/admissions/{aid}/admit", headers=admin.headers,
                                json=_admit_body(db, pid, kit, care_plan={
                                    "spo2_scale": 1, "reason": "x"}))
    assert with_plan.status_code == 403
    assert app_client.post(f"/api/admissions/{aid}/admit", headers=admin.headers,
                           json=_admit_body(db, pid, kit)).status_code == 200
    clock.advance(minutes=50)  # within the bearer token's hour
    out = app_client.post(f"/api/admissions/{aid}/discharge", headers=admin.headers,
                          json={"outcome": "usual_residence", "note": "recovered"})
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["devices_to_collect"] == sorted(kit)
    assert body["discharge_note"] == "recovered"
    # The follow-up call is the worklist's task (one per discharge), from 1 day to 2 days on.
    assert dt.datetime.fromisoformat(body["follow_up_not_before"]) == clock.now + dt.timedelta(days=1)
    assert dt.datetime.fromisoformat(body["follow_up_due_at"]) == clock.now + dt.timedelta(days=2)
    assert db.execute("SELECT count(*) FROM device_assignments WHERE patient_id = %s "
                      "AND upper_inf(during)", (pid,)).fetchone() == (0,)
    work = app_client.get("/api/worklist", headers=nurse.headers,
                          params={"patient_id": pid}).json()["items"]
    assert [(i["ref"], i["kind"]) for i in work] == [(body["follow_up_task"], "follow_up_call")]
    ref = body["follow_up_task"]
    assert db.execute("SELECT admission_id FROM tasks WHERE id = %s",
                      (int(ref[5:]),)).fetchone() == (aid,)
    # The ward manager (admin) does not make the call; a nurse does, with one of its outcomes.
    assert app_client.post(f"/api/worklist/{ref}/claim", headers=admin.headers
                           ).status_code == 403
    assert app_client.post(f"/api/worklist/{ref}/claim", headers=nurse.headers
                           ).status_code == 200
    assert app_client.post(f"/api/worklist/{ref}/complete", headers=nurse.headers,
                           json={"outcome": "spoke to him"}).status_code == 422
    done = app_client.post(f"/api/worklist/{ref}/complete", headers=nurse.headers,
                           json={"outcome": "reached", "note": "well"})
    assert done.json()["status"] == "done", done.text
    assert app_client.post(f"/api/worklist/{ref}/complete", headers=nurse.headers,
                           json={"outcome": "reached"}).status_code == 409
    assert app_client.get("/api/follow-up-calls", headers=nurse.headers).status_code == 404
    page = app_client.get(f"/patients/{pid}", headers=nurse.headers)
    assert 'id="record-status"' in page.text  # the panel's "Discharged" banner
    assert "Outcome: usual residence · discharged by admin1 · recovered" in page.text
    assert app_client.post(f"/api/admissions/{aid}/discharge", headers=admin.headers,
                           json={"outcome": "died"}).status_code == 409


@pytest.mark.parametrize(("role", "refer", "decide"), [
    (Role.HUB_NURSE, True, False), (Role.CLINICIAN, True, True), (Role.ADMIN, True, True)])
def test_who_may_refer_triage_admit_and_discharge(app_client, staff, nhs_number, db, role,
                                                  refer, decide):
    user = staff(role)
    pid = _patient(db, nhs_number())
    response = app_client.post("/api/referrals", headers=user.headers, json={
        "patient_id": pid, "pathway": "step_up", "source": "ed"})
    assert (response.status_code == 201) == refer
    aid = response.json()["id"]
    for method, path, body in (
        ("GET", f"/api/admissions/{aid}/kit?device_id=x", None),
        ("POST", f"/api/admissions/{aid}/decline", {"reason": "no"}),
        ("GET", f"/referrals/{aid}/admit", None),
        ("GET", f"/admissions/{aid}/discharge", None),
    ):
        got = app_client.request(method, path, headers=user.headers, json=body)
        assert (got.status_code == 200) == decide, (path, got.status_code, got.text)
        assert decide or got.status_code == 403
    for path in ("/referrals", "/referrals/new", "/worklist"):
        assert app_client.get(path, headers=user.headers).status_code == 200


def test_phone_referral_form_validates_and_queues(app_client, staff, nhs_number, db, clock):
    nurse = staff(Role.HUB_NURSE)
    form = {"nhs_number": "943 476 5918", "given_name": "Ann", "family_name": "Phone",
            "date_of_birth": "1938-02-03", "source": "111", "urgency": "two_hour",
            "reason": "fall, no injury", "referrer": "111 clinician", "spo2": "93"}
    bad = app_client.post("/referrals/new", headers=nurse.headers, data=form,
                          follow_redirects=False)
    assert bad.status_code == 422
    assert "check digit should be 9" in bad.text
    assert 'value="Phone"' in bad.text  # what was typed is kept
    good = app_client.post("/referrals/new", headers=nurse.headers,
                           data={**form, "nhs_number": "9434765919"}, follow_redirects=False)
    assert good.status_code == 303
    clock.advance(minutes=12)
    queue = app_client.get("/referrals", headers=nurse.headers).text
    assert "PHONE, Ann" in queue
    assert f'data-since="{T0.isoformat()}"' in queue
    assert "2-hour response" in queue
    assert "SpO2 93" in queue
    assert "for a clinician" in queue  # a nurse sees the queue but does not decide


def test_two_managers_cannot_both_take_the_last_bed(db_url, db, nhs_number, clock, poll):
    """The advisory lock serialises accepts: the second waits, then finds the ward full."""
    import threading

    import psycopg

    from ward.hub import admitting
    from ward.hub.auth import User, create_user

    pids = [_patient(db, nhs_number(), f"P{i}") for i in range(2)]
    create_user(db, "doc", "correct horse battery", role=Role.CLINICIAN, display_name="Doc")
    db.commit()
    uid = db.execute("SELECT id FROM users WHERE username = 'doc'").fetchone()[0]
    db.commit()
    user = User(uid, "doc", "Doc", Role.CLINICIAN)
    with psycopg.connect(db_url) as first, psycopg.connect(db_url) as second:
        ids = [admitting.refer(first, user, clock.now, patient_id=p, source=ReferralSource.GP,
                               urgency=Urgency.SAME_DAY, reason=None, observations={},
                               referrer=None) for p in pids]
        first.commit()
        admitting.accept(first, user, clock.now, ids[0], beds=1)  # holds the lock, uncommitted
        outcome: list[BaseException | None] = []

        def _other() -> None:
            try:
                admitting.accept(second, user, clock.now, ids[1], beds=1)
                outcome.append(None)
            except admitting.WardFull as exc:
                outcome.append(exc)

        thread = threading.Thread(target=_other)
        thread.start()
        waiting = second.info.backend_pid
        poll(lambda: db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                "AND NOT granted AND pid = %s", (waiting,)).fetchone()[0] == 1,
             10, "the second accept to wait for the lock")
        first.commit()
        thread.join(10)
        assert isinstance(outcome[0], admitting.WardFull)
        assert "1 of 1 beds" in str(outcome[0])


def test_only_a_two_hour_referral_starts_the_urgent_clock(app_client, staff, nhs_number, db,
                                                          clock):
    nurse, doctor = staff(Role.HUB_NURSE), staff(Role.CLINICIAN)
    urgent = _refer(app_client, nurse.headers, _patient(db, nhs_number(), "Urgent"),
                    source="ambulance", urgency="two_hour")
    for urgency in ("same_day", "next_day", "routine"):
        _refer(app_client, nurse.headers, _patient(db, nhs_number(), urgency),
               source="gp", urgency=urgency)
    clocks = db.execute("SELECT admission_id, due_at FROM tasks WHERE kind = 'urgent_response'"
                        ).fetchall()
    assert clocks == [(urgent, T0 + dt.timedelta(hours=2))]
    step_down = app_client.post("/api/referrals", headers=nurse.headers, json={
        "patient_id": _patient(db, nhs_number(), "Ward"), "pathway": "step_down",
        "source": "hospital_ward", "urgency": "two_hour"})
    assert step_down.status_code == 422, step_down.text
    assert "step-up referrals" in step_down.json()["detail"]
    # Declined: the clock closes without a verdict, and the reports do not count it.
    clock.advance(minutes=30)
    assert app_client.post(f"/api/admissions/{urgent}/decline", headers=doctor.headers,
                           json={"reason": "conveyed to ED"}).status_code == 200
    assert db.execute("SELECT status, met, outcome FROM tasks WHERE admission_id = %s",
                      (urgent,)).fetchone() == ("done", None, "referral declined")
