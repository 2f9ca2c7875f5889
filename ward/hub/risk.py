"""The hub's side of risk groups: entered facts, readmission scores, and the stored tier.

SQL only; every decision is in the pure modules (`alerting.lace`, `alerting.hospital_score`,
`alerting.risk_tier`). The hub never computes a tier: the alerting runner does, stores it with
its explanation and records a change in the patient's episode (`alerting.risk_store`,
`alerting.risk_findings`); the ward view, worklist, patient page, API and FHIR read that one
stored answer. Facts saved here make the patient's tier due again (the runner's next pass).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from alerting import risk_store, risk_tier
from alerting.risk_store import FACT_FIELDS as _FIELDS
from alerting.risk_store import StoredTier
from alerting.risk_tier import Tier
from ward.db import alerting_queue
from ward.domain.risk_factors import RiskFactors

Conn = psycopg.Connection[Any]
_R = TypeVar("_R")


def load_factors(conn: Conn, patient_id: int) -> RiskFactors:
    return risk_store.load_factors_many(conn, [patient_id]).get(patient_id, RiskFactors())


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
    # The facts feed the tier: queue the patient so the alerting runner re-assesses it now
    # (its due rule sees the facts newer than the tier) rather than at its next sweep;
    # urgent: a clinician's edit, not a stream of readings, so no coalescing hold.
    with conn.cursor() as cur:
        alerting_queue.enqueue(cur, [patient_id], now, [patient_id])


readmission = risk_store.readmission
tier_changes = risk_store.changes


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


def weights_table() -> list[dict[str, Any]]:
    """The weights as shown on screen: one line per factor, straight from the pure table."""
    return [{"factor": f, "label": risk_tier.LABELS[f],
             "steps": [{"at_least": s.at_least, "points": s.points} for s in steps]}
            for f, steps in risk_tier.WEIGHTS.items()]


def stored_tiers(conn: Conn, patient_ids: Sequence[int]) -> dict[int, StoredTier]:
    return risk_store.stored(conn, patient_ids)


def tier_brief(a: StoredTier | None) -> dict[str, Any] | None:
    """The tier as a ward row shows it: the tier, its points and the factors that scored."""
    if a is None:
        return None
    return {"tier": a.tier.value, "points": a.points, "assessed_at": a.assessed_at.isoformat(),
            "why": [f"{c['label']} +{c['points']}" for c in a.contributions if c["points"]]}


def sort_and_filter(rows: list[_R], tiers: Mapping[int, StoredTier], *, by_tier: bool,
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
