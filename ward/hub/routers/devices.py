"""Devices: register, assign to a patient from a time, unassign, status.

A device answer names the patient it is assigned to, so every answer that does is audited
with that patient (lists name every patient shown)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ward.db import registry
from ward.domain.devices import (
    DEVICE_ID_PATTERN,
    Assignment,
    Device,
    DeviceKind,
    validate_home_device_id,
)
from ward.hub import audit
from ward.hub.deps import DB, Now
from ward.hub.problems import NotFound
from ward.hub.routers.common import (
    BIGINT_MAX,
    Conn,
    DeviceManager,
    Limit,
    Offset,
    Page,
    Reader,
    Text,
    notify,
    require_patient,
)

router = APIRouter(prefix="/api/devices", tags=["devices"])
DeviceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN.pattern, max_length=64)]


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN.pattern, max_length=64)]
    kind: DeviceKind
    model: Annotated[Text, Field(max_length=100)] = ""

    def to_domain(self) -> Device:
        # Service (`vw-…`) and staff-entry (`staff-…`) ids are refused (422): see
        # ward.domain.devices.RESERVED_ID_PREFIXES.
        return Device(validate_home_device_id(self.id), self.kind, self.model)


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: Annotated[int, Field(ge=1, le=BIGINT_MAX)]
    start: AwareDatetime | None = Field(None, description="assigned from; default: now")
    end: AwareDatetime | None = None


class UnassignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: AwareDatetime | None = Field(None, description="assignment ends; default: now")


class StatusOut(BaseModel):
    online: bool | None
    battery_pct: float | None
    signal_dbm: float | None
    firmware: str | None
    reported_at: dt.datetime | None


class AssignmentOut(BaseModel):
    patient_id: int
    start: dt.datetime
    end: dt.datetime | None


class DeviceOut(BaseModel):
    id: str
    kind: DeviceKind
    model: str
    active: bool
    registered_at: dt.datetime
    status: StatusOut
    current_assignment: AssignmentOut | None


_SELECT = (
    "SELECT d.id, d.kind, d.model, d.active, d.registered_at, s.online, s.battery_pct, "
    "s.signal_dbm, s.firmware, s.reported_at, a.patient_id, lower(a.during), upper(a.during) "
    "FROM devices d LEFT JOIN device_status s ON s.device_id = d.id "
    "LEFT JOIN device_assignments a ON a.device_pk = d.pk AND a.during @> %s::timestamptz "
)


def _out(row: tuple[Any, ...]) -> DeviceOut:
    assignment = (AssignmentOut(patient_id=row[10], start=row[11], end=row[12])
                  if row[10] is not None else None)
    return DeviceOut(id=row[0], kind=row[1], model=row[2], active=row[3],
                     registered_at=row[4],
                     status=StatusOut(online=row[5], battery_pct=row[6], signal_dbm=row[7],
                                      firmware=row[8], reported_at=row[9]),
                     current_assignment=assignment)


def _patients(*devices: DeviceOut) -> list[int]:
    return [d.current_assignment.patient_id for d in devices if d.current_assignment]


def load_device(conn: Conn, device_id: str, now: dt.datetime) -> DeviceOut:
    row = conn.execute(_SELECT + "WHERE d.id = %s", (now, device_id)).fetchone()
    if row is None:
        raise NotFound(f"no device {device_id!r}")
    return _out(row)


@router.get("", response_model=Page[DeviceOut])
def list_devices(conn: DB, now: Now, user: Reader, limit: Limit = 50, offset: Offset = 0,
                 kind: DeviceKind | None = None, active: bool | None = None,
                 assigned: bool | None = None) -> Page[DeviceOut]:
    clauses: list[str] = ["true"]
    params: list[object] = []
    if kind is not None:
        clauses.append("d.kind = %s")
        params.append(kind.value)
    if active is not None:
        clauses.append("d.active = %s")
        params.append(active)
    if assigned is not None:
        clauses.append("a.patient_id IS NOT NULL" if assigned else "a.patient_id IS NULL")
    where = "WHERE " + " AND ".join(clauses)
    total = conn.execute(
        "SELECT count(*) FROM devices d LEFT JOIN device_assignments a ON a.device_pk = d.pk "
        "AND a.during @> %s::timestamptz " + where, [now, *params]).fetchone()
    rows = conn.execute(_SELECT + where + " ORDER BY d.id LIMIT %s OFFSET %s",
                        [now, *params, limit, offset]).fetchall()
    items = [_out(r) for r in rows]
    audit.record(conn, user, "list", "device", now=now, patient_ids=_patients(*items),
                 detail={"device_ids": [d.id for d in items]})
    return Page[DeviceOut](items=items, total=int(total[0]) if total else 0,
                           limit=limit, offset=offset)


@router.post("", response_model=DeviceOut, status_code=201)
def register_device(body: DeviceIn, conn: DB, now: Now, user: DeviceManager) -> DeviceOut:
    registry.add_device(conn, body.to_domain())
    out = load_device(conn, body.id, now)
    audit.record(conn, user, "create", "device", now=now, entity_id=body.id,
                 patient_ids=_patients(out), detail={"kind": body.kind.value})
    return out


@router.get("/{device_id}", response_model=DeviceOut)
def read_device(device_id: DeviceId, conn: DB, now: Now, user: Reader) -> DeviceOut:
    out = load_device(conn, device_id, now)
    audit.record(conn, user, "read", "device", now=now, entity_id=device_id,
                 patient_id=out.current_assignment.patient_id if out.current_assignment
                 else None)
    return out


@router.get("/{device_id}/status", response_model=StatusOut)
def device_status(device_id: DeviceId, conn: DB, now: Now, user: Reader) -> StatusOut:
    return load_device(conn, device_id, now).status


@router.post("/{device_id}/assignments", response_model=DeviceOut, status_code=201)
def assign(device_id: DeviceId, body: AssignIn, conn: DB, now: Now, user: DeviceManager
           ) -> DeviceOut:
    """Assign the device to a patient from `start`: readings measured from then are theirs."""
    load_device(conn, device_id, now)
    require_patient(conn, body.patient_id)
    start = (body.start or now).astimezone(dt.UTC)
    end = body.end.astimezone(dt.UTC) if body.end else None
    registry.assign_device(conn, Assignment(device_id, body.patient_id, start, end))
    audit.record(conn, user, "assign", "device", now=now, entity_id=device_id,
                 patient_id=body.patient_id,
                 detail={"start": start.isoformat(), "end": end.isoformat() if end else None})
    notify(conn, "device", [body.patient_id])
    return load_device(conn, device_id, now)


@router.post("/{device_id}/unassign", response_model=DeviceOut)
def unassign(device_id: DeviceId, body: UnassignIn, conn: DB, now: Now, user: DeviceManager
             ) -> DeviceOut:
    before = load_device(conn, device_id, now)
    at = (body.at or now).astimezone(dt.UTC)
    registry.end_assignment(conn, device_id, at)
    patient = before.current_assignment.patient_id if before.current_assignment else None
    audit.record(conn, user, "unassign", "device", now=now, entity_id=device_id,
                 patient_id=patient, detail={"at": at.isoformat()})
    if patient is not None:
        notify(conn, "device", [patient])
    return load_device(conn, device_id, now)


@router.post("/{device_id}/deactivate", response_model=DeviceOut)
def deactivate(device_id: DeviceId, conn: DB, now: Now, user: DeviceManager) -> DeviceOut:
    registry.set_device_active(conn, device_id, active=False, at=now)
    out = load_device(conn, device_id, now)
    audit.record(conn, user, "deactivate", "device", now=now, entity_id=device_id,
                 patient_ids=_patients(out))
    return out

