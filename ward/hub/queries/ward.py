"""The ward view as the API shows it: one row per admitted patient (the rows themselves are
computed by `ward.hub.wardview` and cached by `ward.hub.wardcache`)."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import orjson
from pydantic import BaseModel

from ward.domain import nhs_number
from ward.hub import acuity, wardview
from ward.hub.acuity import ScoreView
from ward.hub.queries.readings import (
    CurrentScoreOut,
    DueOut,
    LatestOut,
    current_score_out,
    due_out,
    latest_out,
)


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
    #: The band shown and sorted by: the score's ("incomplete" for a partial low score),
    #: raised to the open NEWS2 alert's so the row never disagrees with its alert.
    risk: str
    alert_band: str | None
    last_observation_at: dt.datetime | None
    minutes_since_observation: int | None
    overdue: bool
    due: list[DueOut]
    latest: dict[str, LatestOut]
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
        risk=row.band, alert_band=row.alert_band, last_observation_at=last,
        minutes_since_observation=None if last is None else int((now - last).total_seconds()
                                                                 // 60),
        overdue=row.overdue, due=due_out(row.due, now), latest=latest_out(row.latest, now),
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


# -- the same row as JSON-ready values, without building and dumping fifteen models ---------
# `row_out(row, now).model_dump(mode="json")` cost ~0.5 ms a row (validation, then
# serialisation), a third of recomputing a row; the ward cache recomputes every row a reading
# changes, so at 2,000 readings/s it was most of the hub's CPU. `row_json` writes the same
# values directly, instants left as datetimes for orjson to write (`orjson.OPT_UTC_Z` writes
# them as pydantic does, "…Z" for UTC; tests/hub/test_ward_row_json.py compares the two on
# varied rows); the models above stay the schema (OpenAPI, `response_model`).
ROW_JSON_OPTIONS = orjson.OPT_UTC_Z


# Formatting checks the number's check digit (~60 µs); a ward has a thousand numbers.
_display = functools.lru_cache(maxsize=8192)(nhs_number.display)


def _opt_float(x: float | None) -> float | None:
    return None if x is None else float(x)


def _score_json(view: ScoreView | None) -> dict[str, Any] | None:
    if view is None:
        return None
    return {
        "computed_at": view.computed_at, "total": int(view.total), "risk": view.risk,
        "complete": bool(view.complete), "missing": list(view.missing),
        "sub_scores": {str(k): int(v) for k, v in view.sub_scores.items()},
        "source": view.source, "any_single_3": bool(view.any_single_3),
        "monitoring_frequency": view.monitoring_frequency,
        "status": "complete" if view.complete else "incomplete", "present": view.present,
        "band": view.band, "label": view.label, "oxygen_unknown": bool(view.oxygen_unknown),
    }


def row_json(row: wardview.WardRow, now: dt.datetime) -> dict[str, Any]:
    """`row_out(row, now).model_dump(mode="json")`, written directly (instants as datetimes:
    dump with `ROW_JSON_OPTIONS`)."""
    last = row.last_observation_at
    due = [] if row.due is None else [
        {"parameter": p.parameter.value, "method": p.method, "last_at": p.last_at,
         "due_at": p.due_at, "overdue_at": p.overdue_at,
         "overdue": p.overdue(now)} for p in row.due.parameters]
    inf = row.infusion
    return {
        "patient_id": row.patient_id, "nhs_number": _display(row.nhs_number),
        "name": f"{row.given_name} {row.family_name}",
        "date_of_birth": row.date_of_birth.isoformat(), "admission_id": row.admission_id,
        "pathway": row.pathway, "source": row.source, "admitted_at": row.admitted_at,
        "ceiling_of_care": row.ceiling_of_care, "spo2_scale": row.spo2_scale,
        "score": _score_json(row.score), "risk": row.band, "alert_band": row.alert_band,
        "last_observation_at": last,
        "minutes_since_observation": None if last is None else int(
            (now - last).total_seconds() // 60),
        "overdue": row.overdue, "due": due,
        "latest": {code: {"value": float(v.value), "measured_at": v.measured_at,
                          "age_minutes": int((now - v.measured_at).total_seconds() // 60),
                          "stale": acuity.is_stale(code, v.measured_at, now)}
                   for code, v in sorted(row.latest.items())},
        "devices": [{"device_id": d.device_id, "kind": d.kind, "online": d.online,
                     "offline": d.offline(now), "battery_pct": _opt_float(d.battery_pct),
                     "low_battery": d.low_battery, "reported_at": d.reported_at}
                    for d in row.devices],
        "infusion": None if inf is None else {
            "state": inf.state, "percent_done": _opt_float(inf.percent_done),
            "volume_remaining_ml": _opt_float(inf.volume_remaining_ml),
            "needs_attention": inf.needs_attention},
        "alerts": [{"id": a.id, "kind": a.kind, "severity": a.severity, "state": a.state,
                    "summary": a.summary, "raised_at": a.raised_at,
                    "acknowledged_by": a.acknowledged_by,
                    "next_escalation_at": a.next_escalation_at}
                   for a in row.alerts],
        "trend": list(row.trend),  # (instant, int total) pairs: orjson writes arrays
    }
