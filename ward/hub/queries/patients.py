"""Patients as the API shows them, each with the open (referred or admitted) admission."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel

from ward.domain import nhs_number
from ward.hub.deps import Conn
from ward.hub.problems import NotFound


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


def patient_out(row: tuple[Any, ...]) -> PatientOut:
    brief = None
    if row[5] is not None:
        brief = AdmissionBrief(id=row[5], status=row[6], pathway=row[7], source=row[8],
                               referred_at=row[9], admitted_at=row[10])
    return PatientOut(id=row[0], nhs_number=row[1],
                      nhs_number_display=nhs_number.display(row[1]), given_name=row[2],
                      family_name=row[3], date_of_birth=row[4], open_admission=brief)


def exists(conn: Conn, patient_id: int) -> bool:
    return conn.execute("SELECT 1 FROM patients WHERE id = %s", (patient_id,)).fetchone() \
        is not None


def nhs_number_of(conn: Conn, patient_id: int) -> str | None:
    row = conn.execute("SELECT nhs_number FROM patients WHERE id = %s", (patient_id,)).fetchone()
    return None if row is None else str(row[0])


def details_form(conn: Conn, patient_id: int) -> dict[str, str]:
    """The admission form's patient fields as text ("" where unknown; {} for no patient)."""
    row = conn.execute(
        "SELECT nhs_number, given_name, family_name, date_of_birth, address, phone, "
        "next_of_kin, gp_practice FROM patients WHERE id = %s", (patient_id,)).fetchone()
    keys = ("nhs_number", "given_name", "family_name", "date_of_birth", "address", "phone",
            "next_of_kin", "gp_practice")
    return {k: "" if v is None else str(v) for k, v in zip(keys, row or (), strict=False)}


def load_patient(conn: Conn, patient_id: int) -> PatientOut:
    row = conn.execute(_SELECT + "WHERE p.id = %s", (patient_id,)).fetchone()
    if row is None:
        raise NotFound(f"no patient with id {patient_id}")
    return patient_out(row)


def list_patients(conn: Conn, *, limit: int, offset: int, q: str | None = None,
                  admitted: bool | None = None) -> tuple[list[PatientOut], int]:
    """One page of patients by name matching `q` (a name part or a 10-digit NHS number),
    and how many match in all."""
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
    return [patient_out(r) for r in rows], int(count[0]) if count else 0
