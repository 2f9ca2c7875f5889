"""Risk groups: the facts a manager enters (LACE / HOSPITAL inputs), the readmission scores,
and the virtual-ward risk tier with every factor's contribution (`ward.hub.risk`).

The tier is the one the alerting runner stored (`alerting.risk_store`); the hub never computes
one. A patient on the ward whom the runner has not assessed yet has none ("not assessed yet").
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from alerting import risk_tier
from ward.domain.errors import DomainError
from ward.domain.risk_factors import Acuity, Comorbidity, RiskFactors
from ward.hub import audit, risk
from ward.hub.deps import DB, Now
from ward.hub.problems import Invalid
from ward.hub.queries import admissions
from ward.hub.routers.common import Clinical, PatientId, Reader, require_patient

router = APIRouter(prefix="/api/patients/{patient_id}", tags=["risk"])
Count = Annotated[int | None, Field(ge=0, le=1000)]


class RiskFactorsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    admissions_6_months: Count = None
    admissions_12_months: Count = None
    index_stay_days: Count = None
    acuity: Acuity | None = None
    comorbidities: list[Comorbidity] = Field(default_factory=list, max_length=20)
    ed_visits_6_months: Count = None
    haemoglobin_g_dl: Annotated[float | None, Field(ge=1, le=30)] = None
    sodium_mmol_l: Annotated[float | None, Field(ge=90, le=200)] = None
    oncology: bool | None = None
    procedure: bool | None = None

    def to_domain(self) -> RiskFactors:
        try:
            return RiskFactors(**{**self.model_dump(), "comorbidities":
                                  frozenset(self.comorbidities)})
        except DomainError as exc:
            raise Invalid(str(exc)) from exc


class ComponentOut(BaseModel):
    code: str
    points: int


class ScoreOut(BaseModel):
    total: int
    components: list[ComponentOut]
    risk: str | None = None
    missing: list[str] = []


class RiskFactorsOut(RiskFactorsIn):
    lace: ScoreOut | None
    hospital: ScoreOut | None
    history: list[dict[str, Any]]


class ContributionOut(BaseModel):
    factor: str
    label: str
    value: float | None
    points: int
    max_points: int
    detail: str


class TierOut(BaseModel):
    patient_id: int
    tier: str
    points: int
    assessed_at: dt.datetime
    since: dt.datetime = Field(description="in this tier since")
    contributions: list[ContributionOut]
    weights: list[dict[str, Any]]
    thresholds: dict[str, int]
    changes: list[dict[str, Any]]


def factors_out(conn: Any, patient_id: int) -> RiskFactorsOut:
    f = risk.load_factors(conn, patient_id)
    la, ho = risk.readmission(f)
    return RiskFactorsOut(
        admissions_6_months=f.admissions_6_months, admissions_12_months=f.admissions_12_months,
        index_stay_days=f.index_stay_days, acuity=f.acuity,
        comorbidities=sorted(f.comorbidities), ed_visits_6_months=f.ed_visits_6_months,
        haemoglobin_g_dl=f.haemoglobin_g_dl, sodium_mmol_l=f.sodium_mmol_l,
        oncology=f.oncology, procedure=f.procedure,
        lace=None if la is None else ScoreOut(
            total=la.total, components=[ComponentOut(code=c, points=p)
                                        for c, p in la.components()]),
        hospital=None if ho is None else ScoreOut(
            total=ho.total, risk=ho.risk.value, missing=list(ho.missing),
            components=[ComponentOut(code=c, points=p) for c, p in ho.components()]),
        history=risk.stored_scores(conn, patient_id))


def tier_out(conn: Any, patient_id: int) -> TierOut | None:
    """The stored tier of an admitted patient (None: not admitted, or not assessed yet)."""
    stored = risk.stored_tiers(conn, [patient_id]).get(patient_id)
    if stored is None:
        return None
    return TierOut(
        patient_id=patient_id, tier=stored.tier.value, points=stored.points,
        assessed_at=stored.assessed_at, since=stored.since,
        contributions=[ContributionOut(**c) for c in stored.contributions],
        weights=risk.weights_table(),
        thresholds={"rising": risk_tier.RISING_FROM, "high": risk_tier.HIGH_FROM},
        changes=risk.tier_changes(conn, patient_id))


@router.get("/risk-factors", response_model=RiskFactorsOut)
def read_factors(patient_id: PatientId, conn: DB, now: Now, user: Reader) -> RiskFactorsOut:
    require_patient(conn, patient_id)
    audit.record(conn, user, "read", "risk_factors", now=now, entity_id=patient_id,
                 patient_id=patient_id)
    return factors_out(conn, patient_id)


@router.put("/risk-factors", response_model=RiskFactorsOut)
def write_factors(patient_id: PatientId, body: RiskFactorsIn, conn: DB, now: Now,
                  user: Clinical) -> RiskFactorsOut:
    """Enter or correct the facts; LACE and HOSPITAL are recomputed and kept."""
    require_patient(conn, patient_id)
    risk.save_factors(conn, patient_id, body.to_domain(), now=now, by=user.username)
    risk.record_scores(conn, patient_id, admissions.open_admission_id(conn, patient_id),
                       "update", now=now)
    audit.record(conn, user, "update", "risk_factors", now=now, entity_id=patient_id,
                 patient_id=patient_id, detail=body.model_dump(mode="json"))
    return factors_out(conn, patient_id)


@router.get("/risk", response_model=TierOut)
def read_tier(patient_id: PatientId, conn: DB, now: Now, user: Reader) -> TierOut:
    """The virtual-ward risk tier and why: every factor, its value and its points."""
    require_patient(conn, patient_id)
    audit.record(conn, user, "read", "risk_tier", now=now, entity_id=patient_id,
                 patient_id=patient_id)
    out = tier_out(conn, patient_id)
    if out is None:
        raise Invalid("no risk tier: the patient is not on the ward, or the alerting runner "
                      "has not assessed them yet")
    return out


def risk_context(conn: Any, patient_id: int) -> dict[str, Any]:
    """What the patient page's risk section shows (`_risk_panel.html`)."""
    return {"risk_tier": tier_out(conn, patient_id),
            "risk_facts": factors_out(conn, patient_id)}
