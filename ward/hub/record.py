"""One patient's record for the patient page: vitals over time, NEWS2 history, alerts, plan.

Series come from the readings index `(patient_id, code, measured_at DESC)`: raw points for
windows up to `RAW_WINDOW_MAX`, hourly aggregates (`readings_hourly`) beyond it, so a 30-day
view reads ~720 points per vital instead of ~8,600.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from alerting import care_plan, care_plan_store
from alerting import due as due_rule
from alerting.due import DueReport
from alerting.news2 import Risk
from alerting.observations import Latest
from ward.hub import acuity
from ward.hub.acuity import Infusion, ScoreView, StoredScore

Conn = psycopg.Connection[Any]
# Three days of raw points (~860 at one reading per 5 min) draw well at chart width; longer
# windows switch to hourly means.
RAW_WINDOW_MAX = dt.timedelta(hours=72)
# Vitals drawn on the patient page, in RCP chart order, then the rest.
CHART_CODES = ("resp_rate", "spo2", "systolic_bp", "diastolic_bp", "pulse", "temperature",
               "o2_flow")
INFUSION_CODES = ("infusion_volume_infused", "infusion_volume_remaining", "infusion_rate")


@dataclass(frozen=True, slots=True)
class ScorePoint:
    computed_at: dt.datetime
    total: int
    risk: str
    complete: bool
    missing: tuple[str, ...]
    sub_scores: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class PatientRecord:
    patient_id: int
    start: dt.datetime
    end: dt.datetime
    hourly: bool
    latest: Mapping[str, Latest]
    score: ScoreView | None
    last_observation_at: dt.datetime | None
    overdue: bool
    infusion: Infusion | None
    series: Mapping[str, list[tuple[dt.datetime, float]]]
    scores: list[ScorePoint]
    plan: care_plan.CarePlan
    # Per-parameter due times (alerting.due, as the alert rule decides); None when the
    # patient is not admitted now (no monitoring is current after discharge).
    due: DueReport | None = None
    admitted: bool = True
    discharged_at: dt.datetime | None = None


def _series(conn: Conn, patient_id: int, codes: tuple[str, ...], *, start: dt.datetime,
            end: dt.datetime, hourly: bool) -> dict[str, list[tuple[dt.datetime, float]]]:
    out: dict[str, list[tuple[dt.datetime, float]]] = {c: [] for c in codes}
    if hourly:
        query = ("SELECT code, bucket, avg_value FROM readings_hourly WHERE patient_id = %s "
                 "AND code = ANY(%s) AND bucket >= %s AND bucket < %s ORDER BY code, bucket")
    else:
        query = ("SELECT code, measured_at, value FROM readings WHERE patient_id = %s "
                 "AND code = ANY(%s) AND measured_at >= %s AND measured_at < %s "
                 "ORDER BY code, measured_at")
    for code, at, value in conn.execute(query, (patient_id, list(codes), start, end)):
        out[str(code)].append((at, float(value)))
    return out


def load(conn: Conn, patient_id: int, *, now: dt.datetime, window: dt.timedelta
         ) -> PatientRecord:
    start, end = now - window, now + dt.timedelta(minutes=5)  # device clocks run a little fast
    latest = {
        str(code): Latest(str(code), at, float(value), str(device))
        for code, at, value, device in conn.execute(
            "SELECT code, measured_at, value, device_id FROM latest_readings "
            "WHERE patient_id = %s", (patient_id,))
    }
    plan = care_plan_store.load_care_plan(conn, patient_id)
    scores = [
        ScorePoint(at, int(total), str(risk), bool(complete), tuple(missing or ()),
                   dict(subs or {}))
        for at, total, risk, complete, missing, subs in conn.execute(
            "SELECT computed_at, total, risk, complete, missing, sub_scores FROM scores "
            "WHERE patient_id = %s AND computed_at >= %s AND computed_at < %s "
            "ORDER BY computed_at", (patient_id, start, end))
    ]
    newest = conn.execute(
        "SELECT computed_at, total, risk, any_single_3, complete, missing, sub_scores "
        "FROM scores WHERE patient_id = %s ORDER BY computed_at DESC LIMIT 1", (patient_id,),
    ).fetchone()
    stored = None
    if newest is not None:
        stored = StoredScore(newest[0], int(newest[1]), str(newest[2]), bool(newest[3]),
                             bool(newest[4]), tuple(newest[5] or ()), dict(newest[6] or {}))
    admission = conn.execute(
        "SELECT status, admitted_at, discharged_at FROM admissions WHERE patient_id = %s "
        "ORDER BY referred_at DESC, id DESC LIMIT 1", (patient_id,)).fetchone()
    admitted = admission is not None and admission[0] == "admitted"
    discharged_at = admission[2] if admission is not None and admission[0] == "discharged" else None
    current = acuity.current_score(latest, stored, spo2_scale=plan.spo2_scale, now=now)
    last_obs = acuity.last_observation_at(latest)
    report: DueReport | None = None
    if admitted and admission is not None:
        complete = conn.execute(
            "SELECT computed_at, total, risk FROM scores WHERE patient_id = %s AND complete "
            "AND computed_at >= %s AND computed_at <= %s ORDER BY computed_at DESC LIMIT 1",
            (patient_id, now - due_rule.BAND_MEMORY, now)).fetchone()
        last = None if complete is None else due_rule.LastComplete(
            complete[0], int(complete[1]), Risk(complete[2]))
        kit = [(str(d), str(k)) for d, k in conn.execute(
            "SELECT d.id, d.kind FROM device_assignments a JOIN devices d ON d.pk = a.device_pk "
            "WHERE a.patient_id = %s AND a.during @> %s::timestamptz AND d.active",
            (patient_id, now))]
        report = acuity.due_report(latest, last=last, kit=kit, admitted_at=admission[1],
                                   spo2_scale=plan.spo2_scale, now=now)
        if current is not None and report is not None and report.oxygen_unknown:
            current = replace(current, oxygen_unknown=True)
    else:
        current = None  # a discharged record shows no NEWS2 or monitoring advice as current
    hourly = window > RAW_WINDOW_MAX
    series = _series(conn, patient_id, CHART_CODES + INFUSION_CODES, start=start, end=end,
                     hourly=hourly)
    return PatientRecord(
        patient_id=patient_id, start=start, end=end, hourly=hourly, latest=latest,
        score=current, last_observation_at=last_obs,
        overdue=report is not None and bool(report.overdue(now)),
        infusion=acuity.infusion_from(latest), series=series, scores=scores, plan=plan,
        due=report, admitted=admitted, discharged_at=discharged_at,
    )
