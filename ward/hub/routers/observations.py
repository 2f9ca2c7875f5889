"""Observations entered by hub staff on a patient's behalf (a phone call, a home visit).

`POST /api/patients/{id}/observations` checks the entry exactly as the gateway checks a device
reading (`ward.hub.staff_entry`, over `ward.domain.vitals`), attributes it to the patient's
virtual staff device (registered and assigned from the admission on first use), and stores it
through `ReadingStore.write_checked` with its audit row and `NOTIFY vw_events` in one
transaction.
After the commit the alerting core scores the patient (`alerting.runner`), as it does after
every gateway batch, so the new NEWS2 and any alert are in the answer.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from alerting.runner import Change, evaluate_after_commit
from ward.db import registry
from ward.db.store import ReadingStore
from ward.domain.devices import Assignment, Device
from ward.domain.readings import Reading
from ward.domain.vitals import CATALOGUE
from ward.hub import audit, staff_entry
from ward.hub.auth import User
from ward.hub.deps import DB, Now, SettingsDep
from ward.hub.problems import Conflict, ConflictingReading, Invalid
from ward.hub.queries import admissions, staff_entries
from ward.hub.queries import readings as readings_queries
from ward.hub.queries.readings import ScoreOut
from ward.hub.routers.common import Clinical, Conn, PatientId, Text, notify, require_patient
from ward.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/patients/{patient_id}", tags=["observations"])
# One value per catalogue code at most (a repeated code is refused anyway); more is not an
# observation set but a bulk import, which is not what this endpoint is for.
MAX_OBSERVATIONS = len(CATALOGUE)


class ObservationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Annotated[Text, Field(min_length=1, max_length=64, examples=["resp_rate"])]
    # Strict: a boolean or a numeric string is a mistake, not a value to coerce.
    value: StrictInt | StrictFloat | Annotated[StrictStr, Field(max_length=32)] = Field(
        description="a number, or a label for categorical codes (ACVPU letter, air/oxygen)")
    unit: Annotated[Text | None, Field(max_length=32, description=(
        "UCUM or a common spelling (°F, mmHg, kPa); default: the catalogue's unit"))] = None

    def to_domain(self) -> staff_entry.Observation:
        return staff_entry.Observation(self.code, self.value, self.unit)


class ObservationsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    measured_at: AwareDatetime | None = Field(None, description="when observed; default: now")
    observations: Annotated[list[ObservationIn], Field(min_length=1,
                                                       max_length=MAX_OBSERVATIONS)]
    note: Annotated[Text | None, Field(max_length=2000)] = None
    method: staff_entries.Method | None = Field(
        None, description="how the values were taken: a phone call or a visit")


class StoredObservationOut(BaseModel):
    code: str
    value: float
    unit: str
    source_value: float | None
    source_unit: str | None


class AlertChangeOut(BaseModel):
    alert_id: int
    kind: str
    state: str
    severity: str
    events: list[str]


class ObservationsOut(BaseModel):
    patient_id: int
    device_id: str
    msg_id: str
    entered_by: str
    measured_at: dt.datetime
    late: bool
    readings: list[StoredObservationOut]
    evaluated: bool = Field(description="false when scoring failed after the readings were "
                                        "stored; the next reading or sweep scores them")
    score: ScoreOut | None
    alert_changes: list[AlertChangeOut]


def _json_safe(value: object) -> object:
    # JSON has no Infinity/NaN: say what was sent as text instead of failing to answer.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _current_admission_start(conn: Conn, patient_id: int) -> dt.datetime:
    """Start of the open admission, row-locked so a discharge or a second entry waits."""
    start = admissions.admitted_at_for_update(conn, patient_id)
    if start is None:
        raise Conflict(f"patient {patient_id} is not currently admitted: observations are "
                       "recorded only during an admission")
    return start


def _ensure_staff_device(conn: Conn, patient_id: int, *, admitted_at: dt.datetime,
                         measured_at: dt.datetime) -> str:
    """The patient's staff device, registered and assigned from the admission on first use."""
    device_id = staff_entry.staff_device_id(patient_id)
    record = registry.device_directory(conn, [device_id]).get(device_id)
    if record is None:
        registry.add_device(conn, Device(device_id, staff_entry.STAFF_DEVICE_KIND,
                                         staff_entry.STAFF_DEVICE_MODEL))
    elif not record.device.active:
        raise Conflict(f"device {device_id!r} (staff entry) is deactivated")
    owner = record.patient_at(measured_at) if record is not None else None
    if owner is None:
        # Assignment rules apply: an overlap with another assignment is a 409 naming it.
        registry.assign_device(conn, Assignment(device_id, patient_id, admitted_at))
    elif owner != patient_id:
        raise Conflict(f"device {device_id!r} is assigned to patient {owner} at "
                       f"{measured_at.isoformat()}, not to patient {patient_id}")
    return device_id


def _store(conn: Conn, readings: tuple[Reading, ...], tz: ZoneInfo) -> None:
    """Store the entry's readings or refuse the whole entry (the caller's transaction is then
    rolled back): a slot already holding the same value is a duplicate (409 `conflict`, as
    before), one holding another value or unit a `conflicting-reading` naming both values."""
    written = ReadingStore().write_checked(conn, readings)
    if all(written.inserted):
        return
    found = staff_entry.clashes(readings, written.inserted, {
        i: (s.value, s.unit, s.msg_id) for i, s in written.conflicts.items()})
    duplicates = [{"code": c.reading.code, "measured_at": c.reading.measured_at.isoformat()}
                  for c in found if not c.conflicting]
    conflicts = [c for c in found if c.conflicting]
    if not conflicts:
        names = ", ".join(f"{d['code']} at {d['measured_at']}" for d in duplicates)
        raise Conflict(f"already recorded for this patient: {names}; nothing was stored",
                       extra={"duplicates": duplicates})
    raise ConflictingReading(
        "; ".join(staff_entry.clash_text(c, tz) for c in conflicts),
        extra={"conflicts": [_conflict_out(c, tz) for c in conflicts],
               "duplicates": duplicates})


