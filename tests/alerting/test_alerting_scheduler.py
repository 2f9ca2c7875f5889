"""The scheduler's sweep (overdue, escalation) and leader election on the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import psycopg

from alerting import scheduler
from alerting.policy import Policy
from alerting.runner import evaluate_after_commit
from ward.db import worklist
from ward.hub import reports
from ward.hub.queries import worklist as hub_worklist

T0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)
NORMAL = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.8, "systolic_bp": 125,
          "on_oxygen": 0, "consciousness": 0}


def _alert(conn: psycopg.Connection[Any], kind: str) -> tuple[Any, ...] | None:
    return conn.execute("SELECT severity, state, escalation_tier, escalation_target FROM alerts "
                        "WHERE kind = %s", (kind,)).fetchone()


def test_sweep_raises_overdue_and_a_new_observation_resolves_it(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any, readings: Any,
        write_readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    write_readings(db, readings(pid, T0, **{**NORMAL, "pulse": 95}))  # total 1: 4-hourly
    evaluate_after_commit(db, [pid], T0, policy=policy)
    scheduler.sweep(db, policy, T0 + dt.timedelta(hours=4, minutes=10))
    assert _alert(db, "observations_overdue") is None
    result = scheduler.sweep(db, policy, T0 + dt.timedelta(hours=4, minutes=16))
    assert result.timer_changes == 1
    assert _alert(db, "observations_overdue") == ("low", "raised", 0, None)
    later = T0 + dt.timedelta(hours=5)
    write_readings(db, readings(pid, later, **NORMAL))
    evaluate_after_commit(db, [pid], later, policy=policy)
    assert _alert(db, "observations_overdue") == ("low", "resolved", 0, None)


def test_unacknowledged_high_alert_escalates_once_per_window(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any, readings: Any,
        write_readings: Any) -> None:
    (pid,) = add_patients(db, 1, T0 - dt.timedelta(days=1))
    db.execute("INSERT INTO care_plans (patient_id, ceiling_of_care, ceiling_set_by, "
               "ceiling_set_at, ceiling_reason) VALUES (%s, 'palliative', 'dr', %s, 'EoL')", (pid, T0))
    db.commit()
    write_readings(db, readings(pid, T0, **{**NORMAL, "spo2": 90, "pulse": 125, "resp_rate": 26}))
    evaluate_after_commit(db, [pid], T0, policy=policy)
    scheduler.sweep(db, policy, T0 + dt.timedelta(minutes=14))
    assert _alert(db, "news2") == ("high", "raised", 0, None)
    for minute in (15, 16):  # a second sweep in the same window does nothing more
        scheduler.sweep(db, policy, T0 + dt.timedelta(minutes=minute))
    assert _alert(db, "news2") == ("high", "raised", 1, "on_call_clinician")
    scheduler.sweep(db, policy, T0 + dt.timedelta(minutes=31))
    assert _alert(db, "news2") == ("high", "raised", 2, "palliative_team")
    pages = [(r[0], r[1]["event"]) for r in db.execute(
        "SELECT recipient, payload FROM notification_outbox WHERE channel IN ('sms', 'pager') "
        "ORDER BY id")]
    # The middle page: the 31-minute sweep found the continuous observations of a high
    # patient overdue — a "no data" finding, never inhibited, goes to whoever holds the
    # episode at that moment (tier 1), before the same sweep escalates to tier 2.
    assert pages == [("+447700900101", "escalated"), ("+447700900101", "finding_raised"),
                     ("community-palliative-team", "escalated")]
    escalated = db.execute("SELECT count(*) FROM alert_events WHERE event = 'escalated'").fetchone()
    assert escalated == (2,)


def test_exactly_one_leader_and_takeover_when_its_connection_drops(db_url: str) -> None:
    first, second = scheduler.Leader(db_url, "a"), scheduler.Leader(db_url, "b")
    try:
        assert first.acquire(T0) is True
        assert second.acquire(T0) is False
        assert first.acquire(T0) is True  # still leading
        first.release()  # the session ends: PostgreSQL frees the lock
        assert second.acquire(T0) is True
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT holder FROM alerting_leader").fetchone() == ("b",)
    finally:
        first.release()
        second.release()


def test_sweep_writes_the_missed_verdict_of_a_two_hour_clock_once_its_deadline_passes(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any) -> None:
    """The verdict is stored when the deadline passes (the task stays open: the patient must
    still be seen), not only at completion or discharge; the report and the worklist count
    that clock once, and seeing the patient later does not turn it into met. Fails on the old
    code: nothing wrote `met` before completion or discharge."""
    (pid,) = add_patients(db, 1, T0)  # referred and admitted at T0
    aid = db.execute("UPDATE admissions SET urgency = 'two_hour' WHERE patient_id = %s "
                     "RETURNING id", (pid,)).fetchone()[0]
    tid = worklist.start_urgent_clock(db, pid, aid, T0)
    db.commit()

    def clock() -> tuple[Any, ...] | None:
        row = db.execute("SELECT status, met FROM tasks WHERE id = %s", (tid,)).fetchone()
        db.commit()
        return row

    scheduler.sweep(db, policy, T0 + dt.timedelta(hours=2))  # on the deadline: still running
    assert clock() == ("open", None)
    scheduler.sweep(db, policy, T0 + dt.timedelta(hours=2, minutes=1))
    assert clock() == ("open", False)
    at = T0 + dt.timedelta(hours=3)
    tz = zoneinfo.ZoneInfo("Europe/London")
    figures = dict(reports.urgent_response_2h(db, T0.date(), T0.date() + dt.timedelta(days=1),
                                              tz=tz, now=at).rows)
    assert (figures["met"], figures["missed"], figures["pending"]) == (0, 1, 0)
    stats = hub_worklist.urgent_stats(db, at, T0 - dt.timedelta(days=1))
    assert (stats.referrals, stats.met, stats.missed, stats.pending) == (1, 0, 1, 0)
    worklist.close_urgent_clock_at_discharge(db, aid, at)
    db.commit()
    assert clock() == ("done", False)
