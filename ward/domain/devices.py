"""Devices and their assignments to patients.

A reading belongs to the patient the device was assigned to at the moment it was *measured*,
not when it arrived: assignments carry validity periods `[start, end)`, and one device is never
assigned to two patients over overlapping periods (the database enforces this too).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ward.domain.errors import DomainError

# Device ids travel in MQTT topics: keep them to a safe, wildcard-free alphabet.
DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# Identities no home device may take. A device's id is also its broker username and client
# id, so a device named like a service would receive that service's broker credential when
# provisioned: every service identity (the gateway `vw-gateway`, its client ids
# `vw-gateway-N`, the broker admin `vw-admin`, …) starts with `vw-`. `staff-<patient id>` is
# the hub's own virtual device for staff-entered observations (ward/hub/staff_entry.py): a
# registered and provisioned `staff-3` could forge them. Compared case-insensitively, so
# `VW-Gateway` is refused too.
SERVICE_ID_PREFIX = "vw-"
STAFF_DEVICE_PREFIX = "staff-"
RESERVED_ID_PREFIXES = (SERVICE_ID_PREFIX, STAFF_DEVICE_PREFIX)


class DeviceKind(enum.StrEnum):
    PULSE_OXIMETER = "pulse_oximeter"
    BP_CUFF = "bp_cuff"
    THERMOMETER = "thermometer"
    INFUSION_PUMP = "infusion_pump"
    HOME_HUB = "home_hub"


def validate_device_id(device_id: str) -> str:
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        msg = (
            f"invalid device id {device_id!r}: 1–64 characters of letters, digits, '_', '.', '-'"
        )
        raise DomainError(msg)
    return device_id


def reserved_identity(device_id: str) -> str | None:
    """Why `device_id` belongs to a service or to staff entry, or None when it is free."""
    folded = device_id.casefold()
    if folded.startswith(SERVICE_ID_PREFIX):
        return f"ids starting {SERVICE_ID_PREFIX!r} are service identities on the broker"
    if folded.startswith(STAFF_DEVICE_PREFIX):
        return f"ids starting {STAFF_DEVICE_PREFIX!r} are the hub's staff-entry devices"
    return None


def validate_home_device_id(device_id: str) -> str:
    """A valid id that a home device may be registered or provisioned under."""
    validate_device_id(device_id)
    why = reserved_identity(device_id)
    if why is not None:
        msg = f"device id {device_id!r} is reserved: {why}"
        raise DomainError(msg)
    return device_id


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    kind: DeviceKind
    model: str = ""
    active: bool = True

    def __post_init__(self) -> None:
        validate_device_id(self.id)


@dataclass(frozen=True, slots=True)
class Assignment:
    device_id: str
    patient_id: int
    start: dt.datetime
    end: dt.datetime | None = None  # None: still assigned

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            when = getattr(self, name)
            if when is not None and (when.tzinfo is None or when.utcoffset() != dt.timedelta(0)):
                msg = f"assignment {name} must be timezone-aware UTC, got {when!r}"
                raise DomainError(msg)
        if self.end is not None and self.end <= self.start:
            msg = f"assignment ends ({self.end.isoformat()}) before it starts ({self.start.isoformat()})"
            raise DomainError(msg)

    def covers(self, at: dt.datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)

    def overlaps(self, other: Assignment) -> bool:
        if self.device_id != other.device_id:
            return False
        self_end = self.end or dt.datetime.max.replace(tzinfo=dt.UTC)
        other_end = other.end or dt.datetime.max.replace(tzinfo=dt.UTC)
        return self.start < other_end and other.start < self_end


def patient_at(assignments: Iterable[Assignment], device_id: str, at: dt.datetime) -> int | None:
    """The patient `device_id` was assigned to at instant `at`, or None."""
    for assignment in assignments:
        if assignment.device_id == device_id and assignment.covers(at):
            return assignment.patient_id
    return None
