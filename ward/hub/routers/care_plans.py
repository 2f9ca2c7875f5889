"""Care plans: SpO2 scale (Scale 2 by a clinician, with a reason), thresholds, ceiling of care,
IV prescription.

The rules and the audit rows are the alerting core's (`alerting.care_plan`, written by
`alerting.care_plan_store`); this router only validates the request's shape and passes who is
asking. Reading a care plan is audited here.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, model_validator

from alerting import care_plan_store
from alerting.care_plan import THRESHOLD_PARAMETERS, Ceiling
from ward.hub import audit, care_plan_view
from ward.hub.deps import DB, Now
from ward.hub.routers.common import PatientId, Prescriber, Reader, Text, notify, require_patient

router = APIRouter(prefix="/api/patients/{patient_id}/care-plan", tags=["care plans"])
Reason = Annotated[Text, Field(min_length=1, max_length=2000)]
ThresholdParameter = Annotated[str, Path(pattern="^(" + "|".join(sorted(THRESHOLD_PARAMETERS))
                                              + ")$")]
# Plausible-range guard for threshold values: wider than any vital's plausible range.
Bound = Annotated[float, Field(ge=-1000, le=10000, allow_inf_nan=False)]


class Spo2ScaleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scale: Literal[1, 2]
    target_low: Annotated[float | None, Field(ge=50, le=100)] = None
    target_high: Annotated[float | None, Field(ge=50, le=100)] = None
    reason: Reason


class ThresholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    low: Bound | None = None
    high: Bound | None = None
    reason: Reason


class CeilingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ceiling: Ceiling
    reason: Reason


class InfusionIn(BaseModel):
    """An IV prescription: the rate, or the duration (rate = volume / duration)."""

    model_config = ConfigDict(extra="forbid")
    drug: Annotated[Text, Field(min_length=1, max_length=200)]
    volume_ml: Annotated[float, Field(gt=0, le=5000, allow_inf_nan=False)]
    rate_ml_h: Annotated[float | None, Field(gt=0, le=1000, allow_inf_nan=False)] = None
    duration_h: Annotated[float | None, Field(gt=0, le=168, allow_inf_nan=False)] = None
    started_at: dt.datetime
    pump_type: Literal["elastomeric", "volumetric", "syringe"] = "elastomeric"
    reason: Reason

    @model_validator(mode="after")
    def _rate_or_duration(self) -> InfusionIn:
        if self.rate_ml_h is None and self.duration_h is None:
            raise ValueError("give rate_ml_h or duration_h")
        if self.started_at.tzinfo is None:
            raise ValueError("started_at needs a UTC offset")
        return self


class InfusionEndIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class ThresholdOut(BaseModel):
    parameter: str
    low: float | None
    high: float | None
    by: str
    reason: str
    at: dt.datetime | None


class CarePlanOut(BaseModel):
    patient_id: int
    spo2_scale: int
    spo2_scale_set_by: str | None
    spo2_scale_set_at: dt.datetime | None
    spo2_scale_reason: str | None
    spo2_target_low: float | None
    spo2_target_high: float | None
    thresholds: list[ThresholdOut]
    ceiling_of_care: str
    ceiling_set_by: str | None
    ceiling_set_at: dt.datetime | None
    ceiling_reason: str | None
    prescribed_infusion_rate_ml_h: float | None
    infusion_drug: str | None = None
    infusion_volume_ml: float | None = None
    infusion_pump_type: str | None = None
    infusion_started_at: dt.datetime | None = None
    infusion_expected_end: dt.datetime | None = None
    infusion_set_by: str | None = None
    infusion_set_at: dt.datetime | None = None
    infusion_reason: str | None = None


def care_plan_out(conn: Any, patient_id: int) -> CarePlanOut:
    plan = care_plan_store.load_care_plan(conn, patient_id)
    return CarePlanOut(
        patient_id=patient_id, spo2_scale=plan.spo2_scale,
        spo2_scale_set_by=plan.spo2_scale_set_by, spo2_scale_set_at=plan.spo2_scale_set_at,
        spo2_scale_reason=plan.spo2_scale_reason, spo2_target_low=plan.spo2_target_low,
        spo2_target_high=plan.spo2_target_high,
        thresholds=[ThresholdOut(parameter=t.parameter, low=t.low, high=t.high, by=t.by,
                                 reason=t.reason, at=t.at) for t in plan.thresholds.values()],
        ceiling_of_care=plan.ceiling_of_care.value, ceiling_set_by=plan.ceiling_set_by,
        ceiling_set_at=plan.ceiling_set_at, ceiling_reason=plan.ceiling_reason,
        prescribed_infusion_rate_ml_h=plan.prescribed_infusion_rate_ml_h,
        infusion_drug=plan.infusion_drug, infusion_volume_ml=plan.infusion_volume_ml,
        infusion_pump_type=plan.infusion_pump_type,
        infusion_started_at=plan.infusion_started_at,
        infusion_expected_end=plan.infusion_expected_end,
        infusion_set_by=plan.infusion_set_by, infusion_set_at=plan.infusion_set_at,
        infusion_reason=plan.infusion_reason,
    )


@router.get("", response_model=CarePlanOut)
def read_care_plan(patient_id: PatientId, conn: DB, now: Now, user: Reader) -> CarePlanOut:
    require_patient(conn, patient_id)
    audit.record(conn, user, "read", "care_plan", now=now, entity_id=patient_id,
                 patient_id=patient_id)
    return care_plan_out(conn, patient_id)


@router.put("/spo2-scale", response_model=CarePlanOut)
def set_spo2_scale(patient_id: PatientId, body: Spo2ScaleIn, conn: DB, now: Now,
                   user: Prescriber) -> CarePlanOut:
    """Scale 1 or 2 (88–92 % target by default), by the clinician asking, with a reason."""
    require_patient(conn, patient_id)
    care_plan_store.set_spo2_scale(conn, patient_id, scale=body.scale, target_low=body.target_low,
                             target_high=body.target_high, by=user.username,
                             reason=body.reason, now=now)
    notify(conn, "care_plan", [patient_id])
    return care_plan_out(conn, patient_id)


@router.put("/thresholds/{parameter}", response_model=CarePlanOut)
def set_threshold(patient_id: PatientId, parameter: ThresholdParameter, body: ThresholdIn,
                  conn: DB, now: Now, user: Prescriber) -> CarePlanOut:
    """A patient-specific alert threshold; send neither low nor high to remove it."""
    require_patient(conn, patient_id)
    care_plan_store.set_threshold(conn, patient_id, parameter=parameter, low=body.low,
                            high=body.high, by=user.username, reason=body.reason, now=now)
    notify(conn, "care_plan", [patient_id])
    return care_plan_out(conn, patient_id)


@router.put("/ceiling", response_model=CarePlanOut)
def set_ceiling(patient_id: PatientId, body: CeilingIn, conn: DB, now: Now,
                user: Prescriber) -> CarePlanOut:
    """Ceiling of care (ReSPECT / treatment escalation plan): where escalations go."""
    require_patient(conn, patient_id)
    care_plan_store.set_ceiling_of_care(conn, patient_id, ceiling=body.ceiling, by=user.username,
                                  reason=body.reason, now=now)
    notify(conn, "care_plan", [patient_id])
    return care_plan_out(conn, patient_id)


@router.put("/infusion", response_model=CarePlanOut)
def set_infusion(patient_id: PatientId, body: InfusionIn, conn: DB, now: Now,
                 user: Prescriber) -> CarePlanOut:
    """The IV prescription (drug, volume, rate or duration, start); switches the pump rules on."""
    require_patient(conn, patient_id)
    care_plan_store.set_prescribed_infusion_rate(
        conn, patient_id, rate_ml_h=body.rate_ml_h, by=user.username, reason=body.reason,
        now=now, pump_type=body.pump_type, volume_ml=body.volume_ml,
        started_at=body.started_at.astimezone(dt.UTC), drug=body.drug,
        duration=None if body.duration_h is None else dt.timedelta(hours=body.duration_h))
    notify(conn, "care_plan", [patient_id])
    return care_plan_out(conn, patient_id)


@router.post("/infusion/end", response_model=CarePlanOut)
def end_infusion(patient_id: PatientId, body: InfusionEndIn, conn: DB, now: Now,
                 user: Prescriber) -> CarePlanOut:
    """End the IV prescription (the pump rules switch off)."""
    require_patient(conn, patient_id)
    care_plan_store.set_prescribed_infusion_rate(conn, patient_id, rate_ml_h=None,
                                                 by=user.username, reason=body.reason, now=now)
    notify(conn, "care_plan", [patient_id])
    return care_plan_out(conn, patient_id)


class CarePlanChangeOut(BaseModel):
    at: dt.datetime
    by: str
    what: str
    old: str
    new: str
    reason: str


@router.get("/history", response_model=list[CarePlanChangeOut])
def read_care_plan_history(patient_id: PatientId, conn: DB, now: Now, user: Reader
                           ) -> list[CarePlanChangeOut]:
    """Every care-plan change, newest first: who, when, what, from, to and why."""
    require_patient(conn, patient_id)
    audit.record(conn, user, "read", "care_plan", now=now, entity_id=patient_id,
                 patient_id=patient_id, detail={"history": True})
    return [CarePlanChangeOut(at=c.at, by=c.by, what=c.what, old=c.old, new=c.new,
                              reason=c.reason) for c in care_plan_view.history(conn, patient_id)]
