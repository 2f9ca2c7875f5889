"""`/api/observation-tasks` and the patient page's "Hub tasks": the phone calls and visits
scheduled for parameters a kit cannot measure (issue 11.3), open ones soonest due first,
audited with the patients shown."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from tests.hub.conftest import T0
from ward.hub.auth import Role


def _task(conn: psycopg.Connection[Any], pid: int, parameter: str, method: str,
          due: dt.datetime, *, done: bool = False) -> int:
    row = conn.execute(
        "INSERT INTO observation_tasks (patient_id, parameter, method, due_at, last_at, "
        "created_at, done_at, outcome) VALUES (%s, %s, %s, %s, NULL, %s, %s, %s) RETURNING id",
        (pid, parameter, method, due, due - dt.timedelta(hours=1),
         due if done else None, "measured" if done else None)).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def test_open_tasks_listed_soonest_first_filtered_and_audited(
        db: psycopg.Connection[Any], app_client: TestClient, staff: Callable[[Role], Any],
        admit: Callable[..., int]) -> None:
    a, b = admit(), admit()
    late = _task(db, a, "systolic_bp", "visit", T0 + dt.timedelta(hours=2))
    soon = _task(db, b, "resp_rate", "phone call", T0 - dt.timedelta(minutes=10))
    _task(db, a, "temperature", "visit", T0 - dt.timedelta(hours=3), done=True)
    assert app_client.get("/api/observation-tasks").status_code == 401
    nurse = staff(Role.HUB_NURSE)
    page = app_client.get("/api/observation-tasks", headers=nurse.headers).json()
    assert [t["id"] for t in page["items"]] == [soon, late]  # open only, soonest due first
    assert page["total"] == 2
    assert [t["overdue"] for t in page["items"]] == [True, False]  # the hub's clock is T0
    assert page["items"][0]["method"] == "phone call"
    mine = app_client.get(f"/api/observation-tasks?patient_id={a}", headers=nurse.headers)
    assert [t["id"] for t in mine.json()["items"]] == [late]
    assert app_client.get("/api/observation-tasks?patient_id=999999",
                          headers=nurse.headers).status_code == 404
    audited = db.execute(
        "SELECT patient_ids, detail->'task_ids' FROM audit_log WHERE entity = 'observation_task' "
        "ORDER BY id").fetchall()
    assert audited == [([b, a], [soon, late]), ([a], [late])]


def test_patient_page_lists_its_hub_tasks(
        db: psycopg.Connection[Any], app_client: TestClient, staff: Callable[[Role], Any],
        admit: Callable[..., int]) -> None:
    a, b = admit(), admit()
    mine = _task(db, a, "resp_rate", "phone call", T0 - dt.timedelta(minutes=10))
    theirs = _task(db, b, "systolic_bp", "visit", T0 + dt.timedelta(hours=1))
    html = app_client.get(f"/patients/{a}", headers=staff(Role.HUB_NURSE).headers).text
    section = html[html.index("<h2>Hub tasks</h2>"):html.index("<h2>Care plan</h2>")]
    assert f'data-task="{mine}"' in section
    assert "Phone call: resp rate" in section
    assert "overdue" in section
    assert f'data-task="{theirs}"' not in html
    empty = app_client.get(f"/patients/{b}", headers=staff(Role.HUB_NURSE).headers).text
    assert "No open hub tasks." not in empty
    db.execute("UPDATE observation_tasks SET done_at = %s, outcome = 'not_needed' WHERE id = %s",
               (T0, theirs))
    db.commit()
    empty = app_client.get(f"/patients/{b}", headers=staff(Role.HUB_NURSE).headers).text
    assert "No open hub tasks." in empty
