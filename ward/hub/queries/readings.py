"""Readings, NEWS2 scores and trends as the API shows them, and the output models the ward
view and the patient record share (current score, what is due, latest values with age)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from alerting.due import DueReport
from alerting.observations import Latest
from ward.db.store import ReadingStore
from ward.domain.vitals import VitalCode
from ward.hub import acuity
from ward.hub.acuity import ScoreView
from ward.hub.deps import Conn


class ReadingOut(BaseModel):
    device_id: str
    code: str
    measured_at: dt.datetime
    value: float
    unit: str
    received_at: dt.datetime
    late: bool


class ScoreOut(BaseModel):
    computed_at: dt.datetime
    total: int
    risk: str
    complete: bool
    missing: list[str]
    sub_scores: dict[str, int]
    source: str = "stored"


class CurrentScoreOut(ScoreOut):
    any_single_3: bool
    monitoring_frequency: str
    #: "complete" or "incomplete": an incomplete total is a lower bound, never the score.
    status: str = "complete"
    present: int = 7  # parameters scored, of 7
    band: str = ""  # the band shown: "incomplete" for a partial low score, never "low"
    label: str = ""  # e.g. "Incomplete 2/7 — full set due"
    oxygen_unknown: bool = False  # Scale 2 and air/oxygen unknown: not scored as air


class DueOut(BaseModel):
    """One NEWS2 parameter's due time (alerting.due): how it is got, and whether overdue."""

    parameter: str
    method: str  # "kit", "phone call" or "visit" (a hub task: the kit cannot measure it)
    last_at: dt.datetime | None
    due_at: dt.datetime
    overdue_at: dt.datetime
    overdue: bool


class LatestOut(BaseModel):
    """A latest value with its age; ``stale`` past the parameter's staleness window."""

    value: float
    measured_at: dt.datetime
    age_minutes: int
    stale: bool


class TrendPointOut(BaseModel):
    bucket: dt.datetime
    avg: float
    min: float
    max: float
    n: int


class InfusionOut(BaseModel):
    state: str
    volume_infused_ml: float | None
    volume_remaining_ml: float | None
    rate_ml_h: float | None
    percent_done: float | None
    at: dt.datetime


def current_score_out(view: ScoreView | None) -> CurrentScoreOut | None:
    if view is None:
        return None
    return CurrentScoreOut(
        computed_at=view.computed_at, total=view.total, risk=view.risk, complete=view.complete,
        missing=list(view.missing), sub_scores=dict(view.sub_scores), source=view.source,
        any_single_3=view.any_single_3, monitoring_frequency=view.monitoring_frequency,
        status="complete" if view.complete else "incomplete", present=view.present,
        band=view.band, label=view.label, oxygen_unknown=view.oxygen_unknown)


def due_out(report: DueReport | None, now: dt.datetime) -> list[DueOut]:
    if report is None:
        return []
    return [DueOut(parameter=p.parameter.value, method=p.method, last_at=p.last_at,
                   due_at=p.due_at, overdue_at=p.overdue_at, overdue=p.overdue(now))
            for p in report.parameters]


def latest_out(latest: Mapping[str, Latest], now: dt.datetime) -> dict[str, LatestOut]:
    return {code: LatestOut(value=v.value, measured_at=v.measured_at,
                            age_minutes=int((now - v.measured_at).total_seconds() // 60),
                            stale=acuity.is_stale(code, v.measured_at, now))
            for code, v in sorted(latest.items())}


def list_readings(conn: Conn, patient_id: int, start: dt.datetime, end: dt.datetime, *,
                  code: VitalCode | None, limit: int, offset: int
                  ) -> tuple[list[ReadingOut], int]:
    """The patient's readings in [start, end), newest first, and how many in all.

    Ordered by the whole natural key, so pages never overlap or skip a row when two devices
    report one code at one instant (compressed chunks do not keep insertion order)."""
    params: list[Any] = [patient_id, start, end]
    code_sql = ""
    if code is not None:
        code_sql = " AND code = %s"
        params.append(code.value)
    where = "WHERE patient_id = %s AND measured_at >= %s AND measured_at < %s" + code_sql
    total = conn.execute("SELECT count(*) FROM readings " + where, params).fetchone()
    rows = conn.execute(
        "SELECT device_id, code, measured_at, value, unit, received_at, late FROM readings "
        + where + " ORDER BY measured_at DESC, code, device_id LIMIT %s OFFSET %s",
        [*params, limit, offset]).fetchall()
    return ([ReadingOut(**dict(zip(ReadingOut.model_fields, r, strict=True))) for r in rows],
            int(total[0]) if total else 0)


def list_scores(conn: Conn, patient_id: int, start: dt.datetime, end: dt.datetime, *,
                limit: int, offset: int) -> tuple[list[ScoreOut], int]:
    """The patient's stored scores in [start, end), newest first, and how many in all."""
    where = "WHERE patient_id = %s AND computed_at >= %s AND computed_at < %s"
    params = [patient_id, start, end]
    total = conn.execute("SELECT count(*) FROM scores " + where, params).fetchone()
    rows = conn.execute(
        "SELECT computed_at, total, risk, complete, missing, sub_scores FROM scores " + where
        + " ORDER BY computed_at DESC LIMIT %s OFFSET %s", [*params, limit, offset]).fetchall()
    return ([ScoreOut(computed_at=r[0], total=r[1], risk=r[2], complete=r[3],
                      missing=list(r[4] or []), sub_scores=dict(r[5] or {})) for r in rows],
            int(total[0]) if total else 0)


def trend(conn: Conn, patient_id: int, code: VitalCode, *, start: dt.datetime,
          end: dt.datetime, bucket: dt.timedelta) -> list[TrendPointOut]:
    """One vital in buckets, from whichever readings storage this database uses."""
    storage = conn.execute("SELECT value FROM vw_meta WHERE key = 'readings_storage'"
                           ).fetchone()
    points = ReadingStore.trend(conn, patient_id, code.value, start=start, end=end,
                                bucket=bucket, storage=str(storage[0]) if storage else "plain")
    return [TrendPointOut(bucket=p.bucket, avg=p.avg, min=p.min, max=p.max, n=p.n)
            for p in points]


def latest_units(conn: Conn, patient_id: int) -> dict[str, str]:
    """The unit of each of the patient's latest values, by code."""
    return {str(c): str(u) for c, u in conn.execute(
        "SELECT code, unit FROM latest_readings WHERE patient_id = %s", (patient_id,))}


def newest_score(conn: Conn, patient_id: int) -> ScoreOut | None:
    """The patient's latest stored NEWS2 score."""
    row = conn.execute(
        "SELECT computed_at, total, risk, complete, missing, sub_scores FROM scores "
        "WHERE patient_id = %s ORDER BY computed_at DESC LIMIT 1", (patient_id,)).fetchone()
    if row is None:
        return None
    return ScoreOut(computed_at=row[0], total=row[1], risk=row[2], complete=row[3],
                    missing=list(row[4] or []), sub_scores=dict(row[5] or {}))
