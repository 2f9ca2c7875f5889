"""`/api/tasks`: the hub reads the full sets the platform requested, soonest due first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from ward.hub.auth import Role

T0 = dt.datetime(2026, 1, 12, 14, 5, tzinfo=dt.UTC)


def _task(conn: psycopg.Connection[Any], pid: int, created: dt.datetime, status: str = "open",
          device: str | None = "hub-1") -> int:
    closed = None if status == "open" else created + dt.timedelta(minutes=10)
    row = conn.execute(
        "INSERT INTO tasks (kind, patient_id, device_id, reason, detail, due_at, status, "
        "created_by, created_at, closed_at, outcome) VALUES ('full_set', %s, %s, "
        "'partial_trouble', 'NEWS2 at least 3; missing resp_rate', %s, %s, 'alerting', %s, %s, "
        "%s) RETURNING id", (pid, device, created + dt.timedelta(minutes=30), status, created,
                             closed, None if closed is None else "full set taken 10 min after "
                             "request")).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def test_tasks_list_filters_and_reads_one(db: psycopg.Connection[Any], app_client: TestClient,
                                          staff: Callable[[Role], Any],
                                          admit: Callable[..., int]) -> None:
    a, b = admit(), admit()
    late = _task(db, a, T0 + dt.timedelta(minutes=20), device=None)
    soon = _task(db, b, T0)
    done = _task(db, a, T0 - dt.timedelta(hours=3), status="done")
    assert app_client.get("/api/tasks").status_code == 401
    nurse = staff(Role.HUB_NURSE)
    page = app_client.get("/api/tasks", headers=nurse.headers).json()
    assert [t["id"] for t in page["items"]] == [soon, late]  # open only, soonest due first
    assert page["total"] == 2
    assert page["items"][1]["device_id"] is None
    mine = app_client.get(f"/api/tasks?status=all&patient_id={a}", headers=nurse.headers).json()
    assert [t["id"] for t in mine["items"]] == [done, late]
    one = app_client.get(f"/api/tasks/{done}", headers=nurse.headers).json()
    assert (one["status"], one["outcome"], one["kind"]) == (
        "done", "full set taken 10 min after request", "full_set")
    assert dt.datetime.fromisoformat(one["due_at"]) == T0 - dt.timedelta(hours=2, minutes=30)
    assert app_client.get("/api/tasks/999999", headers=nurse.headers).status_code == 404
    assert app_client.get("/api/tasks?patient_id=999999", headers=nurse.headers).status_code == 404
    assert app_client.get("/api/tasks?status=later", headers=nurse.headers).status_code == 422
