"""Hub tasks for parameters the kit cannot measure, written by the scheduler's sweep
(alerting.due_tasks) on the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from alerting import scheduler
from alerting.policy import Policy
from ward.db import registry
from ward.domain.devices import Assignment, Device, DeviceKind

T0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)


def _tasks(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, str | None]]:
    rows = conn.execute("SELECT parameter, method, outcome FROM observation_tasks "
                        "ORDER BY id").fetchall()
    conn.commit()
    return {str(p): (str(m), o) for p, m, o in rows}


def test_a_wearable_patient_gets_call_and_visit_tasks_done_when_measured(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any, readings: Any,
        write_readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(hours=1))
    registry.add_device(db, Device(f"dev-{pid}", DeviceKind.PULSE_OXIMETER))
    registry.assign_device(db, Assignment(f"dev-{pid}", pid, T0 - dt.timedelta(hours=1)))
    db.commit()
    write_readings(db, readings(pid, T0, spo2=96, pulse=80))
    result = scheduler.sweep(db, policy, T0 + dt.timedelta(minutes=5))
    tasks = _tasks(db)
    assert tasks == {"resp_rate": ("phone call", None), "air_or_oxygen": ("phone call", None),
                     "systolic_bp": ("visit", None), "consciousness": ("phone call", None),
                     "temperature": ("visit", None)}
    assert result.hub_tasks == 5
    # The nurse calls: RR counted. That task is done, and a new one is due from the reading.
    write_readings(db, readings(pid, T0 + dt.timedelta(minutes=20), device="staff",
                                resp_rate=18))
    scheduler.sweep(db, policy, T0 + dt.timedelta(minutes=25))
    rows = db.execute("SELECT outcome, due_at FROM observation_tasks WHERE parameter = "
                      "'resp_rate' ORDER BY id").fetchall()
    db.commit()
    assert [r[0] for r in rows] == ["measured", None]
    assert rows[1][1] == T0 + dt.timedelta(minutes=20, hours=4)
    # Discharged: every open task closes.
    db.execute("UPDATE admissions SET status = 'discharged', outcome = 'usual_residence', "
               "discharged_at = %s WHERE patient_id = %s", (T0 + dt.timedelta(hours=1), pid))
    db.commit()
    scheduler.sweep(db, policy, T0 + dt.timedelta(hours=1, minutes=1))
    open_rows = db.execute("SELECT count(*) FROM observation_tasks WHERE done_at IS NULL"
                           ).fetchone()
    db.commit()
    assert open_rows == (0,)
