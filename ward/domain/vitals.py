"""The vital-sign catalogue: codes, LOINC, UCUM units, accepted input units, plausibility.

Every reading that enters the platform is converted here to its canonical UCUM unit and checked
against a plausibility range. A value outside the range is not a vital sign but a device fault
(a finger out of the probe, a cuff error code sent as a number) and is rejected, never stored
as a measurement.

Codes and units: NEWS2.md (LOINC, UCUM) in shared/clinical. Conversions are exact
definitions: °F→°C is (F − 32) × 5/9; 1 kPa = 760/101.325 mm[Hg] (the standard atmosphere
defines both); a fraction is × 100 to percent; mL/min is × 60 to mL/h.

Plausibility ranges are deliberately wide — they reject the physically impossible, not the
clinically alarming. A pulse of 35 or an SpO2 of 70 % must reach the alerting core.

Must never do I/O.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ward.domain.errors import (
    ImplausibleValue,
    UnknownLabel,
    UnknownUnit,
    UnknownVitalCode,
    WrongValueType,
)


class VitalCode(enum.StrEnum):
    SPO2 = "spo2"
    PULSE = "pulse"
    RESP_RATE = "resp_rate"
    TEMPERATURE = "temperature"
    SYSTOLIC_BP = "systolic_bp"
    DIASTOLIC_BP = "diastolic_bp"
    # Air or oxygen: 0 = room air, 1 = supplemental oxygen (NEWS2 scores oxygen 2).
    ON_OXYGEN = "on_oxygen"
    O2_FLOW = "o2_flow"
    # ACVPU as an ordinal 0..4 = Alert, new Confusion, Voice, Pain, Unresponsive.
    CONSCIOUSNESS = "consciousness"
    INFUSION_VOLUME_INFUSED = "infusion_volume_infused"
    INFUSION_VOLUME_REMAINING = "infusion_volume_remaining"
    INFUSION_RATE = "infusion_rate"
    # Pump state as an ordinal, see PUMP_STATES.
    PUMP_STATE = "pump_state"
    # Optional, from oximeters that report it: pulsatile signal strength (the SpO2 behind a
    # very low index is unreliable; alerting.artefacts sets such a reading aside).
    PERFUSION_INDEX = "perfusion_index"


ACVPU = ("A", "C", "V", "P", "U")
PUMP_STATES = ("running", "paused", "occluded", "complete", "disconnected")
ON_OXYGEN_LABELS = ("air", "oxygen")

_KPA_TO_MMHG = 760.0 / 101.325


def _identity(value: float) -> float:
    return value


def _fahrenheit_to_celsius(value: float) -> float:
    return (value - 32.0) * 5.0 / 9.0


def _kpa_to_mmhg(value: float) -> float:
    return value * _KPA_TO_MMHG


def _fraction_to_percent(value: float) -> float:
    return value * 100.0


def _per_minute_to_per_hour(value: float) -> float:
    return value * 60.0


def _litres_to_millilitres(value: float) -> float:
    return value * 1000.0


Converter = Callable[[float], float]


@dataclass(frozen=True, slots=True)
class VitalSpec:
    """One entry of the catalogue."""

    code: VitalCode
    display: str
    unit: str  # canonical UCUM unit, the one stored
    loinc: str | None
    low: float  # plausible range, inclusive, in the canonical unit
    high: float
    # Accepted input units (UCUM and common device spellings) → conversion to `unit`.
    conversions: Mapping[str, Converter] = field(default_factory=dict)
    # For categorical measures: the labels of ordinal values 0..n-1.
    labels: tuple[str, ...] = ()

    @property
    def accepted_units(self) -> tuple[str, ...]:
        return tuple(self.conversions)

    @property
    def categorical(self) -> bool:
        return bool(self.labels)


def _units(unit: str, *aliases: str, **converted: Converter) -> Mapping[str, Converter]:
    table: dict[str, Converter] = {unit: _identity}
    table.update(dict.fromkeys(aliases, _identity))
    table.update(converted)
    return MappingProxyType(table)


CATALOGUE: Mapping[VitalCode, VitalSpec] = MappingProxyType(
    {
        spec.code: spec
        for spec in (
            VitalSpec(
                VitalCode.SPO2, "SpO2", "%", "59408-5", 40.0, 100.0,
                MappingProxyType({"%": _identity, "1": _fraction_to_percent}),
            ),
            VitalSpec(
                VitalCode.PULSE, "Pulse", "/min", "8867-4", 15.0, 300.0,
                _units("/min", "{beats}/min", "bpm"),
            ),
            VitalSpec(
                VitalCode.RESP_RATE, "Respiration rate", "/min", "9279-1", 2.0, 80.0,
                _units("/min", "{breaths}/min", "br/min"),
            ),
            VitalSpec(
                VitalCode.TEMPERATURE, "Temperature", "Cel", "8310-5", 25.0, 45.0,
                _units("Cel", "°C", **{"[degF]": _fahrenheit_to_celsius,
                                       "°F": _fahrenheit_to_celsius}),
            ),
            VitalSpec(
                VitalCode.SYSTOLIC_BP, "Systolic BP", "mm[Hg]", "8480-6", 40.0, 300.0,
                _units("mm[Hg]", "mmHg", kPa=_kpa_to_mmhg),
            ),
            VitalSpec(
                VitalCode.DIASTOLIC_BP, "Diastolic BP", "mm[Hg]", "8462-4", 15.0, 200.0,
                _units("mm[Hg]", "mmHg", kPa=_kpa_to_mmhg),
            ),
            VitalSpec(
                VitalCode.ON_OXYGEN, "Air or oxygen", "{air:0,oxygen:1}", None, 0.0, 1.0,
                _units("{air:0,oxygen:1}", "1"), labels=ON_OXYGEN_LABELS,
            ),
            VitalSpec(
                VitalCode.O2_FLOW, "Oxygen flow", "L/min", "3151-8", 0.0, 60.0,
                _units("L/min"),
            ),
            VitalSpec(
                # LOINC 61006-3 "Perfusion index Tissue by Pulse oximetry"; 0.02–20 % is the
                # range oximeters display.
                VitalCode.PERFUSION_INDEX, "Perfusion index", "%", "61006-3", 0.0, 20.0,
                _units("%"),
            ),
            VitalSpec(
                VitalCode.CONSCIOUSNESS, "Consciousness (ACVPU)", "{ACVPU}", None, 0.0, 4.0,
                _units("{ACVPU}", "1"), labels=ACVPU,
            ),
            VitalSpec(
                VitalCode.INFUSION_VOLUME_INFUSED, "Volume infused", "mL", None, 0.0, 5000.0,
                _units("mL", L=_litres_to_millilitres),
            ),
            VitalSpec(
                VitalCode.INFUSION_VOLUME_REMAINING, "Volume remaining", "mL", None,
                0.0, 5000.0, _units("mL", L=_litres_to_millilitres),
            ),
            VitalSpec(
                VitalCode.INFUSION_RATE, "Infusion flow rate", "mL/h", None, 0.0, 1000.0,
                _units("mL/h", **{"mL/min": _per_minute_to_per_hour}),
            ),
            VitalSpec(
                VitalCode.PUMP_STATE, "Pump state", "{state}", None, 0.0, 4.0,
                _units("{state}", "1"), labels=PUMP_STATES,
            ),
        )
    }
)


def spec_for(code: str) -> VitalSpec:
    """The catalogue entry for `code`; `UnknownVitalCode` if there is none."""
    try:
        return CATALOGUE[VitalCode(code)]
    except ValueError as exc:
        raise UnknownVitalCode(code) from exc


def label_value(spec: VitalSpec, label: str) -> float:
    """Ordinal of a categorical label ("V" → 2.0 for consciousness); case-insensitive."""
    wanted = label.strip().lower()
    for index, candidate in enumerate(spec.labels):
        if candidate.lower() == wanted:
            return float(index)
    raise UnknownLabel(spec.code, label, spec.labels)


@dataclass(frozen=True, slots=True)
class Measured:
    """One measurement as it will be stored: canonical value, and what was sent if converted."""

    spec: VitalSpec
    value: float  # in spec.unit, unrounded
    source_value: float | None  # the value as sent, when its unit was converted
    source_unit: str | None


def measure(code: str, value: float | str, unit: str) -> Measured:
    """Validate and convert one measurement as a device or a person sends it.

    A number comes with a unit (converted to the canonical one, checked for plausibility); a
    categorical code also takes its label ("V", "occluded") with an empty or canonical unit.
    Raises UnknownVitalCode, UnknownUnit, UnknownLabel, ImplausibleValue or WrongValueType:
    the one place the gateway and the hub's staff entry share these rules.
    """
    spec = spec_for(code)
    if isinstance(value, str):
        if not spec.categorical:
            raise WrongValueType(code, value)
        if unit and unit not in spec.conversions:
            raise UnknownUnit(code, unit, spec.accepted_units)
        return Measured(spec, label_value(spec, value), None, None)
    spec, converted = canonical_value(code, float(value), unit)
    if unit == spec.unit:
        return Measured(spec, converted, None, None)
    return Measured(spec, converted, float(value), unit)


def canonical_value(code: str, value: float, unit: str) -> tuple[VitalSpec, float]:
    """Convert `value` in `unit` to the canonical unit and check plausibility.

    Returns the spec and the converted value; raises `UnknownVitalCode`, `UnknownUnit` or
    `ImplausibleValue`. The value is not rounded: the raw measurement is what is stored.
    """
    spec = spec_for(code)
    converter = spec.conversions.get(unit)
    if converter is None:
        raise UnknownUnit(code, unit, spec.accepted_units)
    if not math.isfinite(value):
        raise ImplausibleValue(code, value, spec.low, spec.high, spec.unit)
    converted = converter(value)
    if not spec.low <= converted <= spec.high:
        raise ImplausibleValue(code, converted, spec.low, spec.high, spec.unit)
    if spec.categorical and converted != int(converted):
        raise ImplausibleValue(code, converted, spec.low, spec.high, spec.unit)
    return spec, converted


# -- display ---------------------------------------------------------------------------------
# UCUM is for machines (stored, FHIR); people read these. The one place a unit is turned into
# text for a screen, a chart or a report. UCUM annotations in braces ("{ACVPU}", "{state}")
# name a scale, not a unit: they show as nothing (the value's label says it all).
DISPLAY_UNITS: Mapping[str, str] = MappingProxyType({
    "Cel": "°C", "[degF]": "°F", "mm[Hg]": "mmHg", "kPa": "kPa", "/min": "/min", "%": "%",
    "L/min": "L/min", "mL/h": "mL/h", "mL": "mL", "L": "L",
})
# NEWS2 parameter names that are not vital codes (alerting.news2.Parameter), shown by the
# display name of the vital they are scored from.
_PARAMETER_VITALS: Mapping[str, VitalCode] = MappingProxyType({
    "air_or_oxygen": VitalCode.ON_OXYGEN,
})


def display_unit(unit: str | None) -> str:
    """A stored (UCUM) unit as people write it: "Cel" → "°C", "mm[Hg]" → "mmHg"."""
    if not unit or unit.startswith("{"):
        return ""
    return DISPLAY_UNITS.get(unit, unit)


# Codes that are identifiers rather than English words ("resp_rate", "spo2", not "pulse"):
# safe to replace inside free text such as a stored alert summary.
_IDENTIFIER_CODES = re.compile(r"\b(" + "|".join(sorted(
    (c for c in [*(v.value for v in VitalCode), *_PARAMETER_VITALS] if not c.isalpha()),
    key=len, reverse=True)) + r")\b")


def display_text(text: str) -> str:
    """Free text (an alert summary) with vital codes written as display names."""
    return _IDENTIFIER_CODES.sub(lambda m: display_name(m.group(1)), text)


def display_name(code: str) -> str:
    """The catalogue's display name of a vital code or NEWS2 parameter ("spo2" → "SpO2");
    an unknown code is shown as itself with underscores as spaces."""
    vital = _PARAMETER_VITALS.get(code)
    if vital is None:
        try:
            vital = VitalCode(code)
        except ValueError:
            return code.replace("_", " ")
    return CATALOGUE[vital].display
