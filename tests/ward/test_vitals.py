"""The vital-sign catalogue: conversions, plausibility, unknown codes and units."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ward.domain.errors import ImplausibleValue, UnknownLabel, UnknownUnit, UnknownVitalCode
from ward.domain.vitals import CATALOGUE, VitalCode, canonical_value, label_value, spec_for


@pytest.mark.parametrize(
    ("code", "value", "unit", "expected"),
    [
        ("temperature", 98.6, "[degF]", 37.0),
        ("temperature", 100.4, "°F", 38.0),
        ("temperature", 37.2, "Cel", 37.2),
        ("systolic_bp", 16.0, "kPa", 120.0099),  # 16 kPa × 760/101.325
        ("diastolic_bp", 80, "mmHg", 80.0),
        ("spo2", 0.94, "1", 94.0),
        ("spo2", 94, "%", 94.0),
        ("pulse", 72, "bpm", 72.0),
        ("infusion_rate", 1.0, "mL/min", 60.0),
        ("infusion_volume_remaining", 0.25, "L", 250.0),
    ],
)
def test_conversion_to_canonical_unit(code: str, value: float, unit: str, expected: float) -> None:
    _, converted = canonical_value(code, value, unit)
    assert converted == pytest.approx(expected, abs=1e-3)


def test_kpa_conversion_is_exact_definition() -> None:
    # One standard atmosphere is 101.325 kPa = 760 mmHg by definition; a fortieth of it:
    _, converted = canonical_value("systolic_bp", 101.325 / 4, "kPa")
    assert converted == pytest.approx(190.0, rel=1e-12)


@pytest.mark.parametrize(
    ("code", "value", "unit"),
    [
        ("spo2", 101, "%"),
        ("spo2", 39.9, "%"),
        ("pulse", 0, "/min"),
        ("pulse", 301, "/min"),
        ("temperature", 140, "[degF]"),  # 60 °C
        ("temperature", 20, "Cel"),
        ("systolic_bp", 400, "mm[Hg]"),
        ("resp_rate", -1, "/min"),
        ("consciousness", 5, "{ACVPU}"),
        ("consciousness", 1.5, "{ACVPU}"),
        ("spo2", math.nan, "%"),
        ("pulse", math.inf, "/min"),
    ],
)
def test_implausible_values_are_rejected(code: str, value: float, unit: str) -> None:
    with pytest.raises(ImplausibleValue) as info:
        canonical_value(code, value, unit)
    assert code in str(info.value)


def test_boundaries_of_plausibility_are_inclusive() -> None:
    spec = spec_for("spo2")
    assert canonical_value("spo2", spec.low, "%")[1] == spec.low
    assert canonical_value("spo2", spec.high, "%")[1] == spec.high


def test_unknown_code_names_the_code() -> None:
    with pytest.raises(UnknownVitalCode, match="'glucose'"):
        canonical_value("glucose", 5.5, "mmol/L")


def test_unknown_unit_names_unit_and_accepted_units() -> None:
    with pytest.raises(UnknownUnit) as info:
        canonical_value("temperature", 37, "K")
    message = str(info.value)
    assert "'K'" in message
    assert "Cel" in message
    assert "[degF]" in message


def test_every_spec_accepts_its_own_canonical_unit() -> None:
    for code, spec in CATALOGUE.items():
        assert spec.code is code
        assert spec.unit in spec.conversions
        assert spec.low < spec.high


def test_loinc_codes_match_the_chart() -> None:
    expected = {
        VitalCode.SPO2: "59408-5",
        VitalCode.PULSE: "8867-4",
        VitalCode.RESP_RATE: "9279-1",
        VitalCode.TEMPERATURE: "8310-5",
        VitalCode.SYSTOLIC_BP: "8480-6",
        VitalCode.DIASTOLIC_BP: "8462-4",
        VitalCode.O2_FLOW: "3151-8",
    }
    for code, loinc in expected.items():
        assert CATALOGUE[code].loinc == loinc


def test_categorical_labels() -> None:
    assert label_value(spec_for("consciousness"), "v") == 2.0
    assert label_value(spec_for("pump_state"), "occluded") == 2.0
    with pytest.raises(UnknownLabel, match="'X'"):
        label_value(spec_for("consciousness"), "X")


@given(st.floats(min_value=-100, max_value=300, allow_nan=False))
def test_fahrenheit_round_trip(celsius: float) -> None:
    fahrenheit = celsius * 9 / 5 + 32
    try:
        _, converted = canonical_value("temperature", fahrenheit, "[degF]")
    except ImplausibleValue:
        assert not 25.0 <= celsius <= 45.0 or math.isclose(celsius, 25) or math.isclose(celsius, 45)
        return
    assert converted == pytest.approx(celsius, abs=1e-9)


def test_measure_numbers_labels_and_sources() -> None:
    from ward.domain.errors import WrongValueType
    from ward.domain.vitals import measure

    converted = measure("temperature", 100.4, "[degF]")
    assert converted.value == pytest.approx(38.0)
    assert (converted.source_value, converted.source_unit) == (100.4, "[degF]")
    assert measure("spo2", 95, "%").source_unit is None
    assert measure("consciousness", "C", "").value == 1.0
    assert measure("pump_state", "occluded", "{state}").value == 2.0
    with pytest.raises(WrongValueType, match="spo2 takes a number"):
        measure("spo2", "high", "%")
    with pytest.raises(UnknownUnit):
        measure("consciousness", "A", "mmHg")
    with pytest.raises(UnknownLabel):
        measure("consciousness", "Q", "")
