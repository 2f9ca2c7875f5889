"""The ward manager's flows as transactions: refer, triage, admit with a kit, discharge.

Both the API (`routers.admissions`) and the pages (`routers.manager_pages`) call these, so a
referral taken on the phone and one posted by an integration are the same rows, audits and
events. Each function works in the caller's transaction (the request's): an admission either
happens whole — patient details, acceptance, every device of the kit, the care plan — or not
at all. The decisions themselves are the domain's (`ward.domain.patients`).

Capacity: accepting takes a transaction-scoped advisory lock before counting the admitted
patients, so two managers accepting at once cannot both take the last bed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerting import care_plan_store
from alerting.care_plan import Ceiling
from ward.db import registry, worklist
from ward.domain.devices import Assignment
from ward.domain.errors import DomainError, InvalidTransition
from ward.domain.patients import (
    Admission,
    AdmissionStatus,
    Contact,
    DischargeOutcome,
    Pathway,
    Patient,
    ReferralSource,
    Urgency,
    has_room,
    kit_refusal,
    pathway_for,
)
from ward.hub import audit
from ward.hub.auth import PRESCRIBERS, User
from ward.hub.problems import NotFound
from ward.hub.routers.common import notify

Conn = psycopg.Connection[Any]
# Any constant unique to this lock: held only by accepting transactions, released at commit.
_CAPACITY_LOCK = 0x7677_6265_6473  # "vwbeds"


class WardFull(InvalidTransition):
    """Accepting would put more patients on the ward than it has beds."""


class KitRefused(InvalidTransition):
    """A device of the kit cannot be assigned (unknown, deactivated, already assigned)."""


class CarePlanNeedsClinician(DomainError):
    """Someone other than a clinician tried to set the care plan at admission."""


@dataclass(frozen=True, slots=True)
class KitDevice:
    """One device as the admission screen shows it while the kit is scanned in."""

    id: str
    known: bool
    kind: str | None = None
    active: bool = False
    online: bool | None = None
    battery_pct: float | None = None
    reported_at: dt.datetime | None = None
    assigned_to: int | None = None
    refusal: str | None = None


def admitted_count(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM admissions WHERE status = 'admitted'").fetchone()
    return int(row[0]) if row else 0


def kit_status(conn: Conn, device_ids: Sequence[str], *, patient_id: int, now: dt.datetime
               ) -> list[KitDevice]:
    """Each device's status and whether it can join `patient_id`'s kit, in the order asked."""
    rows = {str(r[0]): r for r in conn.execute(
        "SELECT d.id, d.kind, d.active, s.online, s.battery_pct, s.reported_at, a.patient_id "
        "FROM devices d LEFT JOIN device_status s ON s.device_id = d.id "
        "LEFT JOIN device_assignments a ON a.device_pk = d.pk AND a.during @> %s::timestamptz "
        "WHERE d.id = ANY(%s)", (now, list(device_ids)))}
    out = []
    for device_id in device_ids:
        row = rows.get(device_id)
        if row is None:
            out.append(KitDevice(device_id, known=False, refusal=kit_refusal(
                device_id, known=False, active=False, assigned_to=None,
                patient_id=patient_id)))
            continue
        _, kind, active, online, battery, reported, assigned = row
        out.append(KitDevice(
            device_id, known=True, kind=str(kind), active=bool(active), online=online,
            battery_pct=battery, reported_at=reported, assigned_to=assigned,
            refusal=kit_refusal(device_id, known=True, active=bool(active),
                                assigned_to=assigned, patient_id=patient_id)))
    return out


def parse_device_ids(text: str) -> list[str]:
    """Device ids as typed or scanned: separated by spaces, commas or new lines; no repeats."""
    seen: dict[str, None] = {}
    for part in text.replace(",", " ").split():
        seen.setdefault(part.strip(), None)
    return list(seen)


def _utc(when: dt.datetime | None) -> dt.datetime | None:
    return None if when is None else when.astimezone(dt.UTC)


def load(conn: Conn, admission_id: int, *, lock: bool = False) -> Admission:
    query = ("SELECT patient_id, pathway, source, referred_at, status, decided_at, "
             "decision_reason, admitted_at, discharged_at, outcome, urgency FROM admissions "
             "WHERE id = %s" + (" FOR UPDATE" if lock else ""))
    row = conn.execute(query, (admission_id,)).fetchone()
    if row is None:
        raise NotFound(f"no admission with id {admission_id}")
    (pid, pathway, source, referred, status, decided, reason, admitted, discharged, outcome,
     urgency) = row
    return Admission(
        patient_id=int(pid), pathway=Pathway(pathway), source=ReferralSource(source),
        referred_at=referred.astimezone(dt.UTC), status=AdmissionStatus(status),
        decided_at=_utc(decided), decision_reason=reason, admitted_at=_utc(admitted),
        discharged_at=_utc(discharged), outcome=DischargeOutcome(outcome) if outcome else None,
        id=admission_id, urgency=Urgency(urgency))


def refer(conn: Conn, user: User, now: dt.datetime, *, patient_id: int,
          source: ReferralSource, urgency: Urgency, reason: str | None,
          observations: Mapping[str, float], referrer: str | None,
          referred_at: dt.datetime | None = None, pathway: Pathway | None = None) -> int:
    """A new referral of an existing patient; returns the admission id."""
    admission = registry.add_admission(conn, Admission(
        patient_id=patient_id, pathway=pathway or pathway_for(source), source=source,
        referred_at=referred_at or now, urgency=urgency))
    assert admission.id is not None  # noqa: S101 - add_admission returns the stored id
    conn.execute(
        "UPDATE admissions SET referral_reason = %s, referral_observations = %s, "
        "referrer = %s, referred_by = %s WHERE id = %s",
        (reason or None, Jsonb(dict(observations)), referrer or None, user.username,
         admission.id))
    audit.record(conn, user, "refer", "admission", now=now, entity_id=admission.id,
                 patient_id=patient_id,
                 detail={"pathway": admission.pathway.value, "source": source.value,
                         "urgency": urgency.value})
    notify(conn, "referral", [patient_id])
    return admission.id


def refer_new_patient(conn: Conn, user: User, now: dt.datetime, patient: Patient,
                      **referral: Any) -> int:
    """A referral taken on the phone: the patient found by NHS number, or registered."""
    row = conn.execute("SELECT id FROM patients WHERE nhs_number = %s",
                       (patient.nhs_number,)).fetchone()
    if row is not None:
        patient_id = int(row[0])
    else:
        stored = registry.add_patient(conn, patient)
        assert stored.id is not None  # noqa: S101
        patient_id = stored.id
        audit.record(conn, user, "create", "patient", now=now, entity_id=patient_id,
                     patient_id=patient_id)
    return refer(conn, user, now, patient_id=patient_id, **referral)


def _store(conn: Conn, user: User, now: dt.datetime, updated: Admission, *, action: str,
           detail: Mapping[str, Any]) -> None:
    registry.update_admission(conn, updated)
    if action in ("accept", "decline"):
        conn.execute("UPDATE admissions SET decided_by = %s WHERE id = %s",
                     (user.username, updated.id))
    audit.record(conn, user, action, "admission", now=now, entity_id=updated.id,
                 patient_id=updated.patient_id, detail=detail)
    notify(conn, "admission", [updated.patient_id])


def accept(conn: Conn, user: User, now: dt.datetime, admission_id: int, *, beds: int,
           at: dt.datetime | None = None) -> Admission:
    """Accept a referral onto the ward (admitted from `at`), if there is a bed."""
    current = load(conn, admission_id, lock=True)
    updated = current.admit(at or now)  # refuses anything but a referral
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CAPACITY_LOCK,))
    admitted = admitted_count(conn)
    if not has_room(admitted, beds):
        msg = (f"the ward is full: {admitted} of {beds} beds are occupied; discharge a "
               "patient or decline the referral")
        raise WardFull(msg)
    admitted_at = updated.admitted_at.isoformat() if updated.admitted_at else None
    _store(conn, user, now, updated, action="accept", detail={"at": admitted_at})
    return updated


def decline(conn: Conn, user: User, now: dt.datetime, admission_id: int, *, reason: str,
            at: dt.datetime | None = None) -> Admission:
    updated = load(conn, admission_id, lock=True).decline(at or now, reason)
    _store(conn, user, now, updated, action="decline", detail={"reason": reason})
    return updated


@dataclass(frozen=True, slots=True)
class CarePlanAtAdmission:
    spo2_scale: int
    ceiling: Ceiling
    reason: str


def admit(conn: Conn, user: User, now: dt.datetime, admission_id: int, *, beds: int,
          patient: Patient, contact: Contact, device_ids: Sequence[str],
          plan: CarePlanAtAdmission | None) -> Admission:
    """Accept the referral, record the patient's details, assign the kit, set the plan."""
    if plan is not None and user.role not in PRESCRIBERS:
        msg = ("the care plan at admission (SpO2 scale, ceiling of care) is a clinician's "
               "decision: admit without it and ask a clinician to set it")
        raise CarePlanNeedsClinician(msg)
    current = load(conn, admission_id, lock=True)
    registry.update_patient(conn, current.patient_id, patient, contact)
    updated = accept(conn, user, now, admission_id, beds=beds)
    if not device_ids:
        msg = "an admission needs at least one device in the kit"
        raise KitRefused(msg)
    for device in kit_status(conn, device_ids, patient_id=current.patient_id, now=now):
        if device.refusal:
            raise KitRefused(device.refusal)
    for device_id in device_ids:
        registry.assign_device(conn, Assignment(device_id, current.patient_id, now))
    if plan is not None:
        care_plan_store.set_spo2_scale(conn, current.patient_id, scale=plan.spo2_scale,
                                 target_low=None, target_high=None, by=user.username,
                                 reason=plan.reason, now=now)
        care_plan_store.set_ceiling_of_care(conn, current.patient_id, ceiling=plan.ceiling,
                                      by=user.username, reason=plan.reason, now=now)
    audit.record(conn, user, "admit", "admission", now=now, entity_id=admission_id,
                 patient_id=current.patient_id,
                 detail={"devices": list(device_ids), "care_plan": plan is not None})
    return updated


