"""Observations entered by hub staff on a patient's behalf, decided as pure functions.

Home kits rarely measure respiration rate or consciousness: a nurse on the phone does, and
some patients cannot use the kit at all (VIRTUAL_WARD.md). Those values must pass exactly the
checks a device reading passes — catalogue code, accepted unit with its conversion,
plausibility range, categorical label — so every check is `ward.domain.vitals`'s, not ours.
What this module adds is only what differs from a device:

* attribution: readings need a device; staff entries use one virtual device per patient
  (`staff_device_id`), kind home hub, registered and assigned on first use;
* traceability: the reading's `msg_id` names the person who entered it (`entry_msg_id`);
* time: `measured_at` is the time of the observation as the nurse states it, refused when
  ahead of the clock by more than the gateway's tolerance or before the admission began;
* a slot already holding a value: the same value again is a duplicate, another value or unit a
  conflict (`Clash`, `clashes`), described in plain words for the form (`clash_text`).

Every problem is reported at once, each naming its field (`loc`) and the offending value, so
a form can show them next to the fields. Must never do I/O or read a clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ward.domain.devices import DeviceKind
from ward.domain.errors import (
    ImplausibleValue,
    UnknownLabel,
    UnknownUnit,
    UnknownVitalCode,
    WrongValueType,
)
from ward.domain.readings import Reading
from ward.domain.vitals import display_name, display_unit, measure, spec_for

STAFF_DEVICE_KIND = DeviceKind.HOME_HUB
STAFF_DEVICE_MODEL = "staff entry"


@dataclass(frozen=True, slots=True)
class Observation:
    """One value as entered: a number (with its unit; the canonical one when omitted) or a
    categorical label ("C" for consciousness, "oxygen" for air or oxygen)."""

    code: str
    value: float | str
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """The gateway's clock limits (`ward.settings.Settings.gateway_*`), applied to staff too."""

    future_tolerance: dt.timedelta
    late_after: dt.timedelta


@dataclass(frozen=True, slots=True)
class FieldError:
    """One refused field: where it is in the request body, why, and what was sent."""

    loc: tuple[str | int, ...]
    msg: str
    type: str
    value: object


