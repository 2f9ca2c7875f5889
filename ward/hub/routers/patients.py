"""Patients: register, list, read (every read audited)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from ward.db import registry
from ward.domain import nhs_number
from ward.domain.patients import Patient
from ward.hub import audit
from ward.hub.deps import DB, Now
from ward.hub.problems import NotFound
from ward.hub.routers.common import (
    Clinical,
    Conn,
    Limit,
    Offset,
    Page,
    PatientId,
    Reader,
    Text,
)

router = APIRouter(prefix="/api/patients", tags=["patients"])


class PatientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nhs_number: Annotated[Text, Field(min_length=10, max_length=12,
                                       examples=["943 476 5919"])]
    given_name: Annotated[Text, Field(min_length=1, max_length=100)]
    family_name: Annotated[Text, Field(min_length=1, max_length=100)]
    date_of_birth: dt.date

    def to_domain(self) -> Patient:
        return Patient(self.nhs_number, self.given_name.strip(), self.family_name.strip(),
                       self.date_of_birth)


class AdmissionBrief(BaseModel):
    id: int
    status: str
    pathway: str
    source: str
    referred_at: dt.datetime
    admitted_at: dt.datetime | None


class PatientOut(BaseModel):
    id: int
    nhs_number: str
    nhs_number_display: str
    given_name: str
    family_name: str
    date_of_birth: dt.date
    open_admission: AdmissionBrief | None


_SELECT = (
    "SELECT p.id, p.nhs_number, p.given_name, p.family_name, p.date_of_birth, "
    "a.id, a.status, a.pathway, a.source, a.referred_at, a.admitted_at "
    "FROM patients p LEFT JOIN admissions a ON a.patient_id = p.id "
    "AND a.status IN ('referred', 'admitted') "
)


def _out(row: tuple[Any, ...]) -> PatientOut:
    brief = None
    if row[5] is not None:
        brief = AdmissionBrief(id=row[5], status=row[6], pathway=row[7], source=row[8],
                               referred_at=row[9], admitted_at=row[10])
    return PatientOut(id=row[0], nhs_number=row[1],
                      nhs_number_display=nhs_number.display(row[1]), given_name=row[2],
                      family_name=row[3], date_of_birth=row[4], open_admission=brief)


def load_patient(conn: Conn, patient_id: int) -> PatientOut:
    row = conn.execute(_SELECT + "WHERE p.id = %s", (patient_id,)).fetchone()
    if row is None:
        raise NotFound(f"no patient with id {patient_id}")
    return _out(row)


@router.get("", response_model=Page[PatientOut])
def list_patients(
    conn: DB, now: Now, user: Reader, limit: Limit = 50, offset: Offset = 0,
    q: Annotated[Text | None, Query(max_length=100, description="name or NHS number")] = None,
    admitted: Annotated[bool | None, Query(description="only (not) currently admitted")] = None,
) -> Page[PatientOut]:
    clauses, params = ["true"], []
    if q:
        digits = "".join(ch for ch in q if ch.isdigit())
        if len(digits) == 10:
            clauses.append("p.nhs_number = %s")
            params.append(digits)
        else:
            clauses.append("(p.given_name ILIKE %s OR p.family_name ILIKE %s)")
            like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [like, like]
    if admitted is not None:
        clauses.append("a.status = 'admitted'" if admitted
                       else "(a.status IS NULL OR a.status <> 'admitted')")
    where = "WHERE " + " AND ".join(clauses)
    count = conn.execute(
        "SELECT count(*) FROM patients p LEFT JOIN admissions a ON a.patient_id = p.id "
        "AND a.status IN ('referred', 'admitted') " + where, params).fetchone()
    rows = conn.execute(_SELECT + where + " ORDER BY p.family_name, p.given_name, p.id "
                        "LIMIT %s OFFSET %s", [*params, limit, offset]).fetchall()
    items = [_out(r) for r in rows]
    audit.record(conn, user, "list", "patient", now=now,
                 patient_ids=[p.id for p in items], detail={"query": bool(q)})
    return Page[PatientOut](items=items, total=int(count[0]) if count else 0, limit=limit,
                            offset=offset)


@router.post("", response_model=PatientOut, status_code=201)
def create_patient(body: PatientIn, conn: DB, now: Now, user: Clinical) -> PatientOut:
    patient = registry.add_patient(conn, body.to_domain())
    assert patient.id is not None  # noqa: S101 - add_patient returns the stored id
    audit.record(conn, user, "create", "patient", now=now, entity_id=patient.id,
                 patient_id=patient.id)
    return load_patient(conn, patient.id)


@router.get("/{patient_id}", response_model=PatientOut)
def read_patient(patient_id: PatientId, conn: DB, now: Now, user: Reader) -> PatientOut:
    out = load_patient(conn, patient_id)
    audit.record(conn, user, "read", "patient", now=now, entity_id=patient_id,
                 patient_id=patient_id)
    return out
