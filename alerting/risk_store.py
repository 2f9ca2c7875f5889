"""Thin SQL for the risk tier: the runner's inputs, the stored tier and its history.

The alerting runner (:func:`alerting.runner.assess_tiers`) is the one place a tier is
computed: per evaluated batch and on the timer sweep it asks :func:`assess_due` for the
patients whose tier may have moved, decides what that does to their episodes
(:mod:`alerting.risk_findings`) and keeps the result with :func:`save`. The hub only reads
:func:`stored` (ward view, worklist, patient page, API, FHIR), so every screen shows the same
answer, and the one the episode recorded.

Tables (migrations 0140, 0250): ``risk_tiers`` holds each patient's current tier with its
explanation (every factor and its points) and since when it holds; ``risk_tier_changes`` is
the history of changes, each naming the episode it was recorded in (none for a fall with no
episode open, or for the first assessment of an admission).

No clinical logic here: the tier is :func:`alerting.risk_tier.assess`'s, the readmission
scores are :mod:`alerting.lace` and :mod:`alerting.hospital_score`'s.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql

from alerting import hospital_score, lace, news2, risk_findings, risk_tier, store
from alerting.risk_tier import Assessment, RiskInputs, ScorePoint, Tier
from ward.domain.risk_factors import Acuity, Comorbidity, RiskFactors

Conn = psycopg.Connection[Any]

#: A tier is at most this stale (the guarantee; the hub shows it as current): its inputs are
#: hourly points and 24 h windows, and the missed-sets factor moves with time alone.
REASSESS: Final = dt.timedelta(minutes=5)
#: Tiers assessed per call at most, and the sweep makes one call (alerting.scheduler): one
#: wearable patient's 4 days of 5-minute scores cost ~13 ms on a loaded 2-core machine
#: (`benchmarks/bench_risk_runner.py`), so a sweep spends ~1-2 s on tiers, and holds the
#: patients' evaluation locks only while it stores them. The first sweep after 1,000
#: admissions assessed all of them in 100-patient chunks holding their locks for ~22 s while
#: evaluator passes waited (the p99 tail of bench_latency, issue 14).
MAX_PER_CALL: Final = 100
#: A tier is due again this long after it was assessed (or sooner when its NEWS2 total or the
#: readmission facts moved), stalest first: with MAX_PER_CALL per 15 s sweep, a ward of up to
#: MAX_PER_CALL x (REASSESS - DUE_AFTER) / 15 s = 1,000 patients is re-assessed within
#: DUE_AFTER + 2.5 min = REASSESS of its last assessment (tests/alerting/test_risk_tier_runner).
DUE_AFTER: Final = REASSESS / 2
# A spot-check kit cannot do "continuous": at NEWS2 >= 7 an hourly set is what we count on.
_CONTINUOUS_AS: Final = dt.timedelta(hours=1)
FACT_FIELDS: Final = ("admissions_6_months", "admissions_12_months", "index_stay_days",
                      "acuity", "comorbidities", "ed_visits_6_months", "haemoglobin_g_dl",
                      "sodium_mmol_l", "oncology", "procedure_during_stay")


@dataclass(frozen=True, slots=True)
class Assessed:
    """One patient's assessment in this pass, beside the tier stored before it."""

    patient_id: int
    previous: Tier | None  # None: first assessment of this admission
    previous_since: dt.datetime | None
    previous_points: int | None
    assessment: Assessment | None  # None: no longer on the ward (an active finding clears)


@dataclass(frozen=True, slots=True)
class StoredTier:
    patient_id: int
    tier: Tier
    points: int
    contributions: tuple[dict[str, Any], ...]
    assessed_at: dt.datetime
    since: dt.datetime


def load_factors_many(conn: Conn, patient_ids: Sequence[int]) -> dict[int, RiskFactors]:
    """The entered facts of the patients who have any (one query for a whole ward)."""
    rows = conn.execute(sql.SQL(
        "SELECT patient_id, {} FROM risk_factors WHERE patient_id = ANY(%s)").format(
            sql.SQL(", ").join(map(sql.Identifier, FACT_FIELDS))), [list(patient_ids)])
    return {row[0]: _factors(dict(zip(FACT_FIELDS, row[1:], strict=True))) for row in rows}


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


