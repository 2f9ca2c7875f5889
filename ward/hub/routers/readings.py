"""Readings, NEWS2 scores, trends, and the whole patient record (the patient page's API)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel

from ward.domain.vitals import VitalCode
from ward.hub import audit, record
from ward.hub.deps import DB, Now
from ward.hub.problems import Invalid
from ward.hub.queries import evidence as evidence_queries
from ward.hub.queries import readings as queries
from ward.hub.queries.devices import DeviceOut, devices_of_patient
from ward.hub.queries.patients import PatientOut, load_patient
from ward.hub.queries.readings import (
    CurrentScoreOut,
    DueOut,
    InfusionOut,
    LatestOut,
    ReadingOut,
    ScoreOut,
    TrendPointOut,
    current_score_out,
    due_out,
    latest_out,
)
from ward.hub.routers.admissions import AdmissionOut, admissions_of
from ward.hub.routers.alerts import AlertOut, query_alerts
from ward.hub.routers.care_plans import CarePlanOut, care_plan_out
from ward.hub.routers.common import Conn, Limit, Offset, Page, PatientId, Reader

router = APIRouter(prefix="/api/patients/{patient_id}", tags=["readings and scores"])
# 31 days: the readings a nurse reviews; longer histories are for the FHIR export.
MAX_WINDOW_HOURS = 31 * 24


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
    #: The findings open in the window with the readings each cited, and the trend's
    #: baselines: what the charts draw (ward.hub.queries.evidence).
    evidence: evidence_queries.ChartEvidenceOut


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
    items, total = queries.list_readings(conn, patient_id, start_at, end_at, code=code,
                                         limit=limit, offset=offset)
    audit.record(conn, user, "read", "readings", now=now, patient_id=patient_id,
                 detail={"start": start_at.isoformat(), "end": end_at.isoformat()})
    return Page[ReadingOut](items=items, total=total, limit=limit, offset=offset)


@router.get("/scores", response_model=Page[ScoreOut])
def list_scores(
    patient_id: PatientId, conn: DB, now: Now, user: Reader, limit: Limit = 100,
    offset: Offset = 0, start: AwareDatetime | None = None, end: AwareDatetime | None = None,
) -> Page[ScoreOut]:
    """Stored NEWS2 scores, newest first, in [start, end) (default: the last 24 hours)."""
    load_patient(conn, patient_id)
    start_at, end_at = _window(start, end, now)
    items, total = queries.list_scores(conn, patient_id, start_at, end_at, limit=limit,
                                       offset=offset)
    audit.record(conn, user, "read", "scores", now=now, patient_id=patient_id)
    return Page[ScoreOut](items=items, total=total, limit=limit, offset=offset)


@router.get("/trend", response_model=list[TrendPointOut])
def trend(
    patient_id: PatientId, code: VitalCode, conn: DB, now: Now, user: Reader,
    hours: Annotated[int, Query(ge=1, le=MAX_WINDOW_HOURS)] = 24,
    bucket_minutes: Annotated[int, Query(ge=1, le=24 * 60)] = 60,
) -> list[TrendPointOut]:
    """One vital downsampled into buckets (mean, min, max, count)."""
    load_patient(conn, patient_id)
    points = queries.trend(conn, patient_id, code, start=now - dt.timedelta(hours=hours),
                           end=now, bucket=dt.timedelta(minutes=bucket_minutes))
    audit.record(conn, user, "read", "trend", now=now, patient_id=patient_id,
                 detail={"code": code.value, "hours": hours})
    return points


def load_record(conn: Conn, patient_id: int, *, now: dt.datetime, hours: int) -> RecordOut:
    patient = load_patient(conn, patient_id)
    rec = record.load(conn, patient_id, now=now, window=dt.timedelta(hours=hours))
    admissions = admissions_of(conn, patient_id)
    open_alerts, _ = query_alerts(conn, now, state="all", patient_id=patient_id, limit=50)
    devices = devices_of_patient(conn, patient_id, now)
    units = queries.latest_units(conn, patient_id)
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
        evidence=evidence_queries.chart_evidence(conn, patient_id, rec.start, rec.end),
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
