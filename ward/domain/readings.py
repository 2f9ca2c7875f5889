"""The internal reading: one measured value of one vital code, from one device.

Whatever the wire format (native JSON, SenML), the gateway maps every measurement onto this
type after unit conversion. Its natural key is (device_id, code, measured_at): a redelivered
or duplicated message yields the same key and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ward.domain.errors import DomainError


@dataclass(frozen=True, slots=True)
class Reading:
    device_id: str
    code: str
    measured_at: dt.datetime  # timezone-aware UTC
    value: float  # in the catalogue's canonical unit, unrounded
    unit: str  # canonical UCUM unit
    patient_id: int
    received_at: dt.datetime
    msg_id: str | None = None
    late: bool = False
    # What the device sent when it was converted (e.g. 100.4 [degF]); None when canonical.
    source_value: float | None = None
    source_unit: str | None = None

    def __post_init__(self) -> None:
        for name in ("measured_at", "received_at"):
            when: dt.datetime = getattr(self, name)
            if when.tzinfo is None or when.utcoffset() != dt.timedelta(0):
                msg = f"{name} must be timezone-aware UTC, got {when!r}"
                raise DomainError(msg)

    @property
    def key(self) -> tuple[str, str, dt.datetime]:
        return (self.device_id, self.code, self.measured_at)
