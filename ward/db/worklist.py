"""Worklist tasks the ward's own transitions create, written at the data layer.

Every discharge makes exactly one follow-up call, and every referral whose urgency is the
2-hour urgent response starts that clock, whichever caller (hub endpoint, CLI, demo) makes the
transition: so the hook lives beside `registry.add_admission` / `registry.update_admission`,
in the caller's transaction. Both are rows of the `tasks` table (migrations 0170, 0240) that
name their admission, read by the hub worklist (`ward.hub.queries.worklist`) and counted by
the reports (`ward.hub.reports`). The rules (windows, which referral starts a clock, the
call's outcomes) are the domain's (`ward.domain.patients`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg

from ward.domain.patients import (
    URGENT_RESPONSE,
    FollowUpOutcome,
    follow_up_window,
    urgent_response_met,
)

Conn = psycopg.Connection[Any]

# Priorities (migration 0170): 1 urgent, 2 clinical, 3 routine.
URGENT, CLINICAL, ROUTINE = 1, 2, 3
SYSTEM = "ward"

_INSERT = (
    "INSERT INTO tasks (kind, patient_id, admission_id, reason, detail, due_at, not_before, "
    "priority, created_by, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING RETURNING id"
)


def _notify(conn: Conn, patient_id: int, task_id: int) -> None:
    conn.execute("SELECT vw_notify(%s)", (json.dumps(
        {"type": "task", "patient_ids": [int(patient_id)], "task": f"task-{int(task_id)}"}),))


def _insert(conn: Conn, kind: str, patient_id: int, admission_id: int, *, reason: str,
            detail: str, due_at: dt.datetime, not_before: dt.datetime | None, priority: int,
            created_at: dt.datetime) -> int | None:
    row = conn.execute(_INSERT, (kind, patient_id, admission_id, reason, detail, due_at,
                                 not_before, priority, SYSTEM, created_at)).fetchone()
    if row is None:  # this admission's task of this kind exists already
        return None
    _notify(conn, patient_id, int(row[0]))
    return int(row[0])


def _close(conn: Conn, kind: str, *, admission_id: int | None = None,
           patient_id: int | None = None, at: dt.datetime, outcome: str,
           unseen_verdict: bool = False) -> None:
    """Close the open `kind` tasks of an admission (or of a patient); with `unseen_verdict`,
    an urgent clock closes with the verdict the domain gives an unseen clock at `at` (a
    verdict the deadline's sweep already wrote stays)."""
    rows = conn.execute(
        "SELECT id, patient_id, due_at, met FROM tasks WHERE status = 'open' AND kind = %s "
        "AND (%s::bigint IS NULL OR admission_id = %s) "
        "AND (%s::bigint IS NULL OR patient_id = %s) FOR UPDATE",
        (kind, admission_id, admission_id, patient_id, patient_id)).fetchall()
    for task_id, pid, due_at, stored in rows:
        verdict = None
        if unseen_verdict:
            verdict = stored if stored is not None else urgent_response_met(due_at, at,
                                                                             seen=False)
        conn.execute(
            "UPDATE tasks SET status = 'done', closed_at = greatest(%s, created_at), "
            "outcome = %s, closed_by = %s, met = %s WHERE id = %s",
            (at, outcome, SYSTEM, verdict, task_id))
        _notify(conn, int(pid), int(task_id))


def start_urgent_clock(conn: Conn, patient_id: int, admission_id: int,
                       referred_at: dt.datetime) -> int | None:
    """The 2-hour urgent response task of a 2-hour referral (due 2 h after referral)."""
    return _insert(conn, "urgent_response", patient_id, admission_id,
                   reason="two_hour_referral",
                   detail="Urgent response: see within 2 hours of referral",
                   due_at=referred_at + URGENT_RESPONSE, not_before=None, priority=URGENT,
                   created_at=referred_at)


def stop_urgent_clock(conn: Conn, admission_id: int, at: dt.datetime, outcome: str) -> None:
    """A referral declined: its clock closes without a met/missed verdict (`met` stays NULL,
    so neither the worklist's figure nor the reports count it)."""
    _close(conn, "urgent_response", admission_id=admission_id, at=at, outcome=outcome)


def close_urgent_clock_at_discharge(conn: Conn, admission_id: int, at: dt.datetime) -> None:
    """Discharged with the 2-hour clock still open: nobody recorded the patient as seen, so a
    clock past its 2 hours is recorded as missed; one within them closes without a verdict."""
    _close(conn, "urgent_response", admission_id=admission_id, at=at,
           outcome="discharged before the response was recorded", unseen_verdict=True)


def record_missed_urgent_clocks(conn: Conn, now: dt.datetime) -> int:
    """Write the verdict of every open 2-hour clock whose deadline has passed unseen by `now`
    (missed, `ward.domain.patients.urgent_response_met`); the task stays open, for the
    patient must still be seen. Run by the alerting scheduler's sweep and before the hub
    counts its figures, so the worklist and the reports count stored verdicts only (each clock
    once). Returns how many it wrote."""
    rows = conn.execute(
        "SELECT id, patient_id, due_at FROM tasks WHERE kind = 'urgent_response' "
        "AND status = 'open' AND met IS NULL").fetchall()  # few: the open 2-hour referrals
    missed = [int(tid) for tid, _, due_at in rows
              if urgent_response_met(due_at, now, seen=False) is False]
    if not missed:
        return 0
    # Guarded: a nurse completing the task meanwhile wrote its verdict (or closed it) first.
    written = conn.execute(
        "UPDATE tasks SET met = false WHERE id = ANY(%s) AND status = 'open' AND met IS NULL "
        "RETURNING id, patient_id", (missed,)).fetchall()
    for tid, pid in written:
        _notify(conn, int(pid), int(tid))
    return len(written)


def schedule_follow_up_call(conn: Conn, patient_id: int, admission_id: int,
                            discharged_at: dt.datetime) -> int | None:
    """The follow-up call 1–2 days after the discharge of `admission_id` (one per discharge:
    the table's unique index on admission and kind)."""
    not_before, due_at = follow_up_window(discharged_at)
    # A patient has one open call at a time (tasks_one_open): an older discharge's call that
    # is still open was overtaken by this stay, so it closes as `readmitted` first.
    close_follow_up_calls(conn, patient_id, discharged_at, FollowUpOutcome.READMITTED)
    return _insert(conn, "follow_up_call", patient_id, admission_id, reason="discharge",
                   detail="Follow-up call 1–2 days after discharge", due_at=due_at,
                   not_before=not_before, priority=ROUTINE, created_at=discharged_at)


def close_follow_up_calls(conn: Conn, patient_id: int, at: dt.datetime,
                          outcome: FollowUpOutcome) -> None:
    """Close the patient's open follow-up call (readmitted before it was made)."""
    _close(conn, "follow_up_call", patient_id=patient_id, at=at, outcome=outcome.value)


def follow_up_call(conn: Conn, admission_id: int) -> tuple[int, dt.datetime, dt.datetime] | None:
    """(task id, not before, due by) of the admission's follow-up call, if it has one."""
    row = conn.execute(
        "SELECT id, not_before, due_at FROM tasks WHERE admission_id = %s "
        "AND kind = 'follow_up_call'", (admission_id,)).fetchone()
    return None if row is None else (int(row[0]), row[1], row[2])
