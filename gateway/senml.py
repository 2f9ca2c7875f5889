"""SenML (RFC 8428, JSON) onto the vital-sign catalogue: names, units, base fields, times.

Many off-the-shelf medical and IoT devices speak SenML. A pack is resolved record by record
as RFC 8428 §4.6 says (base name, time, unit and value carry forward until changed; a time
below 2**28 is relative to "now"); each resolved record then becomes a native measurement.

RFC 8428 §4 as followed here (`pack_problem` and `resolve`):
- `bver` is a positive integer, 10 when absent (§4.1); a pack naming a newer version, or two
  different versions, is not used (§4.4) — the whole pack is refused;
- an unknown field is ignored, unless its label ends with `_` (must understand): then the
  whole pack is refused (§4.4);
- a name (`bn + n`) is non-empty, starts with a letter or digit and holds only
  `A-Z a-z 0-9 - : . / _` (§4.5.1);
- exactly one value field per record (§4.2): `v` (plus `bv`), `vs`, or `vb`; `vd` (data) and
  a lone `s` (sum) are valid SenML but no vital sign, so such a record is refused by index;
- `vb` is a boolean reading: only for boolean codes (`on_oxygen`: true = oxygen, false = air,
  no unit needed); `vb` on a numeric code is refused, never stored as 1 or 0;
- a time (`bt + t`) of 2**28 or more is absolute (seconds since 1970, UTC); below it, it is
  relative to "now" (§4.5.3). "Now" is a parameter (`relative_to`): the gateway passes the
  time it *first* saw these exact bytes, so a redelivery resolves to the same instants.

Names: the part of `bn + n` after the last ':' (so `urn:dev:vw:pox-1:spo2` → `spo2`), looked
up in `SENML_NAMES` (our codes, plus common spellings). When the full name starts with
`urn:dev:vw:` the id that follows must be the device of the topic.

Units: `SENML_UNITS` maps the SenML registry's spellings onto the catalogue's accepted units;
any unit not listed is passed through unchanged (so UCUM spellings work too).

Must never do I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from gateway.contract import SENML_VERSION, SenMLRecord
from ward.domain.vitals import ON_OXYGEN_LABELS, VitalCode

# RFC 8428 §4.5.3: a time value below 2**28 seconds (about 8.5 years) is relative to now.
RELATIVE_TIME_LIMIT = 2**28
DEVICE_URN_PREFIX = "urn:dev:vw:"
# RFC 8428 §4.5.1: the characters a resolved name may hold, and how it must start.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*")
# Codes a SenML boolean value (`vb`) can carry, and the label each truth value means.
BOOLEAN_LABELS: Mapping[str, tuple[str, str]] = MappingProxyType({
    VitalCode.ON_OXYGEN.value: (ON_OXYGEN_LABELS[0], ON_OXYGEN_LABELS[1]),  # (false, true)
})

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
    relative: bool = False  # its time was relative to "now" (RFC 8428 §4.5.3)


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


def pack_problem(records: Sequence[SenMLRecord]) -> str | None:
    """Why the whole pack must not be used (RFC 8428 §4.4), or None."""
    versions = {SENML_VERSION if r.bver is None else r.bver for r in records}
    for version in sorted(versions):
        if version < 1:
            return f"bver {version} is not a positive integer (RFC 8428 §4.1)"
        if version > SENML_VERSION:
            return (f"SenML version {version} is newer than {SENML_VERSION}, the version "
                    "understood here (RFC 8428 §4.4)")
    if len(versions) > 1:
        return (f"records carry different versions {sorted(versions)}: all records of a pack "
                "must have the same version (RFC 8428 §4.4)")
    for index, record in enumerate(records):
        must_understand = sorted(k for k in (record.model_extra or {}) if k.endswith("_"))
        if must_understand:
            return (f"record {index} has must-understand field(s) {must_understand} this "
                    "gateway does not understand (RFC 8428 §4.4)")
    return None


def _value_of(rec: SenMLRecord, bv: float, code: str) -> tuple[float | str | None, str]:
    """The record's value (a number or a label), or None and why it has no usable one."""
    given = [field for field in ("v", "vs", "vb", "vd") if getattr(rec, field) is not None]
    if len(given) != 1:
        if not given and rec.s is not None:
            return None, "a sum (s) without a value is not a vital-sign reading"
        return None, "a record needs exactly one of v, vs, vb (RFC 8428 §4.2)"
    if rec.v is not None:
        return bv + float(rec.v), ""
    if rec.vs is not None:
        return rec.vs, ""
    if rec.vd is not None:
        return None, "a data value (vd) is not a vital-sign reading"
    labels = BOOLEAN_LABELS.get(code)
    if labels is None:
        return None, (f"a boolean value (vb) is only accepted for {sorted(BOOLEAN_LABELS)}, "
                      f"not {code!r}")
    return labels[1 if rec.vb else 0], ""


def resolve(
    records: Sequence[SenMLRecord], device_id: str, relative_to: dt.datetime
) -> list[ResolvedRecord | RecordProblem]:
    """Resolve a pack (base fields carried forward) into one result per record.

    `relative_to` is what a relative time counts from (the RFC's "now").
    """
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
        if not NAME_PATTERN.fullmatch(name):
            out.append(RecordProblem(index, f"name {name[:80]!r} is not a SenML name: letters, "
                                     "digits and - : . / _ only, starting with a letter or "
                                     "digit (RFC 8428 §4.5.1)"))
            continue
        named = _device_in_name(name)
        if named is not None and named != device_id:
            out.append(RecordProblem(index, f"record names device {named!r}", wrong_device=True))
            continue
        code = code_for(name)
        value, why = _value_of(rec, bv, code)
        if value is None:
            out.append(RecordProblem(index, why))
            continue
        seconds = bt + float(rec.t or 0)
        relative = abs(seconds) < RELATIVE_TIME_LIMIT
        try:
            when = (
                relative_to + dt.timedelta(seconds=seconds)
                if relative
                else dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
            )
        except (OverflowError, ValueError, OSError):
            out.append(RecordProblem(index, f"time {seconds!r} is out of range"))
            continue
        unit = unit_for(rec.u if rec.u is not None else bu)
        out.append(ResolvedRecord(index, name, code, value, unit, when, relative))
    return out
