"""A continuing finding's refresh is written at most every REFRESH_EVERY; everything else at
once (real PostgreSQL; issue 14: rewriting every open episode on every reading was the largest
write of a pass)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from alerting import runner
from alerting.policy import Policy
from alerting.runner import evaluate_after_commit

T0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)
NORMAL = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.8, "systolic_bp": 125,
          "on_oxygen": 0, "consciousness": 0}
MEDIUM = {**NORMAL, "resp_rate": 22, "pulse": 112, "temperature": 38.5}  # 2 + 2 + 1 = 5
HIGH = {**NORMAL, "spo2": 90, "pulse": 125, "resp_rate": 26}  # 3 + 2 + 3 = 8


def _episode(db: psycopg.Connection[Any], pid: int) -> tuple[Any, ...]:
    row = db.execute("SELECT a.severity, a.updated_at, f.last_at, f.evidence FROM alerts a "
                     "JOIN alert_findings f ON f.alert_id = a.id AND f.kind = 'news2' "
                     "WHERE a.patient_id = %s", (pid,)).fetchone()
    db.commit()
    assert row is not None
    return tuple(row)


def test_a_refresh_is_written_at_most_every_ten_seconds_and_a_rise_at_once(
        db: psycopg.Connection[Any], policy: Policy, write_readings: Any, add_patients: Any,
        readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    write_readings(db, readings(pid, T0, **MEDIUM))
    (raised,) = evaluate_after_commit(db, [pid], T0, policy=policy)
    assert raised.events[0] == "raised"
    first = _episode(db, pid)
    # The same medium picture a few seconds later: only the refresh moves, not written yet.
    at = T0 + dt.timedelta(seconds=3)
    write_readings(db, readings(pid, at, **{**MEDIUM, "temperature": 38.6}))
    assert evaluate_after_commit(db, [pid], at, policy=policy) == []
    assert _episode(db, pid) == first
    # REFRESH_EVERY after the last write: the refresh is stored, with the newest evidence.
    later = T0 + runner.REFRESH_EVERY
    write_readings(db, readings(pid, later, **MEDIUM))
    (refreshed,) = evaluate_after_commit(db, [pid], later, policy=policy)
    assert refreshed.events == ()
    severity, updated_at, last_at, evidence = _episode(db, pid)
    assert (severity, updated_at, last_at) == ("medium", later, later)
    assert later.isoformat() in {e["measured_at"] for e in evidence}
    # A new finding one second after a write is written at once, not REFRESH_EVERY later.
    # The wearable's signs are median-filtered (still medium); the spot thermometer's 35.0 °C
    # scores 3 at once (a new single-parameter finding). HIGH's SpO2 90 no longer does: one
    # low reading of four is not a majority, and spo2_falling needs an hour of readings.
    rise = later + dt.timedelta(seconds=1)
    write_readings(db, readings(pid, rise, **{**HIGH, "temperature": 35.0}))
    (change,) = evaluate_after_commit(db, [pid], rise, policy=policy)
    assert "finding_raised" in change.events
    assert _episode(db, pid)[1] == rise


def test_a_clear_starting_its_hold_is_written_at_once(
        db: psycopg.Connection[Any], policy: Policy, write_readings: Any, add_patients: Any,
        readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    write_readings(db, readings(pid, T0, **MEDIUM))
    evaluate_after_commit(db, [pid], T0, policy=policy)
    at = T0 + dt.timedelta(seconds=2)
    write_readings(db, readings(pid, at, **NORMAL))
    evaluate_after_commit(db, [pid], at, policy=policy)
    row = db.execute("SELECT f.clear_since FROM alert_findings f JOIN alerts a "
                     "ON a.id = f.alert_id WHERE a.patient_id = %s AND f.kind = 'news2'",
                     (pid,)).fetchone()
    assert row == (at,)  # the 30-minute hold starts now, not at the next refresh
