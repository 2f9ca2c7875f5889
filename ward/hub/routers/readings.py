"""Readings, NEWS2 scores, trends, and the whole patient record (the patient page's API)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel

from alerting.due import DueReport
from alerting.observations import Latest
from ward.db.store import ReadingStore
from ward.domain.vitals import VitalCode
from ward.hub import acuity, audit, record
from ward.hub.acuity import ScoreView
from ward.hub.deps import DB, Now
from ward.hub.problems import Invalid
from ward.hub.routers.admissions import AdmissionOut, admissions_of
from ward.hub.routers.alerts import AlertOut, query_alerts
from ward.hub.routers.care_plans import CarePlanOut, care_plan_out
from ward.hub.routers.common import Conn, Limit, Offset, Page, PatientId, Reader
from ward.hub.routers.devices import _SELECT as DEVICE_SELECT
from ward.hub.routers.devices import DeviceOut
from ward.hub.routers.devices import _out as device_out
from ward.hub.routers.patients import PatientOut, load_patient

router = APIRouter(prefix="/api/patients/{patient_id}", tags=["readings and scores"])
# 31 days: the readings a nurse reviews; longer histories are for the FHIR export.
MAX_WINDOW_HOURS = 31 * 24


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


class RecordOut(BaseModel):
    patient: PatientOut
    admissions: list[AdmissionOut]
    care_plan: CarePlanOut
    score: CurrentScoreOut | None
    last_observation_at: dt.datetime | None
    overdue: bool
    due: list[DueOut]
    admitted: bool
    discharged_at: dt.datetime | None
    latest: dict[str, ReadingOut | None]
    latest_age: dict[str, LatestOut]
    infusion_expected_ml: float | None  # by the IV prescription, at the time of the request
    infusion: InfusionOut | None
    window_start: dt.datetime
    window_end: dt.datetime
    hourly: bool
    series: dict[str, list[tuple[dt.datetime, float]]]
    scores: list[ScoreOut]
    alerts: list[AlertOut]
    devices: list[DeviceOut]


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


def _window(start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime
            ) -> tuple[dt.datetime, dt.datetime]:
    end_at = (end or now).astimezone(dt.UTC)
    start_at = (start or end_at - dt.timedelta(hours=24)).astimezone(dt.UTC)
    if start_at >= end_at:
        raise Invalid("start must be before end")
    return start_at, end_at


@router.get("/readings", response_model=Page[ReadingOut])
def list_readings(
    patient_id: PatientId, conn: DB, now: Now, user: Reader, limit: Limit = 100,
    offset: Offset = 0, code: VitalCode | None = None, start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
) -> Page[ReadingOut]:
    """Readings, newest first, in [start, end) (default: the last 24 hours)."""
    load_patient(conn, patient_id)
    start_at, end_at = _window(start, end, now)
    params: list[Any] = [patient_id, start_at, end_at]
    code_sql = ""
    if code is not None:
        code_sql = " AND code = %s"
        params.append(code.value)
    where = "WHERE patient_id = %s AND measured_at >= %s AND measured_at < %s" + code_sql
    total = conn.execute("SELECT count(*) FROM readings " + where, params).fetchone()
    rows = conn.execute(
        "SELECT device_id, code, measured_at, value, unit, received_at, late FROM readings "
        + where + " ORDER BY measured_at DESC, code LIMIT %s OFFSET %s",
        [*params, limit, offset]).fetchall()
    audit.record(conn, user, "read", "readings", now=now, patient_id=patient_id,
                 detail={"start": start_at.isoformat(), "end": end_at.isoformat()})
    return Page[ReadingOut](
        items=[ReadingOut(**dict(zip(ReadingOut.model_fields, r, strict=True))) for r in rows],
        total=int(total[0]) if total else 0, limit=limit, offset=offset)


@router.get("/scores", response_model=Page[ScoreOut])
def list_scores(
    patient_id: PatientId, conn: DB, now: Now, user: Reader, limit: Limit = 100,
    offset: Offset = 0, start: AwareDatetime | None = None, end: AwareDatetime | None = None,
) -> Page[ScoreOut]:
    """Stored NEWS2 scores, newest first, in [start, end) (default: the last 24 hours)."""
    load_patient(conn, patient_id)
    start_at, end_at = _window(start, end, now)
    where = "WHERE patient_id = %s AND computed_at >= %s AND computed_at < %s"
    params = [patient_id, start_at, end_at]
    total = conn.execute("SELECT count(*) FROM scores " + where, params).fetchone()
    rows = conn.execute(
        "SELECT computed_at, total, risk, complete, missing, sub_scores FROM scores " + where
        + " ORDER BY computed_at DESC LIMIT %s OFFSET %s", [*params, limit, offset]).fetchall()
    audit.record(conn, user, "read", "scores", now=now, patient_id=patient_id)
    return Page[ScoreOut](
        items=[ScoreOut(computed_at=r[0], total=r[1], risk=r[2], complete=r[3],
                        missing=list(r[4] or []), sub_scores=dict(r[5] or {})) for r in rows],
        total=int(total[0]) if total else 0, limit=limit, offset=offset)


@router.get("/trend", response_model=list[TrendPointOut])
def trend(
    patient_id: PatientId, code: VitalCode, conn: DB, now: Now, user: Reader,
    hours: Annotated[int, Query(ge=1, le=MAX_WINDOW_HOURS)] = 24,
    bucket_minutes: Annotated[int, Query(ge=1, le=24 * 60)] = 60,
) -> list[TrendPointOut]:
    """One vital downsampled into buckets (mean, min, max, count)."""
    load_patient(conn, patient_id)
    storage = conn.execute("SELECT value FROM vw_meta WHERE key = 'readings_storage'"
                           ).fetchone()
    points = ReadingStore.trend(conn, patient_id, code.value, start=now - dt.timedelta(hours=hours),
                                end=now, bucket=dt.timedelta(minutes=bucket_minutes),
                                storage=str(storage[0]) if storage else "plain")
    audit.record(conn, user, "read", "trend", now=now, patient_id=patient_id,
                 detail={"code": code.value, "hours": hours})
    return [TrendPointOut(bucket=p.bucket, avg=p.avg, min=p.min, max=p.max, n=p.n)
            for p in points]


def load_record(conn: Conn, patient_id: int, *, now: dt.datetime, hours: int) -> RecordOut:
    patient = load_patient(conn, patient_id)
    rec = record.load(conn, patient_id, now=now, window=dt.timedelta(hours=hours))
    admissions = admissions_of(conn, patient_id)
    open_alerts, _ = query_alerts(conn, now, state="all", patient_id=patient_id, limit=50)
    devices = [device_out(r) for r in conn.execute(
        DEVICE_SELECT + "WHERE a.patient_id IS NOT NULL AND a.patient_id = %s ORDER BY d.id",
        (now, patient_id))]
    units = dict(conn.execute(
        "SELECT code, unit FROM latest_readings WHERE patient_id = %s", (patient_id,)).fetchall())
    infusion = None
    if rec.infusion is not None:
        i = rec.infusion
        infusion = InfusionOut(state=i.state, volume_infused_ml=i.volume_infused_ml,
                               volume_remaining_ml=i.volume_remaining_ml, rate_ml_h=i.rate_ml_h,
                               percent_done=i.percent_done, at=i.at)
    return RecordOut(
        patient=patient, admissions=admissions, care_plan=care_plan_out(conn, patient_id),
        score=current_score_out(rec.score), last_observation_at=rec.last_observation_at,
        overdue=rec.overdue, due=due_out(rec.due, now), admitted=rec.admitted,
        discharged_at=rec.discharged_at, latest_age=latest_out(rec.latest, now),
        infusion_expected_ml=rec.plan.expected_infused_ml(now),
        latest={c: ReadingOut(device_id=v.device_id, code=c, measured_at=v.measured_at,
                              value=v.value, unit=str(units.get(c, "")),
                              received_at=v.measured_at, late=False)
                for c, v in rec.latest.items()},
        infusion=infusion, window_start=rec.start, window_end=rec.end, hourly=rec.hourly,
        series=dict(rec.series),
        scores=[ScoreOut(computed_at=s.computed_at, total=s.total, risk=s.risk,
                         complete=s.complete, missing=list(s.missing),
                         sub_scores=dict(s.sub_scores)) for s in rec.scores],
        alerts=open_alerts, devices=devices,
    )


@router.get("/record", response_model=RecordOut)
def patient_record(
    patient_id: PatientId, conn: DB, now: Now, user: Reader,
    hours: Annotated[int, Query(ge=1, le=MAX_WINDOW_HOURS)] = 72,
) -> RecordOut:
    """Everything the patient page shows: vitals, NEWS2 history, alerts, plan, admission."""
    out = load_record(conn, patient_id, now=now, hours=hours)
    audit.record(conn, user, "read", "patient_record", now=now, entity_id=patient_id,
                 patient_id=patient_id, detail={"hours": hours})
    return out