def _conflict_out(clash: staff_entry.Clash, tz: ZoneInfo) -> dict[str, Any]:
    r = clash.reading
    return {"code": r.code, "measured_at": r.measured_at.isoformat(),
            "stored": {"value": clash.stored_value, "unit": clash.stored_unit,
                       "msg_id": clash.stored_msg_id},
            "sent": {"value": r.value, "unit": r.unit, "source_value": r.source_value,
                     "source_unit": r.source_unit},
            "msg": staff_entry.clash_text(clash, tz)}


def _evaluate(conn: Conn, patient_id: int, now: dt.datetime) -> list[Change] | None:
    """Score and alert after the commit; None if that failed (the readings stay stored)."""
    try:
        return evaluate_after_commit(conn, [patient_id], now)
    except Exception:  # the entry is committed; the next reading or sweep scores it
        log.exception("alerting evaluation failed after a staff entry patient_id=%s",
                      patient_id)
        if not conn.closed:
            conn.rollback()
        return None


def _limits(settings: Settings) -> staff_entry.Limits:
    return staff_entry.Limits(
        future_tolerance=dt.timedelta(seconds=settings.gateway_future_tolerance_s),
        late_after=dt.timedelta(seconds=settings.gateway_late_after_s))


def _readings(body: ObservationsIn, patient_id: int, user: User, *, now: dt.datetime,
              admitted_at: dt.datetime, settings: Settings) -> tuple[Reading, ...]:
    # The request's own instant, to the microsecond: truncating it to the second refused a
    # set entered in the admission's own second as "before the admission began" (issue
    # 11.10). The form disables its button while a submission is in flight.
    measured_at = body.measured_at or now
    msg_id = staff_entry.entry_msg_id(user.username, uuid.uuid4().hex)
    try:
        return staff_entry.readings_for(
            patient_id, [o.to_domain() for o in body.observations], measured_at=measured_at,
            now=now, admitted_at=admitted_at, limits=_limits(settings), msg_id=msg_id)
    except staff_entry.EntryRejected as exc:
        errors: list[dict[str, Any]] = [
            {"loc": [str(part) for part in e.loc], "msg": e.msg, "type": e.type,
             "value": _json_safe(e.value)} for e in exc.errors]
        raise Invalid(str(exc), extra={"errors": errors}) from exc


@router.post("/observations", response_model=ObservationsOut, status_code=201,
             responses={409: {"description": "not admitted, already recorded (`conflict`, "
                                              "`duplicates`), or another value already "
                                              "recorded in a slot (`conflicting-reading`, "
                                              "`conflicts`)"},
                        422: {"description": "a value, unit, code or time was refused"}})
def record_observations(patient_id: PatientId, body: ObservationsIn, conn: DB, now: Now,
                        settings: SettingsDep, user: Clinical) -> ObservationsOut:
    """Record observations taken by staff (a phone call, a visit) for an admitted patient.

    Checked like device readings (catalogue code, unit and conversion, plausibility, labels);
    attributed to the patient's `staff-<id>` device and to the person entering them (the
    readings' `msg_id` is `staff:<username>:<entry>`); scored and alerted after the commit.
    """
    require_patient(conn, patient_id)
    admitted_at = _current_admission_start(conn, patient_id)
    readings = _readings(body, patient_id, user, now=now, admitted_at=admitted_at,
                         settings=settings)
    first = readings[0]
    device_id = _ensure_staff_device(conn, patient_id, admitted_at=admitted_at,
                                     measured_at=first.measured_at)
    _store(conn, readings, ZoneInfo(settings.display_timezone))
    audit.record(conn, user, "create", "observations", now=now, entity_id=first.msg_id,
                 patient_id=patient_id, detail={
                     "device_id": device_id, "measured_at": first.measured_at.isoformat(),
                     "observations": [{"code": r.code, "value": r.value, "unit": r.unit}
                                      for r in readings],
                     "note": body.note, "method": body.method})
    staff_entries.record(conn, msg_id=first.msg_id or "", patient_id=patient_id,
                         entered_by=user.username, method=body.method, note=body.note,
                         measured_at=first.measured_at, entered_at=now,
                         observations=[{"code": r.code, "value": r.value, "unit": r.unit}
                                       for r in readings])
    notify(conn, "readings", [patient_id])
    conn.commit()
    changes = _evaluate(conn, patient_id, now)
    return ObservationsOut(
        patient_id=patient_id, device_id=device_id, msg_id=first.msg_id or "",
        entered_by=user.username, measured_at=first.measured_at, late=first.late,
        readings=[StoredObservationOut(code=r.code, value=r.value, unit=r.unit,
                                       source_value=r.source_value, source_unit=r.source_unit)
                  for r in readings],
        evaluated=changes is not None, score=readings_queries.newest_score(conn, patient_id),
        alert_changes=[AlertChangeOut(alert_id=c.alert_id, kind=c.kind, state=c.state,
                                      severity=c.severity, events=list(c.events))
                       for c in changes or []])
