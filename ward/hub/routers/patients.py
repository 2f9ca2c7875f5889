"""Patients: register, list, read (every read audited)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from ward.db import registry
from ward.domain.patients import Patient
from ward.hub import audit
from ward.hub.deps import DB, Now
from ward.hub.queries import patients as queries
from ward.hub.queries.patients import PatientOut, load_patient
from ward.hub.routers.common import (
    Clinical,
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


@router.get("", response_model=Page[PatientOut])
def list_patients(
    conn: DB, now: Now, user: Reader, limit: Limit = 50, offset: Offset = 0,
    q: Annotated[Text | None, Query(max_length=100, description="name or NHS number")] = None,
    admitted: Annotated[bool | None, Query(description="only (not) currently admitted")] = None,
) -> Page[PatientOut]:
    items, total = queries.list_patients(conn, limit=limit, offset=offset, q=q,
                                         admitted=admitted)
    audit.record(conn, user, "list", "patient", now=now,
                 patient_ids=[p.id for p in items], detail={"query": bool(q)})
    return Page[PatientOut](items=items, total=total, limit=limit, offset=offset)


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
