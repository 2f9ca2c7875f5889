"""Reads that used to write no audit row: the `/api/tasks` list and one task, the discharge
page, and the admit and discharge forms shown again after a refusal (`ward.hub.audit`: every
access to a patient's record is audited, a list naming every patient it shows)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from ward.hub.auth import Role

Conn = psycopg.Connection[Any]


def _task(db: Conn, pid: int, at: dt.datetime) -> int:
    row = db.execute(
        "INSERT INTO tasks (kind, patient_id, reason, detail, due_at, created_by, created_at) "
        "VALUES ('full_set', %s, 'partial_trouble', 'missing resp_rate', %s, 'alerting', %s) "
        "RETURNING id", (pid, at + dt.timedelta(minutes=30), at)).fetchone()
    db.commit()
    assert row is not None
    return int(row[0])


def _audit(db: Conn, entity: str) -> list[tuple[Any, ...]]:
    return db.execute("SELECT actor, action, entity_id, patient_id, patient_ids, detail "
                      "FROM audit_log WHERE entity = %s ORDER BY id", (entity,)).fetchall()


def _admission(db: Conn, pid: int) -> int:
    row = db.execute("SELECT id FROM admissions WHERE patient_id = %s", (pid,)).fetchone()
    assert row is not None
    return int(row[0])


def test_task_list_audits_every_patient_it_shows(app_client: TestClient, db: Conn,
                                                 staff: Callable[[Role], Any],
                                                 admit: Callable[..., int], clock: Any) -> None:
    a, b = admit(), admit(given="Mary", family="Seacole")
    first, second = _task(db, b, clock.now), _task(db, a, clock.now + dt.timedelta(minutes=5))
    nurse = staff(Role.HUB_NURSE)
    assert app_client.get("/api/tasks", headers=nurse.headers).status_code == 200
    assert app_client.get(f"/api/tasks?patient_id={a}", headers=nurse.headers
                          ).status_code == 200
    rows = _audit(db, "task")
    assert [(r[0], r[1], r[4]) for r in rows] == [
        ("hubnurse1", "list", [b, a]), ("hubnurse1", "list", [a])]
    assert rows[0][5] == {"task_ids": [first, second], "status": "open"}


def test_one_task_read_is_audited_with_its_patient(app_client: TestClient, db: Conn,
                                                   staff: Callable[[Role], Any],
                                                   admit: Callable[..., int],
                                                   clock: Any) -> None:
    pid = admit()
    task = _task(db, pid, clock.now)
    nurse = staff(Role.HUB_NURSE)
    assert app_client.get(f"/api/tasks/{task}", headers=nurse.headers).status_code == 200
    assert [(r[1], r[2], r[3]) for r in _audit(db, "task")] == [
        ("read", f"task-{task}", pid)]


def test_discharge_page_is_audited_as_a_read_of_the_admission(
        app_client: TestClient, db: Conn, staff: Callable[[Role], Any],
        admit: Callable[..., int]) -> None:
    pid = admit()
    aid = _admission(db, pid)
    doctor = staff(Role.CLINICIAN)
    page = app_client.get(f"/admissions/{aid}/discharge", headers=doctor.headers)
    assert page.status_code == 200, page.text
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in _audit(db, "admission")] == [
        ("clinician1", "read", str(aid), pid, {"page": "discharge"})]


def test_refused_discharge_form_shown_again_is_audited(
        app_client: TestClient, db: Conn, staff: Callable[[Role], Any],
        admit: Callable[..., int]) -> None:
    pid = admit()
    aid = _admission(db, pid)
    doctor = staff(Role.CLINICIAN)
    refused = app_client.post(f"/admissions/{aid}/discharge", headers=doctor.headers,
                              data={"outcome": "", "note": "x"})
    assert refused.status_code == 409
    assert "choose how the stay ended" in refused.text
    assert [(r[1], r[3], r[5]) for r in _audit(db, "admission")] == [
        ("read", pid, {"page": "discharge", "refused": True})]


def test_refused_admit_form_shown_again_is_audited(
        app_client: TestClient, db: Conn, staff: Callable[[Role], Any],
        nhs_number: Callable[[], str]) -> None:
    doctor = staff(Role.CLINICIAN)
    created = app_client.post("/api/patients", headers=doctor.headers, json={
        "nhs_number": nhs_number(), "given_name": "Ann", "family_name": "Form",
        "date_of_birth": "1940-01-02"})
    pid = created.json()["id"]
    referred = app_client.post("/api/referrals", headers=doctor.headers, json={
        "patient_id": pid, "pathway": "step_up", "source": "gp"})
    aid = referred.json()["id"]
    refused = app_client.post(f"/referrals/{aid}/admit", headers=doctor.headers,
                              data={"date_of_birth": "not a date"})
    assert refused.status_code == 409
    reads = [(r[1], r[3], r[5]) for r in _audit(db, "patient") if r[1] == "read"]
    assert reads == [("read", pid, {"page": "admit", "refused": True})]
