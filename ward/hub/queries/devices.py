"""Devices as the API shows them: the device, its last status and its current assignment."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel

from ward.domain.devices import DeviceKind
from ward.hub.deps import Conn
from ward.hub.problems import NotFound


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


# The first parameter is the instant the assignment is current at.
_SELECT = (
    "SELECT d.id, d.kind, d.model, d.active, d.registered_at, s.online, s.battery_pct, "
    "s.signal_dbm, s.firmware, s.reported_at, a.patient_id, lower(a.during), upper(a.during) "
    "FROM devices d LEFT JOIN device_status s ON s.device_id = d.id "
    "LEFT JOIN device_assignments a ON a.device_pk = d.pk AND a.during @> %s::timestamptz "
)


def device_out(row: tuple[Any, ...]) -> DeviceOut:
    assignment = (AssignmentOut(patient_id=row[10], start=row[11], end=row[12])
                  if row[10] is not None else None)
    return DeviceOut(id=row[0], kind=row[1], model=row[2], active=row[3],
                     registered_at=row[4],
                     status=StatusOut(online=row[5], battery_pct=row[6], signal_dbm=row[7],
                                      firmware=row[8], reported_at=row[9]),
                     current_assignment=assignment)


def patients_of(*devices: DeviceOut) -> list[int]:
    """The patients these devices are assigned to now (for the audit trail)."""
    return [d.current_assignment.patient_id for d in devices if d.current_assignment]


def load_device(conn: Conn, device_id: str, now: dt.datetime) -> DeviceOut:
    row = conn.execute(_SELECT + "WHERE d.id = %s", (now, device_id)).fetchone()
    if row is None:
        raise NotFound(f"no device {device_id!r}")
    return device_out(row)


def list_devices(conn: Conn, now: dt.datetime, *, limit: int, offset: int,
                 kind: DeviceKind | None = None, active: bool | None = None,
                 assigned: bool | None = None) -> tuple[list[DeviceOut], int]:
    """One page of devices by id, and how many match in all."""
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
    return [device_out(r) for r in rows], int(total[0]) if total else 0


def devices_of_patient(conn: Conn, patient_id: int, now: dt.datetime) -> list[DeviceOut]:
    """The devices assigned to the patient now, by id."""
    return [device_out(r) for r in conn.execute(
        _SELECT + "WHERE a.patient_id IS NOT NULL AND a.patient_id = %s ORDER BY d.id",
        (now, patient_id))]


def assigned_ids(conn: Conn, patient_id: int) -> list[str]:
    """The ids of the devices assigned to the patient now (open-ended assignments)."""
    return [str(r[0]) for r in conn.execute(
        "SELECT d.id FROM device_assignments a JOIN devices d ON d.pk = a.device_pk "
        "WHERE a.patient_id = %s AND upper_inf(a.during) ORDER BY d.id", (patient_id,))]
