"""The internal reading: one measured value of one vital code, from one device.

Whatever the wire format (native JSON, SenML), the gateway maps every measurement onto this
type after unit conversion. Its natural key is (device_id, code, measured_at): a redelivered
or duplicated message yields the same key and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple

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
        if self.measured_at.tzinfo is dt.UTC and self.received_at.tzinfo is dt.UTC:
            return  # the common case, decided without the loop below
        for name in ("measured_at", "received_at"):
            when: dt.datetime = getattr(self, name)
            if when.tzinfo is None or when.utcoffset() != dt.timedelta(0):
                msg = f"{name} must be timezone-aware UTC, got {when!r}"
                raise DomainError(msg)

    @property
    def key(self) -> tuple[str, str, dt.datetime]:
        return (self.device_id, self.code, self.measured_at)


class ReadingRow(NamedTuple):
    """A `Reading` as the gateway builds and the store writes it: the same fields, in the
    store's COPY column order, as a named tuple.

    Why: the gateway makes one per message, and a frozen dataclass of eleven fields plus its
    `__post_init__` cost more than decoding the message did (issue 14). What `__post_init__`
    checks holds by construction here: the decoder gives UTC instants and the receive time is
    `datetime.now(UTC)`. Everything that reads a `Reading`'s fields or `key` reads these too.
    """

    device_id: str
    code: str
    measured_at: dt.datetime  # timezone-aware UTC
    value: float
    unit: str
    patient_id: int
    received_at: dt.datetime
    msg_id: str | None = None
    late: bool = False
    source_value: float | None = None
    source_unit: str | None = None

    @property
    def key(self) -> tuple[str, str, dt.datetime]:
        return (self.device_id, self.code, self.measured_at)
