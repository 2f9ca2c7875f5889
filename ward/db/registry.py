"""Patients, admissions, devices and assignments in the database.

Thin SQL over the domain types: validation happens in `ward.domain` before anything is
written, and the database's own constraints (one open admission per patient, no overlapping
assignment of a device) are the last line. Constraint violations come back as `RegistryError`
naming the value, and the caller's transaction is left for the caller to roll back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg.types.range import Range

from ward.db import worklist
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.domain.errors import DomainError
from ward.domain.patients import Admission, AdmissionStatus, Contact, FollowUpOutcome, Patient

Conn = psycopg.Connection[Any]


class RegistryError(DomainError):
    """A write the database refused (duplicate NHS number, overlapping assignment, …)."""


def _first(row: tuple[Any, ...] | None) -> int:
    """The id a RETURNING clause gave back (an INSERT … RETURNING always returns a row)."""
    if row is None:  # pragma: no cover - would be a PostgreSQL bug
        msg = "INSERT … RETURNING returned no row"
        raise RegistryError(msg)
    return int(row[0])


def add_patient(conn: Conn, patient: Patient) -> Patient:
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (patient.nhs_number, patient.given_name, patient.family_name,
                 patient.date_of_birth),
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        msg = f"a patient with NHS number {patient.nhs_number} already exists"
        raise RegistryError(msg) from exc
    return Patient(patient.nhs_number, patient.given_name, patient.family_name,
                   patient.date_of_birth, id=_first(row))


def add_admission(conn: Conn, admission: Admission) -> Admission:
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, "
                "decided_at, decision_reason, admitted_at, discharged_at, outcome, urgency) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (admission.patient_id, admission.pathway.value, admission.source.value,
                 admission.status.value, admission.referred_at, admission.decided_at,
                 admission.decision_reason, admission.admitted_at, admission.discharged_at,
                 admission.outcome.value if admission.outcome else None,
                 admission.urgency.value),
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        msg = f"patient {admission.patient_id} already has an open referral or admission"
        raise RegistryError(msg) from exc
    except psycopg.errors.ForeignKeyViolation as exc:
        msg = f"no patient with id {admission.patient_id}"
        raise RegistryError(msg) from exc
    stored = replace(admission, id=_first(row))
    if stored.starts_urgent_clock:
        worklist.start_urgent_clock(conn, stored.patient_id, _first(row), stored.referred_at)
    _worklist_after(conn, stored)
    return stored


def update_admission(conn: Conn, admission: Admission) -> None:
    """Persist a transition made by the domain (admit, decline, discharge)."""
    if admission.id is None:
        msg = "cannot update an admission that has no id"
        raise RegistryError(msg)
    conn.execute(
        "UPDATE admissions SET status = %s, decided_at = %s, decision_reason = %s, "
        "admitted_at = %s, discharged_at = %s, outcome = %s WHERE id = %s",
        (admission.status.value, admission.decided_at, admission.decision_reason,
         admission.admitted_at, admission.discharged_at,
         admission.outcome.value if admission.outcome else None, admission.id),
    )
    if admission.status is AdmissionStatus.DISCHARGED and admission.discharged_at is not None:
        end_patient_assignments(conn, admission.patient_id, admission.discharged_at)
    _worklist_after(conn, admission)


def _worklist_after(conn: Conn, admission: Admission) -> None:
    """The worklist tasks a stored admission's state implies (ward.db.worklist): a declined
    referral stops its 2-hour clock; an admission closes a follow-up call still open from an
    earlier stay; a discharge closes the stay's 2-hour clock and books its follow-up call."""
    assert admission.id is not None  # noqa: S101 - both callers pass a stored admission
    if admission.status is AdmissionStatus.DECLINED:
        worklist.stop_urgent_clock(conn, admission.id,
                                   admission.decided_at or admission.referred_at,
                                   "referral declined")
    elif admission.status is AdmissionStatus.ADMITTED and admission.admitted_at is not None:
        worklist.close_follow_up_calls(conn, admission.patient_id, admission.admitted_at,
                                       FollowUpOutcome.READMITTED)
    elif (admission.status is AdmissionStatus.DISCHARGED
          and admission.discharged_at is not None):
        worklist.close_urgent_clock_at_discharge(conn, admission.id, admission.discharged_at)
        worklist.schedule_follow_up_call(conn, admission.patient_id, admission.id,
                                         admission.discharged_at)


def end_patient_assignments(conn: Conn, patient_id: int, at: dt.datetime) -> int:
    """Discharge ends the patient's device assignments at `at` (and drops any that would
    start later): a reading measured after it belongs to nobody, so the gateway dead-letters
    it as `no_patient_assignment` instead of filing it under a discharged patient. Returns
    the number of assignments ended or dropped."""
    dropped = conn.execute(
        "DELETE FROM device_assignments WHERE patient_id = %s AND lower(during) >= %s",
        (patient_id, at)).rowcount
    ended = conn.execute(
        "UPDATE device_assignments SET during = tstzrange(lower(during), %s, '[)') "
        "WHERE patient_id = %s AND lower(during) < %s "
        "AND (upper_inf(during) OR upper(during) > %s)",
        (at, patient_id, at, at)).rowcount
    return dropped + ended


