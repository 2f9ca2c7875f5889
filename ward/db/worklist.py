"""Worklist tasks the ward's own transitions create, written at the data layer.

Every discharge makes a follow-up call and every step-up referral starts the 2-hour urgent
response clock, whichever caller (hub endpoint, CLI, demo) makes the transition: so the hook
lives beside `registry.add_admission` / `registry.update_admission`, in the caller's
transaction. Both are rows of the `tasks` table (migration 0170), read by the hub worklist
(`ward.hub.queries.worklist`). Inserts skip a task of the same kind already open for the
patient (the table's one-open-per-kind index).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]

# The national urgent community response standard: seen within 2 hours of referral (70 % of
# referrals is the target; the worklist records met/missed per referral).
URGENT_RESPONSE = dt.timedelta(hours=2)
# The follow-up call after discharge: from one day after, due by the end of the second day.
FOLLOW_UP_FROM = dt.timedelta(days=1)
FOLLOW_UP_DUE = dt.timedelta(days=2)
# Priorities (migration 0170): 1 urgent, 2 clinical, 3 routine.
URGENT, CLINICAL, ROUTINE = 1, 2, 3
SYSTEM = "ward"

_INSERT = (
    "INSERT INTO tasks (kind, patient_id, reason, detail, due_at, not_before, priority, "
    "created_by, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (patient_id, kind) WHERE status = 'open' DO NOTHING RETURNING id"
)


def _insert(conn: Conn, kind: str, patient_id: int, *, reason: str, detail: str,
            due_at: dt.datetime, not_before: dt.datetime | None, priority: int,
            created_at: dt.datetime) -> int | None:
    row = conn.execute(_INSERT, (kind, patient_id, reason, detail, due_at, not_before,
                                 priority, SYSTEM, created_at)).fetchone()
    if row is None:
        return None
    conn.execute("SELECT pg_notify('vw_events', %s)",
                 (f'{{"type": "task", "patient_id": {int(patient_id)}, "task_id": {int(row[0])}}}',))
    return int(row[0])


def start_urgent_clock(conn: Conn, patient_id: int, referred_at: dt.datetime) -> int | None:
    """The 2-hour urgent response task of a step-up referral (due 2 h after referral)."""
    return _insert(conn, "urgent_response", patient_id, reason="step_up_referral",
                   detail="Urgent response: see within 2 hours of referral",
                   due_at=referred_at + URGENT_RESPONSE, not_before=None, priority=URGENT,
                   created_at=referred_at)


def stop_urgent_clock(conn: Conn, patient_id: int, at: dt.datetime, outcome: str) -> None:
    """A referral declined: its clock closes without a met/missed verdict."""
    conn.execute(
        "UPDATE tasks SET status = 'done', closed_at = greatest(%s, created_at), outcome = %s, "
        "closed_by = %s WHERE patient_id = %s AND kind = 'urgent_response' AND status = 'open'",
        (at, outcome, SYSTEM, patient_id))


def schedule_follow_up_call(conn: Conn, patient_id: int, discharged_at: dt.datetime
                            ) -> int | None:
    """The follow-up call 1–2 days after discharge."""
    return _insert(conn, "follow_up_call", patient_id, reason="discharge",
                   detail="Follow-up call 1–2 days after discharge",
                   due_at=discharged_at + FOLLOW_UP_DUE,
                   not_before=discharged_at + FOLLOW_UP_FROM, priority=ROUTINE,
                   created_at=discharged_at)