@dataclass(frozen=True, slots=True)
class Discharged:
    admission: Admission
    devices_to_collect: tuple[str, ...]
    follow_up_task: str  # the worklist reference of the follow-up call, task-<id>
    follow_up_not_before: dt.datetime
    follow_up_due: dt.datetime


def discharge(conn: Conn, user: User, now: dt.datetime, admission_id: int, *,
              outcome: DischargeOutcome, note: str | None, at: dt.datetime | None = None
              ) -> Discharged:
    """Discharge: the stay ends, the kit is unassigned for collection, and the follow-up
    call is on the worklist (the data layer books it with the discharge: ward.db.worklist)."""
    when = at or now
    updated = load(conn, admission_id, lock=True).discharge(when, outcome)
    _store(conn, user, now, updated, action="discharge",
           detail={"outcome": outcome.value, "note": note})
    conn.execute("UPDATE admissions SET discharge_note = %s, discharged_by = %s WHERE id = %s",
                 (note or None, user.username, admission_id))
    # update_admission ended the patient's assignments at the discharge instant (the data
    # layer's rule); the devices whose assignment ends exactly then are the ones to collect.
    devices = devices_to_collect(conn, updated.patient_id, when)
    call = worklist.follow_up_call(conn, admission_id)
    if call is None:  # pragma: no cover - update_admission books it in this transaction
        msg = f"admission {admission_id} was discharged without its follow-up call"
        raise InvalidTransition(msg)
    task_id, not_before, due = call
    audit.record(conn, user, "create", "task", now=now, entity_id=f"task-{task_id}",
                 patient_id=updated.patient_id,
                 detail={"kind": "follow_up_call", "due_at": due.isoformat(),
                         "devices": list(devices)})
    return Discharged(replace(updated), tuple(devices), f"task-{task_id}", not_before, due)


def devices_to_collect(conn: Conn, patient_id: int, discharged_at: dt.datetime) -> list[str]:
    """Devices whose assignment to the patient ended at the discharge: to be collected."""
    return [str(r[0]) for r in conn.execute(
        "SELECT d.id FROM device_assignments a JOIN devices d ON d.pk = a.device_pk "
        "WHERE a.patient_id = %s AND upper(a.during) = %s ORDER BY d.id",
        (patient_id, discharged_at))]