def update_patient(conn: Conn, patient_id: int, patient: Patient, contact: Contact) -> None:
    """Correct the patient's identity and record their contact details (at admission)."""
    try:
        with conn.transaction():
            cur = conn.execute(
                "UPDATE patients SET nhs_number = %s, given_name = %s, family_name = %s, "
                "date_of_birth = %s, address = %s, phone = %s, next_of_kin = %s, "
                "gp_practice = %s WHERE id = %s",
                (patient.nhs_number, patient.given_name, patient.family_name,
                 patient.date_of_birth, contact.address, contact.phone, contact.next_of_kin,
                 contact.gp_practice, patient_id))
    except psycopg.errors.UniqueViolation as exc:
        msg = f"another patient already has NHS number {patient.nhs_number}"
        raise RegistryError(msg) from exc
    if cur.rowcount == 0:
        msg = f"no patient with id {patient_id}"
        raise RegistryError(msg)


def add_device(conn: Conn, device: Device) -> int:
    """Register a device; return its internal key."""
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO devices (id, kind, model, active) VALUES (%s, %s, %s, %s) "
                "RETURNING pk",
                (device.id, device.kind.value, device.model, device.active),
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        msg = f"device {device.id!r} is already registered"
        raise RegistryError(msg) from exc
    return _first(row)


def set_device_active(conn: Conn, device_id: str, *, active: bool, at: dt.datetime) -> None:
    cur = conn.execute(
        "UPDATE devices SET active = %s, deactivated_at = %s WHERE id = %s",
        (active, None if active else at, device_id),
    )
    if cur.rowcount == 0:
        msg = f"no device {device_id!r}"
        raise RegistryError(msg)


def assign_device(conn: Conn, assignment: Assignment) -> int:
    """Assign a device to a patient over [start, end); refuse overlaps with a clear error."""
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO device_assignments (device_pk, patient_id, during) "
                "SELECT pk, %s, %s FROM devices WHERE id = %s RETURNING id",
                (assignment.patient_id, Range(assignment.start, assignment.end, "[)"),
                 assignment.device_id),
            ).fetchone()
    except psycopg.errors.ExclusionViolation as exc:
        until = assignment.end.isoformat() if assignment.end else "open-ended"
        msg = (
            f"device {assignment.device_id!r} is already assigned to a patient during "
            f"{assignment.start.isoformat()} – {until}"
        )
        raise RegistryError(msg) from exc
    except psycopg.errors.ForeignKeyViolation as exc:
        msg = f"no patient with id {assignment.patient_id}"
        raise RegistryError(msg) from exc
    if row is None:
        msg = f"no device {assignment.device_id!r}"
        raise RegistryError(msg)
    return int(row[0])


def end_assignment(conn: Conn, device_id: str, at: dt.datetime) -> None:
    """Close the device's open assignment at `at`."""
    cur = conn.execute(
        "UPDATE device_assignments a SET during = tstzrange(lower(a.during), %s, '[)') "
        "FROM devices d WHERE d.pk = a.device_pk AND d.id = %s AND upper_inf(a.during) "
        "AND lower(a.during) < %s",
        (at, device_id, at),
    )
    if cur.rowcount == 0:
        msg = f"device {device_id!r} has no open assignment that started before {at.isoformat()}"
        raise RegistryError(msg)


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    device: Device
    assignments: tuple[Assignment, ...]

    def patient_at(self, at: dt.datetime) -> int | None:
        for assignment in self.assignments:
            if assignment.covers(at):
                return assignment.patient_id
        return None


def device_directory(conn: Conn, device_ids: list[str] | None = None) -> dict[str, DeviceRecord]:
    """Devices with their assignment history, for the gateway's in-memory lookups."""
    query = (
        "SELECT d.id, d.kind, d.model, d.active, a.patient_id, lower(a.during), upper(a.during) "
        "FROM devices d LEFT JOIN device_assignments a ON a.device_pk = d.pk"
    )
    params: tuple[object, ...] = ()
    if device_ids is not None:
        query += " WHERE d.id = ANY(%s)"
        params = (device_ids,)
    query += " ORDER BY d.id, lower(a.during)"
    devices: dict[str, Device] = {}
    assignments: dict[str, list[Assignment]] = {}
    for dev_id, kind, model, active, patient_id, start, end in conn.execute(query, params):
        if dev_id not in devices:
            devices[dev_id] = Device(dev_id, DeviceKind(kind), model, active)
            assignments[dev_id] = []
        if patient_id is not None:
            assignments[dev_id].append(Assignment(dev_id, int(patient_id), start, end))
    return {
        dev_id: DeviceRecord(device, tuple(assignments[dev_id]))
        for dev_id, device in devices.items()
    }