def readmission(factors: RiskFactors) -> tuple[lace.LaceScore | None,
                                               hospital_score.HospitalScore | None]:
    return lace.from_factors(factors), hospital_score.from_factors(factors)


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
    # One index probe per patient-hour (the hour's last score; a second probe only when that
    # one was partial) instead of aggregating every score: a wearable stores up to 12 an hour,
    # and this was a third faster than a GROUP BY over them on a loaded machine.
    for pid, at, total, complete, risk in conn.execute(_HOURLY, {
        "ids": list(admitted), "now": now, "base": risk_tier.BASELINE_SPAN,
        "since": now - risk_tier.TRAJECTORY_SPAN},
    ):
        series[pid].append(ScorePoint(at, int(total), bool(complete)))
        latest_risk[pid] = risk
    facts = load_factors_many(conn, list(admitted))
    out: dict[int, Assessment] = {}
    for pid, (admitted_at, pathway) in admitted.items():
        la, ho = readmission(facts.get(pid, RiskFactors()))
        points = series[pid]
        latest = points[-1] if points else None
        out[pid] = risk_tier.assess(RiskInputs(
            points, expected_sets(latest, latest_risk.get(pid), now - admitted_at),
            lace=la.total if la else None, hospital=ho.total if ho else None,
            step_up=pathway == "step_up"), now)
    return out


_IN_WINDOW = ("s.computed_at >= a.admitted_at AND s.computed_at <= %(now)s "
              "AND (s.computed_at < a.admitted_at + %(base)s OR s.computed_at > %(since)s)")
_HOURLY = (
    "SELECT a.patient_id, l.computed_at, l.total, l.complete OR EXISTS (SELECT 1 FROM scores s "
    "  WHERE s.patient_id = a.patient_id AND s.computed_at >= h "
    "  AND s.computed_at < h + interval '1 hour' AND s.complete AND " + _IN_WINDOW + "), l.risk "
    "FROM admissions a CROSS JOIN LATERAL generate_series(date_trunc('hour', a.admitted_at), "
    "  date_trunc('hour', %(now)s::timestamptz), interval '1 hour') AS h "
    "CROSS JOIN LATERAL (SELECT s.computed_at, s.total, s.complete, s.risk FROM scores s "
    "  WHERE s.patient_id = a.patient_id AND s.computed_at >= h "
    "  AND s.computed_at < h + interval '1 hour' AND " + _IN_WINDOW + " "
    "  ORDER BY s.computed_at DESC LIMIT 1) AS l "
    "WHERE a.status = 'admitted' AND a.patient_id = ANY(%(ids)s) "
    "AND (h < a.admitted_at + %(base)s OR h + interval '1 hour' > %(since)s) ORDER BY 2"
)

# Due: admitted, and never assessed this admission, or the latest NEWS2 total differs from the
# one assessed, or the facts were edited since, or assessed DUE_AFTER ago; never assessed
# first, then the stalest (a moved input does not jump the queue: with a ward of wearables
# whose totals move every few minutes it would starve the stale ones past REASSESS); at most
# MAX_PER_CALL of them. Also due: a patient off the ward whose
# open episode still holds an active tier finding (it clears).
_DUE = (
    "(SELECT patient_id, tier, since, points FROM (SELECT a.patient_id, t.tier, t.since, "
    "  t.points, t.assessed_at, (t.patient_id IS NULL "
    "  OR t.news2_total IS DISTINCT FROM (SELECT s.total FROM scores s "
    "     WHERE s.patient_id = a.patient_id AND s.computed_at <= %(now)s "
    "     ORDER BY s.computed_at DESC LIMIT 1) "
    "  OR EXISTS (SELECT 1 FROM risk_factors f WHERE f.patient_id = a.patient_id "
    "     AND f.updated_at > t.assessed_at)) AS moved "
    "  FROM admissions a LEFT JOIN risk_tiers t ON t.patient_id = a.patient_id "
    "  AND t.assessed_at >= a.admitted_at "
    "  WHERE a.status = 'admitted' AND a.patient_id = ANY(%(ids)s)) AS d "
    " WHERE moved OR assessed_at <= %(stale)s "
    " ORDER BY assessed_at NULLS FIRST, patient_id LIMIT %(cap)s) "
    "UNION SELECT al.patient_id, NULL, NULL, NULL FROM alerts al "
    "JOIN alert_findings f ON f.alert_id = al.id AND f.kind = %(kind)s AND f.cleared_at IS NULL "
    "WHERE al.state <> 'resolved' AND al.patient_id = ANY(%(ids)s) AND NOT EXISTS ("
    "  SELECT 1 FROM admissions a WHERE a.patient_id = al.patient_id AND a.status = 'admitted') "
    "ORDER BY 1"
)


def assess_due(conn: Conn, patient_ids: Sequence[int], now: dt.datetime) -> list[Assessed]:
    """Assess the patients among `patient_ids` whose tier is due (see :data:`REASSESS`), at
    most :data:`MAX_PER_CALL` of them, the stalest first."""
    if not patient_ids:
        return []
    due = conn.execute(_DUE, {"ids": sorted(set(patient_ids)), "stale": now - DUE_AFTER,
                              "now": now, "kind": risk_findings.KIND.value,
                              "cap": MAX_PER_CALL}).fetchall()
    if not due:
        return []
    assessed = assess_many(conn, [row[0] for row in due], now)
    return [Assessed(pid, None if tier is None else Tier(tier), since, points,
                     assessed.get(pid)) for pid, tier, since, points in due]


