"""Devices: register, assign to a patient from a time, unassign, status.

A device answer names the patient it is assigned to, so every answer that does is audited
with that patient (lists name every patient shown)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

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
from ward.hub.queries import devices as queries
from ward.hub.queries.devices import DeviceOut, StatusOut, load_device, patients_of
from ward.hub.routers.common import (
    BIGINT_MAX,
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


@router.get("", response_model=Page[DeviceOut])
def list_devices(conn: DB, now: Now, user: Reader, limit: Limit = 50, offset: Offset = 0,
                 kind: DeviceKind | None = None, active: bool | None = None,
                 assigned: bool | None = None) -> Page[DeviceOut]:
    items, total = queries.list_devices(conn, now, limit=limit, offset=offset, kind=kind,
                                        active=active, assigned=assigned)
    audit.record(conn, user, "list", "device", now=now, patient_ids=patients_of(*items),
                 detail={"device_ids": [d.id for d in items]})
    return Page[DeviceOut](items=items, total=total, limit=limit, offset=offset)


@router.post("", response_model=DeviceOut, status_code=201)
def register_device(body: DeviceIn, conn: DB, now: Now, user: DeviceManager) -> DeviceOut:
    registry.add_device(conn, body.to_domain())
    out = load_device(conn, body.id, now)
    audit.record(conn, user, "create", "device", now=now, entity_id=body.id,
                 patient_ids=patients_of(out), detail={"kind": body.kind.value})
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
                 patient_ids=patients_of(out))
    return out

