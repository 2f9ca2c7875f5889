"""`/api/worklist`: every kind of task in one list, the nurse's actions (audited), the
follow-up call every discharge makes, the 2-hour urgent response clock, and the handover."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from tests.hub.conftest import T0, Clock
from ward.domain.devices import DeviceKind
from ward.hub.auth import Role


def _full_set(conn: psycopg.Connection[Any], pid: int, due: dt.datetime) -> int:
    row = conn.execute(
        "INSERT INTO tasks (kind, patient_id, device_id, reason, detail, due_at, created_by, "
        "created_at) VALUES ('full_set', %s, NULL, 'partial_trouble', 'missing resp_rate', %s, "
        "'alerting', %s) RETURNING id", (pid, due, due - dt.timedelta(minutes=30))).fetchone()
    assert row is not None
    conn.commit()
    return int(row[0])


def _obs_task(conn: psycopg.Connection[Any], pid: int, due: dt.datetime) -> int:
    row = conn.execute(
        "INSERT INTO observation_tasks (patient_id, parameter, method, due_at, created_at) "
        "VALUES (%s, 'resp_rate', 'phone call', %s, %s) RETURNING id",
        (pid, due, due - dt.timedelta(hours=4))).fetchone()
    assert row is not None
    conn.commit()
    return int(row[0])


def _audit(conn: psycopg.Connection[Any], ref: str) -> list[tuple[str, str]]:
    conn.commit()
    return [(a, b) for a, b in conn.execute(
        "SELECT action, actor FROM audit_log WHERE entity = 'task' AND entity_id = %s "
        "ORDER BY id", (ref,))]


def _items(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/worklist", headers=headers, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_every_kind_appears_most_urgent_then_soonest_first(
        db: psycopg.Connection[Any], app_client: TestClient, staff: Callable[[Role], Any],
        admit: Callable[..., int], nhs_number: Callable[[], str]) -> None:
    nurse = staff(Role.HUB_NURSE)
    a, b, c, d = admit(), admit(), admit(), admit()
    full = _full_set(db, a, T0 + dt.timedelta(minutes=20))
    obs = _obs_task(db, b, T0 - dt.timedelta(minutes=5))
    visit = app_client.post("/api/worklist/visits", headers=nurse.headers, json={
        "patient_id": c, "due_at": (T0 + dt.timedelta(hours=1)).isoformat(),
        "reason": "leg ulcer dressing", "priority": 2})
    assert visit.status_code == 201, visit.text
    adm = db.execute("SELECT id FROM admissions WHERE patient_id = %s", (d,)).fetchone()
    assert adm is not None
    # Discharge is the ward's clinicians' (and manager's) decision, not a hub nurse's.
    doctor = staff(Role.CLINICIAN)
    assert app_client.post(f"/api/admissions/{adm[0]}/discharge", headers=doctor.headers,
                           json={"outcome": "usual_residence"}).status_code == 200
    fresh = db.execute("INSERT INTO patients (nhs_number, given_name, family_name, "
                       "date_of_birth) VALUES (%s, 'Urgent', 'Case', '1940-01-01') "
                       "RETURNING id", (nhs_number(),)).fetchone()
    assert fresh is not None
    db.commit()
    assert app_client.post("/api/referrals", headers=nurse.headers, json={
        "patient_id": fresh[0], "pathway": "step_up", "source": "gp",
        "urgency": "two_hour"}).status_code == 201
    items = _items(app_client, nurse.headers)
    kinds = [(i["kind"], i["patient_id"]) for i in items]
    assert kinds == [("urgent_response", fresh[0]), ("observation", b), ("full_set", a),
                     ("visit", c), ("follow_up_call", d)]
    assert items[1]["ref"] == f"obs-{obs}"
    assert items[1]["overdue"] is True
    assert items[2]["ref"] == f"task-{full}"
    assert items[2]["seconds_to_due"] == 20 * 60
    assert items[0]["priority"] == 1
    assert items[-1]["priority"] == 3
    assert app_client.get("/api/worklist").status_code == 401
    assert _items(app_client, nurse.headers, patient_id=c)[0]["detail"] == "leg ulcer dressing"


def test_claim_complete_and_hand_over_are_audited(
        db: psycopg.Connection[Any], app_client: TestClient, staff: Callable[[Role], Any],
        admit: Callable[..., int], clock: Clock) -> None:
    nurse, doctor = staff(Role.HUB_NURSE), staff(Role.CLINICIAN)
    admin = staff(Role.ADMIN)
    pid = admit()
    ref = f"task-{_full_set(db, pid, T0 + dt.timedelta(minutes=30))}"
    assert app_client.post(f"/api/worklist/{ref}/claim", headers=admin.headers).status_code == 403
    claimed = app_client.post(f"/api/worklist/{ref}/claim", headers=nurse.headers).json()
    assert (claimed["owner"], claimed["claimed_at"] is not None) == (nurse.username, True)
    # Somebody else's task is not taken silently.
    assert app_client.post(f"/api/worklist/{ref}/claim", headers=doctor.headers).status_code == 409
    assert app_client.post(f"/api/worklist/{ref}/hand-over", headers=nurse.headers,
                           json={"to": "nobody"}).status_code == 422
    handed = app_client.post(f"/api/worklist/{ref}/hand-over", headers=nurse.headers,
                             json={"to": doctor.username, "note": "patient asleep"}).json()
    assert handed["owner"] == doctor.username
    assert [i["ref"] for i in _items(app_client, doctor.headers, mine=True)] == [ref]
    clock.advance(minutes=10)
    done = app_client.post(f"/api/worklist/{ref}/complete", headers=doctor.headers,
                           json={"outcome": "full set taken", "note": "NEWS2 2"}).json()
    assert (done["status"], done["outcome"], done["closed_by"]) == (
        "done", "full set taken", doctor.username)
    assert app_client.post(f"/api/worklist/{ref}/complete", headers=doctor.headers,
                           json={"outcome": "again"}).status_code == 409
    assert _items(app_client, nurse.headers) == []
    assert [i["ref"] for i in _items(app_client, nurse.headers, status="closed")] == [ref]
    assert _audit(db, ref) == [("claim", nurse.username), ("hand_over", nurse.username),
                               ("complete", doctor.username)]
    events = db.execute("SELECT action, actor, note FROM task_events WHERE task_id = %s "
                        "ORDER BY id", (int(ref[5:]),)).fetchall()
    assert events == [("claim", nurse.username, ""),
                      ("hand_over", nurse.username, f"to {doctor.username}: patient asleep"),
                      ("complete", doctor.username, "full set taken: NEWS2 2")]


def test_observation_task_outcomes_are_the_tables(
        db: psycopg.Connection[Any], app_client: TestClient, staff: Callable[[Role], Any],
        admit: Callable[..., int]) -> None:
    nurse = staff(Role.HUB_NURSE)
    ref = f"obs-{_obs_task(db, admit(), T0)}"
    assert app_client.post(f"/api/worklist/{ref}/claim", headers=nurse.headers).status_code == 200
    assert app_client.post(f"/api/worklist/{ref}/complete", headers=nurse.headers,
                           json={"outcome": "phoned"}).status_code == 422
    done = app_client.post(f"/api/worklist/{ref}/complete", headers=nurse.headers,
                           json={"outcome": "measured", "note": "RR 18 by carer"}).json()
    assert (done["status"], done["outcome"]) == ("done", "measured")
    assert app_client.post("/api/worklist/obs-99999/claim",
                           headers=nurse.headers).status_code == 404
    assert app_client.post("/api/worklist/due-1/claim", headers=nurse.headers).status_code == 422


def test_discharge_makes_a_follow_up_call_one_to_two_days_later(
        db: psycopg.Connection[Any], app_client: TestClient, staff: Callable[[Role], Any],
        admit: Callable[..., int]) -> None:
    nurse = staff(Role.HUB_NURSE)
    pid = admit()
    adm = db.execute("SELECT id FROM admissions WHERE patient_id = %s", (pid,)).fetchone()
    assert adm is not None
    at = T0 - dt.timedelta(hours=1)
    doctor = staff(Role.CLINICIAN)  # discharge is a clinician's decision
    assert app_client.post(f"/api/admissions/{adm[0]}/discharge", headers=doctor.headers, json={
        "outcome": "usual_residence", "at": at.isoformat()}).status_code == 200
    [item] = _items(app_client, nurse.headers, patient_id=pid)
    assert item["kind"] == "follow_up_call"
    assert dt.datetime.fromisoformat(item["not_before"]) == at + dt.timedelta(days=1)
    assert dt.datetime.fromisoformat(item["due_at"]) == at + dt.timedelta(days=2)


def _refer(db: psycopg.Connection[Any], client: TestClient, headers: dict[str, str],
           nhs: str, at: dt.datetime) -> str:
    row = db.execute("INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
                     "VALUES (%s, 'Urgent', 'Case', '1940-01-01') RETURNING id", (nhs,)).fetchone()
    assert row is not None
    db.commit()
    response = client.post("/api/referrals", headers=headers, json={
        "patient_id": row[0], "pathway": "step_up", "source": "111", "urgency": "two_hour",
        "referred_at": at.isoformat()})
    assert response.status_code == 201, response.text
    [item] = _items(client, headers, patient_id=row[0])
    assert item["kind"] == "urgent_response"
    assert dt.datetime.fromisoformat(item["due_at"]) == at + dt.timedelta(hours=2)
    return str(item["ref"])


def test_urgent_referral_starts_a_two_hour_clock_met_or_missed(
        db: psycopg.Connection[Any], app_client: TestClient, staff: Callable[[Role], Any],
        nhs_number: Callable[[], str], clock: Clock) -> None:
    nurse = staff(Role.HUB_NURSE)
    quick = _refer(db, app_client, nurse.headers, nhs_number(), T0 - dt.timedelta(minutes=90))
    slow = _refer(db, app_client, nurse.headers, nhs_number(), T0 - dt.timedelta(hours=3))
    _refer(db, app_client, nurse.headers, nhs_number(), T0 - dt.timedelta(minutes=10))
    stats = app_client.get("/api/worklist/urgent-response", headers=nurse.headers).json()
    assert (stats["met"], stats["missed"], stats["pending"]) == (0, 1, 2)
    for ref in (quick, slow):
        app_client.post(f"/api/worklist/{ref}/claim", headers=nurse.headers)
        done = app_client.post(f"/api/worklist/{ref}/complete", headers=nurse.headers,
                               json={"outcome": "seen at home"}).json()
        assert done["met"] is (ref == quick)
    stats = app_client.get("/api/worklist/urgent-response", headers=nurse.headers).json()
    assert stats == {"referrals": 3, "met": 1, "missed": 1, "pending": 1, "met_percent": 50.0}


def test_handover_lists_patients_tasks_and_notes_since_the_last(
        db: psycopg.Connection[Any], app_client: TestClient, staff: Callable[[Role], Any],
        admit: Callable[..., int], clock: Clock) -> None:
    nurse = staff(Role.HUB_NURSE)
    pid = admit(given="Grace", family="Hopper")
    ref = f"task-{_full_set(db, pid, T0 + dt.timedelta(minutes=30))}"
    app_client.post(f"/api/worklist/{ref}/claim", headers=nurse.headers)
    app_client.post(f"/api/worklist/{ref}/hand-over", headers=nurse.headers,
                    json={"to": None, "note": "call daughter first"})
    body = app_client.get("/api/handover", headers=nurse.headers).json()
    [patient] = body["patients"]
    assert patient["name"] == "Grace Hopper"
    assert [t["ref"] for t in patient["tasks"]] == [ref]
    assert [n["note"] for n in patient["notes"]] == ["to the pool: call daughter first"]
    page = app_client.get("/handover", headers=nurse.headers)
    assert page.status_code == 200
    assert "Grace Hopper" in page.text
    assert "call daughter first" in page.text
    assert "/static/worklist.css" in page.text
    clock.advance(minutes=5)
    assert app_client.post("/api/handover", headers=nurse.headers).status_code == 204
    after = app_client.get("/api/handover", headers=nurse.headers).json()
    assert after["patients"][0]["notes"] == []
    assert after["last_by"] == nurse.username
    worklist = app_client.get("/worklist", headers=nurse.headers)
    assert worklist.status_code == 200
    assert ref in worklist.text


def test_observation_sets_due_from_the_kit_come_from_the_due_rule(
        db: psycopg.Connection[Any], app_client: TestClient, staff: Callable[[Role], Any],
        admit: Callable[..., int], ward: Any, unique: str) -> None:
    nurse = staff(Role.HUB_NURSE)
    pid = admit()
    ward.add(f"ox-{unique}", since=T0 - dt.timedelta(days=2), kind=DeviceKind.PULSE_OXIMETER,
             model="test", patient_id=pid)
    [item] = [i for i in _items(app_client, nurse.headers) if i["source"] == "due"]
    assert (item["ref"], item["kind"], item["patient_id"]) == (f"due-{pid}", "kit_set", pid)
    assert item["overdue"] is True  # never measured this admission
    assert "spo2" in item["detail"]
    assert "pulse" in item["detail"]
    assert app_client.post(f"/api/worklist/due-{pid}/claim",
                           headers=nurse.headers).status_code == 422


def _list_audits(conn: psycopg.Connection[Any]) -> list[tuple[list[int], dict[str, Any]]]:
    conn.commit()
    return [(ids, detail) for ids, detail in conn.execute(
        "SELECT patient_ids, detail FROM audit_log WHERE entity = 'task' AND action = 'list' "
        "ORDER BY id")]


def test_a_list_is_one_audit_row_naming_every_patient_shown_and_pages_by_limit(
        db: psycopg.Connection[Any], app_client: TestClient, staff: Callable[[Role], Any],
        admit: Callable[..., int]) -> None:
    nurse = staff(Role.HUB_NURSE)
    pids = [admit() for _ in range(4)]
    for k, pid in enumerate(pids):
        _full_set(db, pid, T0 + dt.timedelta(minutes=10 * (k + 1)))
    _obs_task(db, pids[0], T0 + dt.timedelta(minutes=5))
    every = _items(app_client, nurse.headers)
    assert [i["patient_id"] for i in every] == [pids[0], pids[0], *pids[1:]]
    [(ids, detail)] = _list_audits(db)
    assert ids == pids  # each patient once, in the order first shown
    assert (detail["shown"], detail["total"]) == (5, 5)

    page = app_client.get("/api/worklist", headers=nurse.headers,
                          params={"limit": 2, "offset": 2})
    assert page.status_code == 200, page.text
    body = page.json()
    assert [i["ref"] for i in body["items"]] == [i["ref"] for i in every[2:4]]
    assert body["total"] == 5
    # Only the patients of the page shown are audited as seen.
    assert _list_audits(db)[-1][0] == [pids[1], pids[2]]
    assert app_client.get("/api/worklist", headers=nurse.headers,
                          params={"limit": 0}).status_code == 422