def save(conn: Conn, assessed: Sequence[Assessed], now: dt.datetime) -> list[int]:
    """Store the tiers assessed and a history row for each change (the first assessment of an
    admission included), naming the episode it went into; NOTIFY ``risk_tier`` for the
    patients whose tier or points moved (their ward rows). Returns those whose tier changed."""
    rows = [{"patient_id": a.patient_id, "tier": a.assessment.tier.value,
             "points": a.assessment.points, "news2_total": _news2_total(a.assessment),
             "contributions": risk_findings.explanation(a.assessment),
             "assessed_at": now.isoformat(),
             "since": (a.previous_since if a.previous is a.assessment.tier
                       and a.previous_since is not None else now).isoformat(),
             "changed": a.previous is not a.assessment.tier,
             "moved": (a.previous, a.previous_points) != (a.assessment.tier,
                                                          a.assessment.points),
             "from_tier": a.previous.value if a.previous else None}
            for a in assessed if a.assessment is not None]
    if not rows:
        return []
    payload = json.dumps(rows, default=str)
    conn.execute(
        "INSERT INTO risk_tiers (patient_id, tier, points, news2_total, contributions, "
        "assessed_at, since) SELECT patient_id, tier, points, news2_total, contributions, "
        "assessed_at, since FROM jsonb_to_recordset(%s::jsonb) AS r(patient_id bigint, "
        "tier text, points smallint, news2_total smallint, contributions jsonb, "
        "assessed_at timestamptz, since timestamptz) ON CONFLICT (patient_id) DO UPDATE SET "
        "tier = EXCLUDED.tier, points = EXCLUDED.points, news2_total = EXCLUDED.news2_total, "
        "contributions = EXCLUDED.contributions, assessed_at = EXCLUDED.assessed_at, "
        "since = EXCLUDED.since", (payload,))
    # The episode a change went into: the patient's open one (or the one this pass resolved).
    conn.execute(
        "INSERT INTO risk_tier_changes (patient_id, from_tier, to_tier, points, evidence, "
        "changed_at, alert_id) SELECT r.patient_id, r.from_tier, r.tier, r.points, "
        "r.contributions, r.assessed_at, (SELECT al.id FROM alerts al "
        "  WHERE al.patient_id = r.patient_id AND (al.state <> 'resolved' "
        "  OR al.resolved_at = r.assessed_at) ORDER BY al.id DESC LIMIT 1) "
        "FROM jsonb_to_recordset(%s::jsonb) AS r(patient_id bigint, from_tier text, tier text, "
        "points smallint, contributions jsonb, assessed_at timestamptz, changed boolean) "
        "WHERE r.changed", (payload,))
    store.notify(conn, [{"type": "risk_tier", "patient_id": r["patient_id"]}
                        for r in rows if r["moved"]])
    return [a.patient_id for a in assessed
            if a.assessment is not None and a.previous is not a.assessment.tier]


def _news2_total(a: Assessment) -> int | None:
    now = next((c for c in a.contributions if c.factor == "news2_now"), None)
    return None if now is None or now.value is None else int(now.value)


def stored(conn: Conn, patient_ids: Sequence[int]) -> dict[int, StoredTier]:
    """The stored tier of each patient on the ward among `patient_ids` (assessed during the
    current admission; a patient not assessed yet has none)."""
    if not patient_ids:
        return {}
    return {pid: StoredTier(pid, Tier(tier), points, tuple(contributions), at, since)
            for pid, tier, points, contributions, at, since in conn.execute(
                "SELECT t.patient_id, t.tier, t.points, t.contributions, t.assessed_at, "
                "t.since FROM risk_tiers t JOIN admissions a ON a.patient_id = t.patient_id "
                "AND a.status = 'admitted' AND t.assessed_at >= a.admitted_at "
                "WHERE t.patient_id = ANY(%s)", [list(patient_ids)])}


def changes(conn: Conn, patient_id: int, limit: int = 10) -> list[dict[str, Any]]:
    """The patient's latest tier changes, newest first, each with the episode it went into."""
    rows = conn.execute(
        "SELECT from_tier, to_tier, points, changed_at, alert_id FROM risk_tier_changes "
        "WHERE patient_id = %s ORDER BY changed_at DESC, id DESC LIMIT %s", [patient_id, limit])
    return [{"from_tier": f, "to_tier": t, "points": p, "changed_at": at, "alert_id": aid}
            for f, t, p, at, aid in rows]
