"""The ward view as JSON: every admitted patient, most acute first, plus bed capacity."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ward.domain import nhs_number
from ward.hub import audit, wardview
from ward.hub.deps import DB, Now, SettingsDep
from ward.hub.routers.common import BIGINT_MAX, Reader
from ward.hub.routers.readings import CurrentScoreOut, current_score_out

router = APIRouter(prefix="/api/ward", tags=["ward"])


class DeviceHealthOut(BaseModel):
    device_id: str
    kind: str
    online: bool | None
    offline: bool
    battery_pct: float | None
    low_battery: bool
    reported_at: dt.datetime | None


class OpenAlertOut(BaseModel):
    id: int
    kind: str
    severity: str
    state: str
    summary: str
    raised_at: dt.datetime
    acknowledged_by: str | None
    next_escalation_at: dt.datetime | None


class InfusionBriefOut(BaseModel):
    state: str
    percent_done: float | None
    volume_remaining_ml: float | None
    needs_attention: bool


class WardRowOut(BaseModel):
    patient_id: int
    nhs_number: str
    name: str
    date_of_birth: dt.date
    admission_id: int
    pathway: str
    source: str
    admitted_at: dt.datetime
    ceiling_of_care: str
    spo2_scale: int
    score: CurrentScoreOut | None
    risk: str
    last_observation_at: dt.datetime | None
    minutes_since_observation: int | None
    overdue: bool
    devices: list[DeviceHealthOut]
    infusion: InfusionBriefOut | None
    alerts: list[OpenAlertOut]
    trend: list[tuple[dt.datetime, int]]


class WardOut(BaseModel):
    beds: int
    admitted: int
    occupancy_pct: float
    generated_at: dt.datetime
    rows: list[WardRowOut]


def row_out(row: wardview.WardRow, now: dt.datetime) -> WardRowOut:
    last = row.last_observation_at
    return WardRowOut(
        patient_id=row.patient_id, nhs_number=nhs_number.display(row.nhs_number),
        name=f"{row.given_name} {row.family_name}", date_of_birth=row.date_of_birth,
        admission_id=row.admission_id, pathway=row.pathway, source=row.source,
        admitted_at=row.admitted_at, ceiling_of_care=row.ceiling_of_care,
        spo2_scale=row.spo2_scale, score=current_score_out(row.score),
        risk=row.score.risk if row.score else "none", last_observation_at=last,
        minutes_since_observation=None if last is None else int((now - last).total_seconds()
                                                                 // 60),
        overdue=row.overdue,
        devices=[DeviceHealthOut(device_id=d.device_id, kind=d.kind, online=d.online,
                                 offline=d.offline(now), battery_pct=d.battery_pct,
                                 low_battery=d.low_battery, reported_at=d.reported_at)
                 for d in row.devices],
        infusion=None if row.infusion is None else InfusionBriefOut(
            state=row.infusion.state, percent_done=row.infusion.percent_done,
            volume_remaining_ml=row.infusion.volume_remaining_ml,
            needs_attention=row.infusion.needs_attention),
        alerts=[OpenAlertOut(id=a.id, kind=a.kind, severity=a.severity, state=a.state,
                             summary=a.summary, raised_at=a.raised_at,
                             acknowledged_by=a.acknowledged_by,
                             next_escalation_at=a.next_escalation_at) for a in row.alerts],
        trend=list(row.trend),
    )


@router.get("", response_model=WardOut)
def ward_view(
    conn: DB, now: Now, settings: SettingsDep, user: Reader,
    patient_id: Annotated[list[Annotated[int, Query(ge=1, le=BIGINT_MAX)]] | None,
                          Query(max_length=500, description="only these patients' rows")] = None,
) -> WardOut:
    """Every admitted patient, most acute first (band, NEWS2 total, longest unobserved)."""
    view = wardview.load(conn, now=now, beds=settings.ward_beds, patient_ids=patient_id)
    audit.record(conn, user, "read", "ward", now=now,
                 detail={"patients": len(view.rows), "subset": patient_id is not None})
    return WardOut(beds=view.beds, admitted=view.admitted,
                   occupancy_pct=round(100.0 * view.admitted / view.beds, 1),
                   generated_at=now, rows=[row_out(r, now) for r in view.rows])
