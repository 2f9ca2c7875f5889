"""SenML (RFC 8428, JSON) onto the vital-sign catalogue: names, units, base fields, times.

Many off-the-shelf medical and IoT devices speak SenML. A pack is resolved record by record
as RFC 8428 §4.6 says (base name, time, unit and value carry forward until changed; a time
below 2**28 is relative to "now"); each resolved record then becomes a native measurement.

Names: the part of `bn + n` after the last ':' (so `urn:dev:vw:pox-1:spo2` → `spo2`), looked
up in `SENML_NAMES` (our codes, plus common spellings). When the full name starts with
`urn:dev:vw:` the id that follows must be the device of the topic.

Units: `SENML_UNITS` maps the SenML registry's spellings onto the catalogue's accepted units;
any unit not listed is passed through unchanged (so UCUM spellings work too).

Must never do I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from gateway.contract import SenMLRecord
from ward.domain.vitals import VitalCode

# RFC 8428 §4.5.3: a time value below 2**28 seconds (about 8.5 years) is relative to now.
RELATIVE_TIME_LIMIT = 2**28
DEVICE_URN_PREFIX = "urn:dev:vw:"

SENML_NAMES: Mapping[str, VitalCode] = MappingProxyType(
    {
        **{code.value: code for code in VitalCode},
        "SpO2": VitalCode.SPO2,
        "heart_rate": VitalCode.PULSE,
        "heartRate": VitalCode.PULSE,
        "hr": VitalCode.PULSE,
        "respiration_rate": VitalCode.RESP_RATE,
        "rr": VitalCode.RESP_RATE,
        "temp": VitalCode.TEMPERATURE,
        "body_temperature": VitalCode.TEMPERATURE,
        "sys": VitalCode.SYSTOLIC_BP,
        "systolic": VitalCode.SYSTOLIC_BP,
        "dia": VitalCode.DIASTOLIC_BP,
        "diastolic": VitalCode.DIASTOLIC_BP,
        "acvpu": VitalCode.CONSCIOUSNESS,
        "flow_rate": VitalCode.INFUSION_RATE,
    }
)

# SenML registry (RFC 8428 §12.1) spellings → catalogue spellings. "/" is a ratio (SpO2 as a
# fraction), "beat/min" and "1/min" are rates per minute, "l" is the SenML litre.
SENML_UNITS: Mapping[str, str] = MappingProxyType(
    {
        "beat/min": "/min",
        "1/min": "/min",
        "/": "1",
        "l": "L",
        "ml": "mL",
        "l/min": "L/min",
        "ml/h": "mL/h",
        "ml/min": "mL/min",
        "degF": "[degF]",
    }
)


@dataclass(frozen=True, slots=True)
class ResolvedRecord:
    index: int
    name: str
    code: str  # our catalogue code when the name is known, else the raw short name
    value: float | str
    unit: str
    measured_at: dt.datetime


@dataclass(frozen=True, slots=True)
class RecordProblem:
    index: int
    detail: str
    wrong_device: bool = False


def short_name(full_name: str) -> str:
    return full_name.rsplit(":", 1)[-1]


def code_for(full_name: str) -> str:
    short = short_name(full_name)
    code = SENML_NAMES.get(short)
    return code.value if code is not None else short


def unit_for(unit: str) -> str:
    return SENML_UNITS.get(unit, unit)


def _device_in_name(full_name: str) -> str | None:
    if not full_name.startswith(DEVICE_URN_PREFIX):
        return None
    rest = full_name[len(DEVICE_URN_PREFIX):]
    return rest.split(":", 1)[0]


def resolve(
    records: Sequence[SenMLRecord], device_id: str, now: dt.datetime
) -> list[ResolvedRecord | RecordProblem]:
    """Resolve a pack (base fields carried forward) into one result per record."""
    out: list[ResolvedRecord | RecordProblem] = []
    bn, bt, bu, bv = "", 0.0, "", 0.0
    for index, rec in enumerate(records):
        bn = rec.bn if rec.bn is not None else bn
        bt = float(rec.bt) if rec.bt is not None else bt
        bu = rec.bu if rec.bu is not None else bu
        bv = float(rec.bv) if rec.bv is not None else bv
        name = bn + (rec.n or "")
        if not name:
            out.append(RecordProblem(index, "record has no name (bn + n is empty)"))
            continue
        named = _device_in_name(name)
        if named is not None and named != device_id:
            out.append(RecordProblem(index, f"record names device {named!r}", wrong_device=True))
            continue
        given = [field for field in ("v", "vs", "vb") if getattr(rec, field) is not None]
        if len(given) != 1:
            out.append(RecordProblem(index, "a record needs exactly one of v, vs, vb"))
            continue
        value: float | str
        if rec.v is not None:
            value = bv + float(rec.v)
        elif rec.vs is not None:
            value = rec.vs
        else:
            value = 1.0 if rec.vb else 0.0
        seconds = bt + float(rec.t or 0)
        try:
            when = (
                now + dt.timedelta(seconds=seconds)
                if abs(seconds) < RELATIVE_TIME_LIMIT
                else dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
            )
        except (OverflowError, ValueError, OSError):
            out.append(RecordProblem(index, f"time {seconds!r} is out of range"))
            continue
        unit = unit_for(rec.u if rec.u is not None else bu)
        out.append(ResolvedRecord(index, name, code_for(name), value, unit, when))
    return out
