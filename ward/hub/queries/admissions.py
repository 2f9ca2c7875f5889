"""Admissions and referrals as the API and the manager's pages show them: one admission, a
patient's, a filtered page, the triage queue and the recent decisions; and the lookups the
observation entry and the risk facts need (the open admission)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypedDict

from psycopg import sql
from pydantic import BaseModel

from ward.domain.patients import (
    AdmissionStatus,
    DischargeOutcome,
    Pathway,
    ReferralSource,
    Urgency,
)
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
    urgency: Urgency
    referral_observations: dict[str, float]
    referrer: str | None
    referred_by: str | None
    decided_by: str | None
    time_to_decision: dt.timedelta | None
    discharge_note: str | None
    discharged_by: str | None


# The output model's fields are the table's column names, in order.
_COLS = sql.SQL(", ").join(sql.Identifier(name) for name in AdmissionOut.model_fields)


def _out(row: tuple[Any, ...]) -> AdmissionOut:
    return AdmissionOut(**dict(zip(AdmissionOut.model_fields, row, strict=True)))


def load_admission(conn: Conn, admission_id: int, *, lock: bool = False) -> AdmissionOut:
    query = sql.SQL("SELECT {} FROM admissions WHERE id = %s{}").format(
        _COLS, sql.SQL(" FOR UPDATE" if lock else ""))
    row = conn.execute(query, (admission_id,)).fetchone()
    if row is None:
        raise NotFound(f"no admission with id {admission_id}")
    return _out(row)


def admissions_of(conn: Conn, patient_id: int) -> list[AdmissionOut]:
    """The patient's admissions and referrals, newest first (for the patient record)."""
    query = sql.SQL("SELECT {} FROM admissions WHERE patient_id = %s "
                    "ORDER BY referred_at DESC, id DESC").format(_COLS)
    return [_out(r) for r in conn.execute(query, (patient_id,))]


def list_admissions(conn: Conn, *, status: AdmissionStatus | None, pathway: Pathway | None,
                    patient_id: int | None, limit: int, offset: int
                    ) -> tuple[list[AdmissionOut], int]:
    """One page, newest referral first, and how many match in all."""
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
    return [_out(r) for r in rows], int(total[0]) if total else 0


class QueuedReferral(TypedDict):
    id: int
    patient_id: int
    given_name: str
    family_name: str
    nhs_number: str
    date_of_birth: dt.date
    source: str
    pathway: str
    urgency: str
    reason: str | None
    observations: dict[str, float]
    referrer: str | None
    referred_by: str | None
    referred_at: dt.datetime


class Decision(TypedDict):
    id: int
    patient_id: int
    given_name: str
    family_name: str
    status: str
    decided_at: dt.datetime
    decided_by: str | None
    reason: str | None
    time_to_decision: dt.timedelta | None


def referral_queue(conn: Conn, urgency_order: Sequence[str]) -> list[QueuedReferral]:
    """Referrals awaiting a decision, by `urgency_order` then oldest first."""
    rows = conn.execute(
        "SELECT a.id, a.patient_id, p.given_name, p.family_name, p.nhs_number, "
        "p.date_of_birth, a.source, a.pathway, a.urgency, a.referral_reason, "
        "a.referral_observations, a.referrer, a.referred_by, a.referred_at "
        "FROM admissions a JOIN patients p ON p.id = a.patient_id "
        "WHERE a.status = 'referred' "
        "ORDER BY array_position(%s::text[], a.urgency), a.referred_at, a.id",
        (list(urgency_order),)).fetchall()
    return [QueuedReferral(
        id=r[0], patient_id=r[1], given_name=r[2], family_name=r[3], nhs_number=r[4],
        date_of_birth=r[5], source=r[6], pathway=r[7], urgency=r[8], reason=r[9],
        observations=r[10], referrer=r[11], referred_by=r[12], referred_at=r[13])
        for r in rows]


def recent_decisions(conn: Conn, limit: int = 20) -> list[Decision]:
    """The latest accept/decline decisions, newest first."""
    rows = conn.execute(
        "SELECT a.id, a.patient_id, p.given_name, p.family_name, a.status, a.decided_at, "
        "a.decided_by, a.decision_reason, a.time_to_decision FROM admissions a "
        "JOIN patients p ON p.id = a.patient_id WHERE a.decided_at IS NOT NULL "
        "ORDER BY a.decided_at DESC LIMIT %s", (limit,)).fetchall()
    return [Decision(id=r[0], patient_id=r[1], given_name=r[2], family_name=r[3], status=r[4],
                     decided_at=r[5], decided_by=r[6], reason=r[7], time_to_decision=r[8])
            for r in rows]


def admitted_at_for_update(conn: Conn, patient_id: int) -> dt.datetime | None:
    """Start of the patient's open admission, row-locked so a discharge or a second entry
    waits (None: not currently admitted)."""
    row = conn.execute(
        "SELECT admitted_at FROM admissions WHERE patient_id = %s AND status = 'admitted' "
        "AND admitted_at IS NOT NULL FOR UPDATE", (patient_id,)).fetchone()
    if row is None:
        return None
    start: dt.datetime = row[0]
    return start


def open_admission_id(conn: Conn, patient_id: int) -> int | None:
    """The patient's latest referred or admitted admission."""
    row = conn.execute("SELECT id FROM admissions WHERE patient_id = %s AND status IN "
                       "('referred', 'admitted') ORDER BY id DESC LIMIT 1",
                       [patient_id]).fetchone()
    return None if row is None else int(row[0])