class EntryRejected(Exception):
    """The entry cannot be stored; `errors` is never empty."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors))
        self.errors = tuple(errors)


def staff_device_id(patient_id: int) -> str:
    """The virtual device staff entries for this patient are attributed to."""
    return f"staff-{patient_id}"


def entry_msg_id(username: str, entry_id: str) -> str:
    """`staff:<username>:<entry id>`: every reading of one entry, traceable to its person."""
    return f"staff:{username}:{entry_id}"


def _time_error(measured_at: dt.datetime, *, now: dt.datetime, admitted_at: dt.datetime,
                limits: Limits) -> FieldError | None:
    if measured_at > now + limits.future_tolerance:
        return FieldError(
            ("body", "measured_at"),
            f"measured_at {measured_at.isoformat()} is more than "
            f"{limits.future_tolerance.total_seconds():g} s in the future",
            "future_timestamp", measured_at.isoformat())
    if measured_at < admitted_at:
        return FieldError(
            ("body", "measured_at"),
            f"measured_at {measured_at.isoformat()} is before the admission began "
            f"({admitted_at.isoformat()})", "before_admission", measured_at.isoformat())
    return None


def _measure(index: int, item: Observation) -> tuple[str, float, str, float | None, str | None
                                                      ] | FieldError:
    """(code, canonical value, canonical unit, source value, source unit) or the error."""
    loc: tuple[str | int, ...] = ("body", "observations", index)
    try:
        # Staff may leave the unit out: the catalogue's canonical unit is meant.
        measured = measure(item.code, item.value, item.unit or spec_for(item.code).unit)
    except WrongValueType as exc:
        return FieldError((*loc, "value"), str(exc), "schema_invalid", item.value)
    except UnknownVitalCode as exc:
        return FieldError((*loc, "code"), str(exc), "unknown_code", item.code)
    except UnknownUnit as exc:
        return FieldError((*loc, "unit"), str(exc), "unknown_unit", item.unit)
    except UnknownLabel as exc:
        return FieldError((*loc, "value"), str(exc), "unknown_label", item.value)
    except ImplausibleValue as exc:
        return FieldError((*loc, "value"), str(exc), "implausible_value", item.value)
    return (measured.spec.code.value, measured.value, measured.spec.unit, measured.source_value,
            measured.source_unit)


def readings_for(
    patient_id: int,
    observations: Sequence[Observation],
    *,
    measured_at: dt.datetime,
    now: dt.datetime,
    admitted_at: dt.datetime,
    limits: Limits,
    msg_id: str,
) -> tuple[Reading, ...]:
    """The readings to store for one staff entry; `EntryRejected` listing every problem."""
    measured_at = measured_at.astimezone(dt.UTC)
    errors: list[FieldError] = []
    if not observations:
        errors.append(FieldError(("body", "observations"), "give at least one observation",
                                 "empty", []))
    time_error = _time_error(measured_at, now=now, admitted_at=admitted_at, limits=limits)
    if time_error is not None:
        errors.append(time_error)
    late = now - measured_at > limits.late_after
    device_id = staff_device_id(patient_id)
    readings: list[Reading] = []
    seen: set[str] = set()
    for index, item in enumerate(observations):
        result = _measure(index, item)
        if isinstance(result, FieldError):
            errors.append(result)
            continue
        code, value, unit, source_value, source_unit = result
        if code in seen:
            errors.append(FieldError(("body", "observations", index, "code"),
                                     f"{code} appears twice in one entry", "repeated_reading",
                                     item.code))
            continue
        seen.add(code)
        readings.append(Reading(device_id, code, measured_at, value, unit, patient_id, now,
                                msg_id, late, source_value, source_unit))
    if errors:
        raise EntryRejected(errors)
    return tuple(readings)


@dataclass(frozen=True, slots=True)
class Clash:
    """A reading of the entry whose slot (code, instant) is already stored: an exact duplicate
    (`stored_value` None) or a conflict (the stored value and unit differ from the sent one)."""

    reading: Reading
    stored_value: float | None = None
    stored_unit: str | None = None
    stored_msg_id: str | None = None

    @property
    def conflicting(self) -> bool:
        return self.stored_value is not None


def clashes(readings: Sequence[Reading], inserted: Sequence[bool],
            conflicts: Mapping[int, tuple[float, str, str | None]]) -> tuple[Clash, ...]:
    """The readings not inserted (aligned with `inserted`), each a duplicate or, when
    `conflicts` holds its position, a conflict with that stored (value, unit, msg_id)."""
    found: list[Clash] = []
    for index, (reading, new) in enumerate(zip(readings, inserted, strict=True)):
        if new:
            continue
        stored = conflicts.get(index)
        found.append(Clash(reading) if stored is None else Clash(reading, *stored))
    return tuple(found)


def entered_by(msg_id: str | None) -> str | None:
    """The username in a staff entry's `msg_id` (`entry_msg_id`); None for any other."""
    if msg_id is None or not msg_id.startswith("staff:"):
        return None
    username = msg_id.split(":", 2)[1]
    return username or None


def value_text(code: str, value: float, unit: str) -> str:
    """A stored value as people read it: "18 /min", "38.5 °C", "C" for a categorical code."""
    labels = spec_for(code).labels
    if labels and value.is_integer() and 0 <= int(value) < len(labels):
        return labels[int(value)]
    shown = display_unit(unit)
    return f"{value:g} {shown}" if shown else f"{value:g}"


def clash_text(clash: Clash, tz: dt.tzinfo) -> str:
    """The conflict in plain words, times in `tz` (the hub's display zone)."""
    r = clash.reading
    when = r.measured_at.astimezone(tz).strftime("%d %b %Y %H:%M:%S")
    name = display_name(r.code)
    if clash.stored_value is None:
        return f"{name} at {when} is already recorded with this value"
    stored = value_text(r.code, clash.stored_value, clash.stored_unit or "")
    by = entered_by(clash.stored_msg_id)
    return (f"{name} at {when} is already recorded as {stored}"
            f"{f' (entered by {by})' if by else ''}; you entered {_sent_text(r)}. "
            "Nothing was saved: check the value and the time")


def _sent_text(r: Reading) -> str:
    sent = value_text(r.code, r.value, r.unit)
    if r.source_value is None or r.source_unit is None:
        return sent
    return f"{value_text(r.code, r.source_value, r.source_unit)} ({sent})"
