"""The rows the FHIR read API maps to resources (`ward.hub.fhir`): patients by id or NHS
number, and admissions as Encounters (with the patient's NHS number)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ward.hub.deps import Conn


@dataclass(frozen=True, slots=True)
class PatientRow:
    id: int
    nhs_number: str
    given_name: str
    family_name: str
    date_of_birth: dt.date
    address: str | None
    phone: str | None
    next_of_kin: str | None
    gp_practice: str | None


@dataclass(frozen=True, slots=True)
class EncounterRow:
    id: int
    patient_id: int
    nhs_number: str
    status: str
    source: str
    pathway: str
    referred_at: dt.datetime
    admitted_at: dt.datetime | None
    discharged_at: dt.datetime | None
    outcome: str | None
    reason: str | None


_PATIENT = ("SELECT id, nhs_number, given_name, family_name, date_of_birth, address, "
            "phone, next_of_kin, gp_practice FROM patients ")
_ENCOUNTER = ("SELECT a.id, a.patient_id, p.nhs_number, a.status, a.source, a.pathway, "
              "a.referred_at, a.admitted_at, a.discharged_at, a.outcome, "
              "a.referral_reason FROM admissions a JOIN patients p ON p.id = a.patient_id ")


def patient(conn: Conn, patient_id: int) -> PatientRow | None:
    row = conn.execute(_PATIENT + "WHERE id = %s", (patient_id,)).fetchone()
    return None if row is None else PatientRow(*row)


def patients_by_nhs_number(conn: Conn, nhs_number: str) -> list[PatientRow]:
    return [PatientRow(*r) for r in conn.execute(_PATIENT + "WHERE nhs_number = %s",
                                                 (nhs_number,)).fetchall()]


def encounter(conn: Conn, admission_id: int) -> EncounterRow | None:
    row = conn.execute(_ENCOUNTER + "WHERE a.id = %s", (admission_id,)).fetchone()
    return None if row is None else EncounterRow(*row)


def encounters_of(conn: Conn, patient_id: int) -> list[EncounterRow]:
    """The patient's admissions and referrals, newest first."""
    return [EncounterRow(*r) for r in conn.execute(
        _ENCOUNTER + "WHERE a.patient_id = %s ORDER BY a.referred_at DESC, a.id DESC",
        (patient_id,)).fetchall()]
