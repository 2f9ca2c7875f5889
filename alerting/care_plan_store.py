"""Care plans in PostgreSQL: load one, and apply a validated change with its audit row.

The decisions (what a change may be, what the audit row says) are :mod:`alerting.care_plan`'s
pure functions; this module only reads and writes, in the caller's transaction (the caller
commits), with SQL composed by :mod:`psycopg.sql` — column names come from the pure module's
fixed list, never from a request.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg
from psycopg import sql

from alerting import care_plan
from alerting.candidates import Severity
from alerting.care_plan import COLUMNS, CarePlan, Ceiling, PlanChange
from alerting.errors import CarePlanError

Conn = psycopg.Connection[Any]

_JSON_COLUMNS = frozenset({"thresholds"})


def select_plans() -> sql.Composed:
    """``SELECT <care-plan columns> FROM care_plans`` (add a WHERE clause as a Composed)."""
    return sql.SQL("SELECT {} FROM care_plans").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS))


def load_care_plan(conn: Conn, patient_id: int) -> CarePlan:
    """The patient's care plan, or the default plan when none was ever written."""
    row = conn.execute(select_plans() + sql.SQL(" WHERE patient_id = %s"),
                       (patient_id,)).fetchone()
    return CarePlan(patient_id) if row is None else care_plan.from_row(row)


def apply(conn: Conn, change: PlanChange) -> None:
    """Upsert the change's columns and write its ``audit_log`` row."""
    patient_id = change.patient_id
    if conn.execute("SELECT 1 FROM patients WHERE id = %s", (patient_id,)).fetchone() is None:
        raise CarePlanError(f"patient {patient_id} does not exist")
    unknown = set(change.columns) - set(COLUMNS)
    if unknown:
        raise CarePlanError(f"not care-plan columns: {sorted(unknown)}")
    conn.execute(
        "INSERT INTO care_plans (patient_id) VALUES (%s) ON CONFLICT (patient_id) DO NOTHING",
        (patient_id,),
    )
    names = list(change.columns)
    values = [json.dumps(change.columns[n]) if n in _JSON_COLUMNS else change.columns[n]
              for n in names]
    conn.execute(
        sql.SQL("UPDATE care_plans SET {}, updated_at = %s WHERE patient_id = %s").format(
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(n)) for n in names)),
        (*values, change.at, patient_id),
    )
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, entity, entity_id, patient_id, detail) "
        "VALUES (%s, %s, %s, 'care_plan', %s, %s, %s::jsonb)",
        (change.at, change.by, change.action, str(patient_id), patient_id,
         json.dumps(dict(change.detail), default=str)),
    )


def set_spo2_scale(conn: Conn, patient_id: int, *, scale: int, target_low: float | None,
                   target_high: float | None, by: str, reason: str, now: dt.datetime) -> None:
    """See :func:`alerting.care_plan.spo2_scale_change`."""
    apply(conn, care_plan.spo2_scale_change(
        load_care_plan(conn, patient_id), scale=scale, target_low=target_low,
        target_high=target_high, by=by, reason=reason, now=now))


def set_threshold(conn: Conn, patient_id: int, *, parameter: str, low: float | None,
                  high: float | None, by: str, reason: str, now: dt.datetime,
                  severity: Severity = Severity.LOW_MEDIUM) -> None:
    """See :func:`alerting.care_plan.threshold_change`."""
    apply(conn, care_plan.threshold_change(
        load_care_plan(conn, patient_id), parameter=parameter, low=low, high=high, by=by,
        reason=reason, now=now, severity=severity))


def set_ceiling_of_care(conn: Conn, patient_id: int, *, ceiling: Ceiling | str, by: str,
                        reason: str, now: dt.datetime) -> None:
    """See :func:`alerting.care_plan.ceiling_change`."""
    apply(conn, care_plan.ceiling_change(load_care_plan(conn, patient_id), ceiling=ceiling,
                                         by=by, reason=reason, now=now))


def set_prescribed_infusion_rate(conn: Conn, patient_id: int, *, rate_ml_h: float | None,
                                 by: str, reason: str, now: dt.datetime,
                                 pump_type: str | None = "elastomeric",
                                 volume_ml: float | None = None,
                                 started_at: dt.datetime | None = None,
                                 drug: str | None = None,
                                 duration: dt.timedelta | None = None) -> None:
    """See :func:`alerting.care_plan.infusion_change`."""
    apply(conn, care_plan.infusion_change(
        load_care_plan(conn, patient_id), rate_ml_h=rate_ml_h, by=by, reason=reason, now=now,
        pump_type=pump_type, volume_ml=volume_ml, started_at=started_at, drug=drug,
        duration=duration))
