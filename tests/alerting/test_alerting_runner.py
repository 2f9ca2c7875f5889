"""evaluate_after_commit on the real PostgreSQL: scores, episodes and findings, events, outbox,
NOTIFY, baselines, doubtful readings."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import psycopg

from alerting.policy import Policy
from alerting.runner import evaluate_after_commit
from ward.db import channels

T0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)  # a Monday, in hub hours (GMT)
NORMAL = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.8, "systolic_bp": 125,
          "on_oxygen": 0, "consciousness": 0}
SICK = {**NORMAL, "spo2": 90, "pulse": 125, "resp_rate": 26}  # 3 + 2 + 3 = 8: high


def _alerts(conn: psycopg.Connection[Any], pid: int) -> dict[str, tuple[str, str]]:
    rows = conn.execute("SELECT kind, severity, state FROM alerts WHERE patient_id = %s",
                        (pid,)).fetchall()
    return {k: (s, st) for k, s, st in rows}


def test_high_news2_raises_one_alert_with_evidence_events_outbox_and_notify(
        *, db: psycopg.Connection[Any], db_url: str, policy: Policy,
        write_readings: Any, add_patients: Any, readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    with psycopg.connect(db_url, autocommit=True) as listener:
        channels.listen(listener, channels.EVENTS)
        write_readings(db, readings(pid, T0, **SICK))
        changes = evaluate_after_commit(db, [pid], T0 + dt.timedelta(seconds=5), policy=policy)
        # Other events of this schema may arrive too; keep ours.
        received = []
        for n in listener.notifies(timeout=2):
            payload = json.loads(n.payload)
            if payload.get("patient_id") == pid or pid in payload.get("patient_ids", ()):
                received.append(payload)
            if {p["type"] for p in received} == {"score", "alert"}:
                break
    (change,) = changes  # one episode for the patient
    assert (change.kind, change.severity, change.events) == ("news2", "high", ("raised",))
    findings = dict(db.execute(
        "SELECT kind, inhibited FROM alert_findings WHERE alert_id = %s", (change.alert_id,)))
    # every contributing finding, the lower ones inhibited on the pager
    assert findings == {"news2": False, "single_parameter_3": True, "spo2_below_target": True}
    # Scored patients are announced in chunks (one notification per pass, not per patient).
    assert {"type": "score", "patient_ids": [pid]} in received
    assert any(p["type"] == "alert" and p["patient_id"] == pid for p in received)
    (evidence,) = db.execute(
        "SELECT e.evidence FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
        "WHERE a.kind = 'news2' AND e.event = 'raised'").fetchone() or (None,)
    assert {e["code"] for e in evidence} == set(SICK)
    assert all(e["device_id"] == f"dev-{pid}" for e in evidence)
    outbox_channels = {r[0] for r in db.execute("SELECT channel FROM notification_outbox")}
    assert {"dashboard", "mqtt"} <= outbox_channels
    (total, risk, complete) = db.execute(
        "SELECT total, risk, complete FROM scores WHERE patient_id = %s", (pid,)).fetchone() or ()
    assert (total, risk, complete) == (8, "high", True)


def test_same_readings_again_change_nothing_and_recovery_resolves_after_thirty_minutes(
        db: psycopg.Connection[Any], policy: Policy, write_readings: Any, add_patients: Any, readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    write_readings(db, readings(pid, T0, **SICK))
    evaluate_after_commit(db, [pid], T0, policy=policy)
    again = evaluate_after_commit(db, [pid], T0 + dt.timedelta(seconds=30), policy=policy)
    assert all(c.events == () for c in again)  # nothing new to record or page
    for minute in (10, 20, 30):  # clear readings for 25 min: not yet 30 min of normal values
        write_readings(db, readings(pid, T0 + dt.timedelta(minutes=minute), **NORMAL))
        evaluate_after_commit(db, [pid], T0 + dt.timedelta(minutes=minute + 5), policy=policy)
        assert _alerts(db, pid)["news2"] == ("high", "raised")
    write_readings(db, readings(pid, T0 + dt.timedelta(minutes=40), **NORMAL))
    evaluate_after_commit(db, [pid], T0 + dt.timedelta(minutes=45), policy=policy)
    assert _alerts(db, pid)["news2"] == ("high", "resolved")
    events = [r[0] for r in db.execute(
        "SELECT e.event FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
        "WHERE a.kind = 'news2' ORDER BY e.id")]
    assert events[0] == "raised"
    assert events[-1] == "resolved"
    assert set(events[1:-1]) <= {"finding_cleared"}
    cleared = db.execute("SELECT count(*) FROM alert_findings WHERE cleared_at IS NOT NULL"
                         ).fetchone()
    assert cleared == (3,)  # the trace keeps every finding, cleared


def test_partial_score_still_alerts_and_is_marked_partial(
        db: psycopg.Connection[Any], policy: Policy, write_readings: Any, add_patients: Any, readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    write_readings(db, readings(pid, T0, spo2=91, pulse=135))  # 3 + 3, five parameters missing
    evaluate_after_commit(db, [pid], T0, policy=policy)
    row = db.execute("SELECT severity, partial FROM alerts WHERE kind = 'news2'").fetchone()
    assert row == ("medium", True)
    stale = T0 + dt.timedelta(hours=3)  # SpO2 and pulse are stale now: missing, not normal
    write_readings(db, readings(pid, stale, temperature=36.9))
    evaluate_after_commit(db, [pid], stale, policy=policy)
    assert _alerts(db, pid)["news2"] == ("medium", "raised")


def test_concurrent_evaluators_never_duplicate(
        *, db: psycopg.Connection[Any], db_url: str, policy: Policy,
        write_readings: Any, add_patients: Any, readings: Any) -> None:
    ids = add_patients(db, 50, T0 - dt.timedelta(days=1))
    write_readings(db, [r for pid in ids for r in readings(pid, T0, **SICK)])
    errors: list[BaseException] = []

    def run(order: list[int]) -> None:
        try:
            with psycopg.connect(db_url) as conn:
                for _ in range(3):
                    evaluate_after_commit(conn, order, T0, policy=policy)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(ids if i % 2 else ids[::-1],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    (count,) = db.execute("SELECT count(*) FROM alerts").fetchone() or (0,)
    (events,) = db.execute("SELECT count(*) FROM alert_events WHERE event = 'raised'").fetchone() or (0,)
    (findings,) = db.execute("SELECT count(*) FROM alert_findings").fetchone() or (0,)
    assert count == 50  # one episode per patient
    assert events == 50  # each raised exactly once
    assert findings == 150  # news2, single_parameter_3 and spo2_below_target in each
