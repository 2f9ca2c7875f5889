"""Referrals and admissions: refer, accept or decline (capacity checked), admit with a kit,
discharge with a follow-up call (a worklist task).

The transitions are the domain's (`ward.domain.patients.Admission`); the transactions are
`ward.hub.admitting`'s, shared with the manager's pages; the reads are
`ward.hub.queries.admissions`'. Roles: anyone on the hub may enter a referral (a call is
taken by whoever answers); triage, admission and discharge are for clinicians and admins
(`TRIAGE`); the care plan at admission for clinicians only.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from alerting.care_plan import Ceiling
from ward.domain.patients import (
    AdmissionStatus,
    Contact,
    DischargeOutcome,
    Pathway,
    Patient,
    ReferralSource,
    Urgency,
)
from ward.domain.vitals import VitalCode
from ward.hub import admitting, audit, risk
from ward.hub.auth import ALL_ROLES, Role, User
from ward.hub.deps import DB, Now, SettingsDep, allow
from ward.hub.problems import Forbidden
from ward.hub.queries import admissions as queries
from ward.hub.queries.admissions import AdmissionOut, admissions_of, load_admission
from ward.hub.routers.common import (
    BIGINT_MAX,
    AdmissionId,
    Conn,
    Limit,
    Offset,
    Page,
    Reader,
    Text,
    require_patient,
)
from ward.hub.routers.risk import RiskFactorsIn

__all__ = ["AdmissionOut", "admissions_of", "load_admission", "router"]

router = APIRouter(prefix="/api", tags=["admissions"])
# Who decides on a referral, admits and discharges: the ward's clinicians and its manager
# (an admin account). Hub nurses watch the ward and take calls; they may enter a referral.
TRIAGE = frozenset({Role.CLINICIAN, Role.ADMIN})
Triage = Annotated[User, Depends(allow(*TRIAGE))]
Referrer = Annotated[User, Depends(allow(*ALL_ROLES))]
# A referral's observations: a vital code and a plausible number (the form has six fields).
Observations = Annotated[dict[VitalCode, Annotated[float, Field(ge=0, le=400,
                                                                 allow_inf_nan=False)]],
                         Field(max_length=12)]
Line = Annotated[Text, Field(max_length=200)]


class ReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: Annotated[int, Field(ge=1, le=BIGINT_MAX)]
    pathway: Pathway
    source: ReferralSource
    referred_at: AwareDatetime | None = Field(None, description="default: now")
    reason: Annotated[Text | None, Field(max_length=2000)] = None
    urgency: Urgency = Urgency.SAME_DAY
    observations: Observations = Field(default_factory=dict)
    referrer: Line | None = Field(None, description="who referred, and how to call back")
    # The readmission-risk facts (LACE / HOSPITAL inputs), if known at referral.
    risk_factors: RiskFactorsIn | None = None


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: AwareDatetime | None = Field(None, description="admission time; default: now")


class DeclineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[Text, Field(min_length=1, max_length=2000)]
    at: AwareDatetime | None = None


class DischargeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: DischargeOutcome
    at: AwareDatetime | None = None
    note: Annotated[Text | None, Field(max_length=2000)] = None


class PatientDetailsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nhs_number: Annotated[Text, Field(min_length=10, max_length=12)]
    given_name: Annotated[Text, Field(min_length=1, max_length=100)]
    family_name: Annotated[Text, Field(min_length=1, max_length=100)]
    date_of_birth: dt.date
    address: Annotated[Text, Field(min_length=1, max_length=500)]
    phone: Annotated[Text, Field(min_length=1, max_length=30)]
    next_of_kin: Annotated[Text, Field(max_length=200)] = ""
    gp_practice: Annotated[Text, Field(max_length=200)] = ""

    def to_domain(self) -> tuple[Patient, Contact]:
        return (Patient(self.nhs_number, self.given_name.strip(), self.family_name.strip(),
                        self.date_of_birth),
                Contact(self.address.strip(), self.phone.strip(), self.next_of_kin.strip(),
                        self.gp_practice.strip()))


class CarePlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spo2_scale: Annotated[int, Field(ge=1, le=2)] = 1
    ceiling_of_care: Ceiling = Ceiling.FULL_ESCALATION
    reason: Annotated[Text, Field(min_length=1, max_length=2000)]


class AdmitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient: PatientDetailsIn
    device_ids: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                          Field(min_length=1, max_length=12)]
    care_plan: CarePlanIn | None = None


class DischargeOut(AdmissionOut):
    devices_to_collect: list[str]
    follow_up_task: str = Field(description="the follow-up call on the worklist, task-<id>")
    follow_up_not_before: dt.datetime
    follow_up_due_at: dt.datetime


class KitDeviceOut(BaseModel):
    id: str
    known: bool
    kind: str | None
    active: bool
    online: bool | None
    battery_pct: float | None
    reported_at: dt.datetime | None
    assignable: bool
    refusal: str | None


def _utc(when: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    return now if when is None else when.astimezone(dt.UTC)


def kit_out(device: admitting.KitDevice) -> KitDeviceOut:
    return KitDeviceOut(id=device.id, known=device.known, kind=device.kind,
                        active=device.active, online=device.online,
                        battery_pct=device.battery_pct, reported_at=device.reported_at,
                        assignable=device.refusal is None, refusal=device.refusal)


@router.post("/referrals", response_model=AdmissionOut, status_code=201)
def refer(body: ReferralIn, conn: DB, now: Now, user: Referrer) -> AdmissionOut:
    """A new referral: step-up (GP, ambulance, 111, UCR, ED, self/carer) or step-down."""
    require_patient(conn, body.patient_id)
    admission_id = admitting.refer(
        conn, user, now, patient_id=body.patient_id, source=body.source,
        pathway=body.pathway, urgency=body.urgency, reason=body.reason,
        observations={k.value: v for k, v in body.observations.items()},
        referrer=body.referrer, referred_at=_utc(body.referred_at, now))
    if body.risk_factors is not None:
        risk.save_factors(conn, body.patient_id, body.risk_factors.to_domain(), now=now,
                          by=user.username)
    risk.record_scores(conn, body.patient_id, admission_id, "referral", now=now)
    return load_admission(conn, admission_id)


@router.get("/admissions", response_model=Page[AdmissionOut])
def list_admissions(
    conn: DB, now: Now, user: Reader, limit: Limit = 50, offset: Offset = 0,
    status: AdmissionStatus | None = None, pathway: Pathway | None = None,
    patient_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> Page[AdmissionOut]:
    items, total = queries.list_admissions(conn, status=status, pathway=pathway,
                                           patient_id=patient_id, limit=limit, offset=offset)
    audit.record(conn, user, "list", "admission", now=now,
                 patient_ids=[a.patient_id for a in items],
                 detail={"admission_ids": [a.id for a in items]})
    return Page[AdmissionOut](items=items, total=total, limit=limit, offset=offset)


@router.get("/admissions/{admission_id}", response_model=AdmissionOut)
def read_admission(admission_id: AdmissionId, conn: DB, now: Now, user: Reader
                   ) -> AdmissionOut:
    out = load_admission(conn, admission_id)
    audit.record(conn, user, "read", "admission", now=now, entity_id=admission_id,
                 patient_id=out.patient_id)
    return out


@router.post("/admissions/{admission_id}/accept", response_model=AdmissionOut)
def accept(admission_id: AdmissionId, body: AcceptIn, conn: DB, now: Now,
           settings: SettingsDep, user: Triage) -> AdmissionOut:
    """Accept onto the ward (409 with "the ward is full" when every bed is taken)."""
    admitting.accept(conn, user, now, admission_id, beds=settings.ward_beds,
                     at=_utc(body.at, now))
    return load_admission(conn, admission_id)


@router.post("/admissions/{admission_id}/decline", response_model=AdmissionOut)
def decline(admission_id: AdmissionId, body: DeclineIn, conn: DB, now: Now, user: Triage
            ) -> AdmissionOut:
    admitting.decline(conn, user, now, admission_id, reason=body.reason, at=_utc(body.at, now))
    return load_admission(conn, admission_id)


@router.get("/admissions/{admission_id}/kit", response_model=list[KitDeviceOut])
def kit(admission_id: AdmissionId, conn: DB, now: Now, user: Triage,
        device_id: Annotated[list[Annotated[str, Query(max_length=64)]],
                             Query(min_length=1, max_length=12)]) -> list[KitDeviceOut]:
    """Each device's status and whether it may join this patient's kit (as it is scanned)."""
    current = load_admission(conn, admission_id)
    return [kit_out(d) for d in admitting.kit_status(
        conn, device_id, patient_id=current.patient_id, now=now)]


def admit_from(conn: Conn, user: User, now: dt.datetime, admission_id: int, beds: int,
               body: AdmitIn) -> None:
    patient, contact = body.patient.to_domain()
    plan = None
    if body.care_plan is not None:
        plan = admitting.CarePlanAtAdmission(body.care_plan.spo2_scale,
                                             body.care_plan.ceiling_of_care,
                                             body.care_plan.reason)
    try:
        admitting.admit(conn, user, now, admission_id, beds=beds, patient=patient,
                        contact=contact, device_ids=admitting.parse_device_ids(
                            " ".join(body.device_ids)), plan=plan)
    except admitting.CarePlanNeedsClinician as exc:
        raise Forbidden(str(exc)) from exc


@router.post("/admissions/{admission_id}/admit", response_model=AdmissionOut)
def admit(admission_id: AdmissionId, body: AdmitIn, conn: DB, now: Now,
          settings: SettingsDep, user: Triage) -> AdmissionOut:
    """Admission in one transaction: accept, patient details, device kit, care plan."""
    admit_from(conn, user, now, admission_id, settings.ward_beds, body)
    return load_admission(conn, admission_id)


@router.post("/admissions/{admission_id}/discharge", response_model=DischargeOut)
def discharge(admission_id: AdmissionId, body: DischargeIn, conn: DB, now: Now,
              user: Triage) -> DischargeOut:
    """Discharge: devices unassigned (listed for collection), the follow-up call put on the
    worklist (from 1 day after discharge, due by 2 days after)."""
    done = admitting.discharge(conn, user, now, admission_id, outcome=body.outcome,
                               note=body.note,
                               at=_utc(body.at, now))
    out = load_admission(conn, admission_id)
    risk.record_scores(conn, out.patient_id, admission_id, "discharge", now=now)
    return DischargeOut(**out.model_dump(), devices_to_collect=list(done.devices_to_collect),
                        follow_up_task=done.follow_up_task,
                        follow_up_not_before=done.follow_up_not_before,
                        follow_up_due_at=done.follow_up_due)
