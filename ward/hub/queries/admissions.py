"""Admissions (referrals through discharge) as the API shows them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg import sql
from pydantic import BaseModel

from ward.domain.patients import AdmissionStatus, DischargeOutcome, Pathway, ReferralSource
from ward.hub.deps import Conn
from ward.hub.problems import NotFound


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


def admission_out(row: tuple[Any, ...]) -> AdmissionOut:
    return AdmissionOut(**dict(zip(AdmissionOut.model_fields, row, strict=True)))


def load_admission(conn: Conn, admission_id: int, *, lock: bool = False) -> AdmissionOut:
    query = sql.SQL("SELECT {} FROM admissions WHERE id = %s{}").format(
        _COLS, sql.SQL(" FOR UPDATE" if lock else ""))
    row = conn.execute(query, (admission_id,)).fetchone()
    if row is None:
        raise NotFound(f"no admission with id {admission_id}")
    return admission_out(row)


def list_admissions(conn: Conn, *, limit: int, offset: int,
                    status: AdmissionStatus | None = None, pathway: Pathway | None = None,
                    patient_id: int | None = None) -> tuple[list[AdmissionOut], int]:
    """One page of admissions, newest referral first, and how many match in all."""
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
    return [admission_out(r) for r in rows], int(total[0]) if total else 0


def admissions_of_patient(conn: Conn, patient_id: int) -> list[AdmissionOut]:
    """Every admission of the patient, newest referral first."""
    return [admission_out(r) for r in conn.execute(
        sql.SQL("SELECT {} FROM admissions WHERE patient_id = %s ORDER BY referred_at DESC"
                ).format(_COLS), (patient_id,))]


def set_referral_reason(conn: Conn, admission_id: int, reason: str) -> None:
    """The referrer's reason (the domain's Admission does not carry it)."""
    conn.execute("UPDATE admissions SET referral_reason = %s WHERE id = %s",
                 (reason, admission_id))
