"""Referrals and admissions: refer (step-up or step-down), accept, decline, discharge.

The transitions are the domain's (`ward.domain.patients.Admission`); this router loads the
admission, asks the domain, stores the result, audits it and tells the ward view.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ward.db import registry
from ward.domain.patients import (
    Admission,
    AdmissionStatus,
    DischargeOutcome,
    Pathway,
    ReferralSource,
)
from ward.hub import audit
from ward.hub.deps import DB, Now
from ward.hub.queries import admissions as queries
from ward.hub.queries.admissions import AdmissionOut, load_admission
from ward.hub.routers.common import (
    BIGINT_MAX,
    AdmissionId,
    Clinical,
    Conn,
    Limit,
    Offset,
    Page,
    Reader,
    Text,
    notify,
    require_patient,
)

router = APIRouter(prefix="/api", tags=["admissions"])


class ReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: Annotated[int, Field(ge=1, le=BIGINT_MAX)]
    pathway: Pathway
    source: ReferralSource
    referred_at: AwareDatetime | None = Field(None, description="default: now")
    reason: Annotated[Text | None, Field(max_length=2000)] = None


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


def _utc(when: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    return now if when is None else when.astimezone(dt.UTC)


def _domain(out: AdmissionOut) -> Admission:
    return Admission(
        patient_id=out.patient_id, pathway=out.pathway, source=out.source,
        referred_at=out.referred_at.astimezone(dt.UTC), status=out.status,
        decided_at=out.decided_at and out.decided_at.astimezone(dt.UTC),
        decision_reason=out.decision_reason,
        admitted_at=out.admitted_at and out.admitted_at.astimezone(dt.UTC),
        discharged_at=out.discharged_at and out.discharged_at.astimezone(dt.UTC),
        outcome=out.outcome, id=out.id,
    )


@router.post("/referrals", response_model=AdmissionOut, status_code=201)
def refer(body: ReferralIn, conn: DB, now: Now, user: Clinical) -> AdmissionOut:
    """A new referral: step-up (GP, ambulance, 111, UCR, ED) or step-down (hospital ward)."""
    require_patient(conn, body.patient_id)
    admission = registry.add_admission(conn, Admission(
        patient_id=body.patient_id, pathway=body.pathway, source=body.source,
        referred_at=_utc(body.referred_at, now)))
    assert admission.id is not None  # noqa: S101
    if body.reason:
        queries.set_referral_reason(conn, admission.id, body.reason)
    audit.record(conn, user, "refer", "admission", now=now, entity_id=admission.id,
                 patient_id=body.patient_id,
                 detail={"pathway": body.pathway.value, "source": body.source.value})
    return load_admission(conn, admission.id)


@router.get("/admissions", response_model=Page[AdmissionOut])
def list_admissions(
    conn: DB, now: Now, user: Reader, limit: Limit = 50, offset: Offset = 0,
    status: AdmissionStatus | None = None, pathway: Pathway | None = None,
    patient_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> Page[AdmissionOut]:
    items, total = queries.list_admissions(conn, limit=limit, offset=offset, status=status,
                                           pathway=pathway, patient_id=patient_id)
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


def _transition(conn: Conn, now: dt.datetime, user: Any, admission_id: int, action: str,
                change: Any, detail: dict[str, Any]) -> AdmissionOut:
    current = load_admission(conn, admission_id, lock=True)
    updated: Admission = change(_domain(current))
    registry.update_admission(conn, updated)
    audit.record(conn, user, action, "admission", now=now, entity_id=admission_id,
                 patient_id=current.patient_id, detail=detail)
    notify(conn, "admission", [current.patient_id])
    return load_admission(conn, admission_id)


@router.post("/admissions/{admission_id}/accept", response_model=AdmissionOut)
def accept(admission_id: AdmissionId, body: AcceptIn, conn: DB, now: Now, user: Clinical
           ) -> AdmissionOut:
    at = _utc(body.at, now)
    return _transition(conn, now, user, admission_id, "accept", lambda a: a.admit(at),
                       {"at": at.isoformat()})


@router.post("/admissions/{admission_id}/decline", response_model=AdmissionOut)
def decline(admission_id: AdmissionId, body: DeclineIn, conn: DB, now: Now, user: Clinical
            ) -> AdmissionOut:
    at = _utc(body.at, now)
    return _transition(conn, now, user, admission_id, "decline",
                       lambda a: a.decline(at, body.reason), {"reason": body.reason})


@router.post("/admissions/{admission_id}/discharge", response_model=AdmissionOut)
def discharge(admission_id: AdmissionId, body: DischargeIn, conn: DB, now: Now,
              user: Clinical) -> AdmissionOut:
    at = _utc(body.at, now)
    return _transition(conn, now, user, admission_id, "discharge",
                       lambda a: a.discharge(at, body.outcome),
                       {"outcome": body.outcome.value, "note": body.note})
