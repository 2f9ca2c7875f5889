"""Hub tasks for what a patient's kit cannot measure, kept in ``observation_tasks``.

:func:`alerting.due.due` names, per NEWS2 parameter, how it is got; a parameter the kit
cannot measure is a phone call or a visit with a due time. :func:`sync` (run by the
scheduler's sweep) makes the table say the same: one open task per patient and parameter,
closed as ``measured`` when a newer reading arrives (and re-scheduled from it), as
``not_needed`` when the kit now measures it, as ``discharged`` when the stay ended. Thin
SQL; the decision is the pure rule's. The caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from alerting import device_rules
from alerting.snapshot import PatientSnapshot, RuleConfig

Conn = psycopg.Connection[Any]


def planned(snapshots: Mapping[int, PatientSnapshot], now: dt.datetime,
            config: RuleConfig) -> list[dict[str, Any]]:
    """The open tasks the due rule asks for, as JSON-ready rows (admitted patients only)."""
    rows: list[dict[str, Any]] = []
    for pid, snapshot in sorted(snapshots.items()):
        if snapshot.admitted_at is None:
            continue
        report = device_rules.due_report(snapshot, now, config)
        if report is None:
            continue
        rows.extend({"patient_id": pid, "parameter": p.parameter.value, "method": p.method,
                     "due_at": p.due_at.isoformat(),
                     "last_at": None if p.last_at is None else p.last_at.isoformat()}
                    for p in report.tasks)
    return rows


_RECORDS = sql.SQL("jsonb_to_recordset(%s::jsonb) AS r(patient_id bigint, parameter text, "
                   "method text, due_at timestamptz, last_at timestamptz)")


def sync(conn: Conn, snapshots: Mapping[int, PatientSnapshot], now: dt.datetime,
         config: RuleConfig | None = None) -> int:
    """Bring the open tasks of these patients in line with the due rule; returns the number
    of open tasks it asks for."""
    config = config or RuleConfig()
    rows = planned(snapshots, now, config)
    admitted = sorted(p for p, s in snapshots.items() if s.admitted_at is not None)
    payload = json.dumps(rows)
    # A newer reading moved the due time: the task was done by that measurement.
    conn.execute(sql.SQL(
        "UPDATE observation_tasks t SET done_at = %s, outcome = 'measured' FROM {} "
        "WHERE t.done_at IS NULL AND t.patient_id = r.patient_id AND "
        "t.parameter = r.parameter AND r.last_at IS NOT NULL AND "
        "(t.last_at IS NULL OR r.last_at > t.last_at)").format(_RECORDS), (now, payload))
    # The kit measures it now (a device was assigned): no call or visit needed.
    conn.execute(sql.SQL(
        "UPDATE observation_tasks t SET done_at = %s, outcome = 'not_needed' "
        "WHERE t.done_at IS NULL AND t.patient_id = ANY(%s) AND NOT EXISTS ("
        "SELECT 1 FROM {} WHERE r.patient_id = t.patient_id "
        "AND r.parameter = t.parameter)").format(_RECORDS), (now, admitted, payload))
    conn.execute(sql.SQL(
        "INSERT INTO observation_tasks (patient_id, parameter, method, due_at, last_at, "
        "created_at) SELECT patient_id, parameter, method, due_at, last_at, %s FROM {} "
        "ON CONFLICT (patient_id, parameter) WHERE done_at IS NULL DO UPDATE "
        "SET due_at = EXCLUDED.due_at, method = EXCLUDED.method").format(_RECORDS),
        (now, payload))
    return len(rows)


def close_discharged(conn: Conn, now: dt.datetime) -> int:
    """Close the open tasks of everyone no longer admitted (the sweep does not name them)."""
    return conn.execute(
        "UPDATE observation_tasks t SET done_at = %s, outcome = 'discharged' "
        "WHERE t.done_at IS NULL AND NOT EXISTS (SELECT 1 FROM admissions a "
        "WHERE a.patient_id = t.patient_id AND a.status = 'admitted')", (now,)).rowcount
