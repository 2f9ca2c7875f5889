"""The thin store for risk groups: entered facts, readmission scores, tiers and tier changes.

SQL only; every decision is in the pure modules (`alerting.lace`, `alerting.hospital_score`,
`alerting.risk_tier`). A tier is computed whenever the hub shows it (ward view, patient page,
API, FHIR); a change from the last recorded tier is written to `risk_tier_changes` with its
evidence as a low-severity finding that never pages. (Recording it from the alerting runner,
as scores arrive, and attaching it to the episode model is left to the merge.)
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from alerting import hospital_score, lace, news2, risk_tier
from alerting.risk_tier import Assessment, RiskInputs, ScorePoint, Tier
from ward.domain.risk_factors import Acuity, Comorbidity, RiskFactors

Conn = psycopg.Connection[Any]
_R = TypeVar("_R")

_FIELDS = ("admissions_6_months", "admissions_12_months", "index_stay_days", "acuity",
           "comorbidities", "ed_visits_6_months", "haemoglobin_g_dl", "sodium_mmol_l",
           "oncology", "procedure_during_stay")
# A spot-check kit cannot do "continuous": at NEWS2 >= 7 an hourly set is what we count on.
_CONTINUOUS_AS = dt.timedelta(hours=1)


def load_factors(conn: Conn, patient_id: int) -> RiskFactors:
    return load_factors_many(conn, [patient_id]).get(patient_id, RiskFactors())


def load_factors_many(conn: Conn, patient_ids: Sequence[int]) -> dict[int, RiskFactors]:
    """The entered facts of the patients who have any (one query for a whole ward)."""
    rows = conn.execute(sql.SQL(
        "SELECT patient_id, {} FROM risk_factors WHERE patient_id = ANY(%s)").format(
            sql.SQL(", ").join(map(sql.Identifier, _FIELDS))), [list(patient_ids)])
    return {row[0]: _factors(dict(zip(_FIELDS, row[1:], strict=True))) for row in rows}


def _factors(values: dict[str, Any]) -> RiskFactors:
    return RiskFactors(
        admissions_6_months=values["admissions_6_months"],
        admissions_12_months=values["admissions_12_months"],
        index_stay_days=values["index_stay_days"],
        acuity=Acuity(values["acuity"]) if values["acuity"] else None,
        comorbidities=frozenset(Comorbidity(c) for c in values["comorbidities"]),
        ed_visits_6_months=values["ed_visits_6_months"],
        haemoglobin_g_dl=values["haemoglobin_g_dl"], sodium_mmol_l=values["sodium_mmol_l"],
        oncology=values["oncology"], procedure=values["procedure_during_stay"])


def save_factors(conn: Conn, patient_id: int, factors: RiskFactors, *, now: dt.datetime,
                 by: str) -> None:
    values = [factors.admissions_6_months, factors.admissions_12_months,
              factors.index_stay_days, factors.acuity.value if factors.acuity else None,
              sorted(c.value for c in factors.comorbidities), factors.ed_visits_6_months,
              factors.haemoglobin_g_dl, factors.sodium_mmol_l, factors.oncology,
              factors.procedure]
    cols = [*_FIELDS, "updated_at", "updated_by"]
    conn.execute(sql.SQL(
        "INSERT INTO risk_factors (patient_id, {cols}) VALUES (%s, {marks}) "
        "ON CONFLICT (patient_id) DO UPDATE SET {sets}").format(
            cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
            marks=sql.SQL(", ").join(sql.Placeholder() * len(cols)),
            sets=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                                    for c in cols)),
        [patient_id, *values, now, by])


def readmission(factors: RiskFactors) -> tuple[lace.LaceScore | None,
                                               hospital_score.HospitalScore | None]:
    return lace.from_factors(factors), hospital_score.from_factors(factors)


def record_scores(conn: Conn, patient_id: int, admission_id: int | None, stage: str, *,
                  now: dt.datetime) -> None:
    """Compute LACE and HOSPITAL from the entered facts and keep them (referral, discharge,
    or an update of the facts). Nothing is written while neither score can be computed."""
    la, ho = readmission(load_factors(conn, patient_id))
    if la is None and ho is None:
        return
    components = {"lace": dict(la.components()) if la else None,
                  "hospital": dict(ho.components()) if ho else None,
                  "missing": list(ho.missing) if ho else []}
    conn.execute(
        "INSERT INTO readmission_scores (patient_id, admission_id, stage, lace, hospital, "
        "components, computed_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [patient_id, admission_id, stage, la.total if la else None,
         ho.total if ho else None, Jsonb(components), now])


def stored_scores(conn: Conn, patient_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT stage, lace, hospital, components, computed_at FROM readmission_scores "
        "WHERE patient_id = %s ORDER BY computed_at DESC, id DESC LIMIT 20", [patient_id])
    return [{"stage": s, "lace": la, "hospital": ho, "components": c, "computed_at": at}
            for s, la, ho, c, at in rows]


def expected_sets(latest: ScorePoint | None, risk: str | None, observed_for: dt.timedelta,
                  ) -> int:
    """Sets the NEWS2 monitoring frequency of the latest score asks for over the last 24 h
    (or since admission, if shorter)."""
    if latest is None or risk is None or observed_for <= dt.timedelta(0):
        return 0
    interval = news2.monitoring_for(latest.total, news2.Risk(risk)).interval or _CONTINUOUS_AS
    span = min(risk_tier.RECENT, observed_for)
    return max(1, math.floor(span / interval))


def assess_many(conn: Conn, patient_ids: Sequence[int], now: dt.datetime,
                ) -> dict[int, Assessment]:
    """The tier of each admitted patient among `patient_ids`, at `now`."""
    if not patient_ids:
        return {}
    admitted = {pid: (at, pathway) for pid, at, pathway in conn.execute(
        "SELECT patient_id, admitted_at, pathway FROM admissions WHERE status = 'admitted' "
        "AND patient_id = ANY(%s)", [list(patient_ids)])}
    series: dict[int, list[ScorePoint]] = {pid: [] for pid in admitted}
    latest_risk: dict[int, str] = {}
    # The first 24 h on the ward (the own-baseline window) and the last 72 h (the trajectory),
    # one point per clock hour: the hour's last score, complete if any set in the hour was.
    # A wearable is scored every few minutes; hourly points keep a week of them cheap and
    # weigh every hour alike in the means.
    for pid, at, total, complete, risk in conn.execute(
        "SELECT s.patient_id, max(s.computed_at), "
        "(array_agg(s.total ORDER BY s.computed_at DESC))[1], bool_or(s.complete), "
        "(array_agg(s.risk ORDER BY s.computed_at DESC))[1] FROM scores s "
        "JOIN admissions a ON a.patient_id = s.patient_id AND a.status = 'admitted' "
        "WHERE s.patient_id = ANY(%s) AND s.computed_at >= a.admitted_at "
        "AND s.computed_at <= %s AND (s.computed_at < a.admitted_at + %s "
        "OR s.computed_at > %s) GROUP BY s.patient_id, date_trunc('hour', s.computed_at) "
        "ORDER BY 2",
        [list(admitted), now, risk_tier.BASELINE_SPAN, now - risk_tier.TRAJECTORY_SPAN],
    ):
        series[pid].append(ScorePoint(at, int(total), bool(complete)))
        latest_risk[pid] = risk
    readmit: dict[int, tuple[int | None, int | None]] = {}
    facts = load_factors_many(conn, list(admitted))
    for pid in admitted:
        la, ho = readmission(facts.get(pid, RiskFactors()))
        readmit[pid] = (la.total if la else None, ho.total if ho else None)
    out: dict[int, Assessment] = {}
    for pid, (admitted_at, pathway) in admitted.items():
        points = series[pid]
        latest = points[-1] if points else None
        out[pid] = risk_tier.assess(RiskInputs(
            points, expected_sets(latest, latest_risk.get(pid), now - admitted_at),
            lace=readmit[pid][0], hospital=readmit[pid][1], step_up=pathway == "step_up"),
            now)
    return out


def record_changes(conn: Conn, assessments: dict[int, Assessment]) -> list[int]:
    """Write a `risk_tier_changes` row for each patient whose tier differs from the last one
    recorded; returns those patients."""
    if not assessments:
        return []
    last = {pid: Tier(tier) for pid, tier in conn.execute(
        "SELECT DISTINCT ON (patient_id) patient_id, to_tier FROM risk_tier_changes "
        "WHERE patient_id = ANY(%s) ORDER BY patient_id, changed_at DESC, id DESC",
        [list(assessments)])}
    changed = [pid for pid, a in assessments.items() if risk_tier.changed(last.get(pid), a.tier)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO risk_tier_changes (patient_id, from_tier, to_tier, points, evidence, "
            "changed_at) VALUES (%s, %s, %s, %s, %s, %s)",
            [(pid, last[pid].value if pid in last else None, assessments[pid].tier.value,
              assessments[pid].points, Jsonb(evidence(assessments[pid])), assessments[pid].at)
             for pid in changed])
    return changed


def evidence(a: Assessment) -> list[dict[str, Any]]:
    return [asdict(c) for c in a.contributions]


def tier_changes(conn: Conn, patient_id: int, limit: int = 10) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT from_tier, to_tier, points, changed_at FROM risk_tier_changes "
        "WHERE patient_id = %s ORDER BY changed_at DESC, id DESC LIMIT %s", [patient_id, limit])
    return [{"from_tier": f, "to_tier": t, "points": p, "changed_at": at} for f, t, p, at in rows]


def weights_table() -> list[dict[str, Any]]:
    """The weights as shown on screen: one line per factor, straight from the pure table."""
    return [{"factor": f, "label": risk_tier.LABELS[f],
             "steps": [{"at_least": s.at_least, "points": s.points} for s in steps]}
            for f, steps in risk_tier.WEIGHTS.items()]


def tier_brief(a: Assessment | None) -> dict[str, Any] | None:
    """The tier as a ward row shows it: the tier, its points and the factors that scored."""
    if a is None:
        return None
    return {"tier": a.tier.value, "points": a.points,
            "why": [f"{c.label} +{c.points}" for c in a.contributions if c.points]}


def sort_and_filter(rows: list[_R], tiers: dict[int, Assessment], *, by_tier: bool,
                    only: Sequence[Tier] | None) -> list[_R]:
    """Rows (already in NEWS2 order) filtered to the `only` tiers and, with `by_tier`, sorted
    highest tier first; ties keep the NEWS2 order (a stable sort)."""

    def rank(row: _R) -> int:
        a = tiers.get(_pid(row))
        return -1 if a is None else a.tier.rank

    if only:
        wanted = set(only)
        rows = [r for r in rows if (a := tiers.get(_pid(r))) is not None and a.tier in wanted]
    return sorted(rows, key=lambda r: -rank(r)) if by_tier else list(rows)


def _pid(row: Any) -> int:
    return int(row["patient_id"] if isinstance(row, dict) else row.patient_id)
