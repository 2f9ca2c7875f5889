"""Referrals and admissions: refer (step-up or step-down), accept, decline, discharge.

The transitions are the domain's (`ward.domain.patients.Admission`); this router loads the
admission, asks the domain, stores the result, audits it and tells the ward view.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from psycopg import sql
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ward.db import registry
from ward.domain.patients import (
    Admission,
    AdmissionStatus,
    DischargeOutcome,
    Pathway,
    ReferralSource,
)
from ward.hub import audit, risk
from ward.hub.deps import DB, Now
from ward.hub.problems import NotFound
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
from ward.hub.routers.risk import RiskFactorsIn

router = APIRouter(prefix="/api", tags=["admissions"])


class ReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: Annotated[int, Field(ge=1, le=BIGINT_MAX)]
    pathway: Pathway
    source: ReferralSource
    referred_at: AwareDatetime | None = Field(None, description="default: now")
    reason: Annotated[Text | None, Field(max_length=2000)] = None
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


class AdmissionOut(BaseModel):
    id: int
    patient_id: int
    pathway: Pathway
    source: ReferralSource
    status: AdmissionStatus
    referred_at: dt.datetime
    referral_reason: str | None
    decided_at: dt.datetime | None
    decision_reason: str | None
    admitted_at: dt.datetime | None
    discharged_at: dt.datetime | None
    outcome: DischargeOutcome | None


# The output model's fields are the table's column names, in order.
_COLS = sql.SQL(", ").join(sql.Identifier(name) for name in AdmissionOut.model_fields)


def _out(row: tuple[Any, ...]) -> AdmissionOut:
    return AdmissionOut(**dict(zip(AdmissionOut.model_fields, row, strict=True)))


def _utc(when: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    return now if when is None else when.astimezone(dt.UTC)


def load_admission(conn: Conn, admission_id: int, *, lock: bool = False) -> AdmissionOut:
    query = sql.SQL("SELECT {} FROM admissions WHERE id = %s{}").format(
        _COLS, sql.SQL(" FOR UPDATE" if lock else ""))
    row = conn.execute(query, (admission_id,)).fetchone()
    if row is None:
        raise NotFound(f"no admission with id {admission_id}")
    return _out(row)


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
        conn.execute("UPDATE admissions SET referral_reason = %s WHERE id = %s",
                     (body.reason, admission.id))
    audit.record(conn, user, "refer", "admission", now=now, entity_id=admission.id,
                 patient_id=body.patient_id,
                 detail={"pathway": body.pathway.value, "source": body.source.value})
    if body.risk_factors is not None:
        risk.save_factors(conn, body.patient_id, body.risk_factors.to_domain(), now=now,
                          by=user.username)
    risk.record_scores(conn, body.patient_id, admission.id, "referral", now=now)
    return load_admission(conn, admission.id)


@router.get("/admissions", response_model=Page[AdmissionOut])
def list_admissions(
    conn: DB, now: Now, user: Reader, limit: Limit = 50, offset: Offset = 0,
    status: AdmissionStatus | None = None, pathway: Pathway | None = None,
    patient_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> Page[AdmissionOut]:
    clauses: list[sql.Composable] = [sql.SQL("true")]
    params: list[object] = []
    for column, value in (("status", status), ("pathway", pathway), ("patient_id", patient_id)):
        if value is not None:
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value.value if hasattr(value, "value") else value)
    where = sql.SQL(" AND ").join(clauses)
    total = conn.execute(sql.SQL("SELECT count(*) FROM admissions WHERE {}").format(where),
                         params).fetchone()
    rows = conn.execute(sql.SQL("SELECT {} FROM admissions WHERE {} "
                                "ORDER BY referred_at DESC, id DESC LIMIT %s OFFSET %s"
                                ).format(_COLS, where),
                        [*params, limit, offset]).fetchall()
    items = [_out(r) for r in rows]
    audit.record(conn, user, "list", "admission", now=now,
                 patient_ids=[a.patient_id for a in items],
                 detail={"admission_ids": [a.id for a in items]})
    return Page[AdmissionOut](items=items, total=int(total[0]) if total else 0, limit=limit,
                              offset=offset)


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
    out = _transition(conn, now, user, admission_id, "discharge",
                      lambda a: a.discharge(at, body.outcome),
                      {"outcome": body.outcome.value, "note": body.note})
    risk.record_scores(conn, out.patient_id, admission_id, "discharge", now=now)
    return out
