"""Scalar NEWS2 scorer: every Chart 1 boundary, Charts 2 and 4, quantisation, partial scores."""

from __future__ import annotations

import datetime
import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.news2 import (
    BANDS,
    RESOLUTION,
    SPO2_BANDS,
    Bands,
    Consciousness,
    News2Error,
    News2Score,
    ObservationError,
    Observations,
    Parameter,
    Risk,
    quantise,
    risk_of,
    score,
)

#: A patient scoring 0 on every parameter.
NORMAL: dict[str, Any] = {
    "resp_rate": 16,
    "spo2": 98,
    "on_oxygen": False,
    "systolic_bp": 120,
    "pulse": 70,
    "consciousness": Consciousness.A,
    "temperature": 37.0,
}
RISK_ORDER = (Risk.LOW, Risk.LOW_MEDIUM, Risk.MEDIUM, Risk.HIGH)
#: Observations field holding each parameter.
_FIELD_OF = {p: p.value for p in Parameter} | {Parameter.AIR_OR_OXYGEN: "on_oxygen"}


def normal_with(**changes: Any) -> News2Score:
    return score(Observations(**(NORMAL | changes)))


def sub_score(parameter: Parameter, value: Any, **extra: Any) -> int:
    result = score(Observations(**{_FIELD_OF[parameter]: value}, **extra))
    return result.sub_scores[parameter]


# --- Chart 1: every band boundary --------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameter", "value", "points"),
    [
        *[(Parameter.RESP_RATE, v, p) for v, p in
          [(8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3)]],
        *[(Parameter.SYSTOLIC_BP, v, p) for v, p in
          [(90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3)]],
        *[(Parameter.PULSE, v, p) for v, p in
          [(40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2),
           (130, 2), (131, 3)]],
        *[(Parameter.TEMPERATURE, v, p) for v, p in
          [(35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1),
           (39.1, 2)]],
    ],
)  # fmt: skip
def test_single_row_boundaries(parameter: Parameter, value: float, points: int) -> None:
    assert sub_score(parameter, value) == points
    assert sub_score(parameter, Decimal(str(value))) == points


@pytest.mark.parametrize("on_oxygen", [False, True, None])
@pytest.mark.parametrize(
    ("spo2", "points"), [(91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
)
def test_spo2_scale_1_ignores_oxygen(spo2: int, points: int, on_oxygen: bool | None) -> None:
    assert sub_score(Parameter.SPO2, spo2, on_oxygen=on_oxygen) == points


@pytest.mark.parametrize(
    ("spo2", "on_air", "on_oxygen"),
    [
        (83, 3, 3), (84, 2, 2), (85, 2, 2), (86, 1, 1), (87, 1, 1), (88, 0, 0), (92, 0, 0),
        (93, 0, 1), (94, 0, 1), (95, 0, 2), (96, 0, 2), (97, 0, 3), (100, 0, 3),
    ],
)  # fmt: skip
def test_spo2_scale_2_boundaries(spo2: int, on_air: int, on_oxygen: int) -> None:
    assert sub_score(Parameter.SPO2, spo2, on_oxygen=False, spo2_scale=2) == on_air
    assert sub_score(Parameter.SPO2, spo2, on_oxygen=True, spo2_scale=2) == on_oxygen


@pytest.mark.parametrize(("on_oxygen", "points"), [(False, 0), (True, 2)])
def test_air_or_oxygen_is_its_own_parameter(on_oxygen: bool, points: int) -> None:
    assert sub_score(Parameter.AIR_OR_OXYGEN, on_oxygen) == points


@pytest.mark.parametrize(
    ("level", "points"),
    [(Consciousness.A, 0), (Consciousness.C, 3), (Consciousness.V, 3), (Consciousness.P, 3),
     (Consciousness.U, 3)],
)  # fmt: skip
def test_acvpu(level: Consciousness, points: int) -> None:
    assert sub_score(Parameter.CONSCIOUSNESS, level) == points


@pytest.mark.parametrize(
    "bands", [*BANDS.values(), *SPO2_BANDS.values()], ids=lambda b: f"{len(b)}-bands"
)
def test_band_tables_are_contiguous_and_open_ended(bands: Bands) -> None:
    step = RESOLUTION[Parameter.SPO2 if bands in SPO2_BANDS.values() else _owner(bands)]
    assert bands[0].low is None
    assert bands[-1].high is None
    for below, above in itertools.pairwise(bands):
        assert below.high is not None
        assert above.low == below.high + step


def _owner(bands: Bands) -> Parameter:
    return next(p for p, b in BANDS.items() if b is bands)


# --- Worked examples in NEWS2.md ---------------------------------------------------------------


def test_spo2_94_on_oxygen_scale_1_is_three_points_but_no_single_3() -> None:
    result = normal_with(spo2=94, on_oxygen=True)
    assert result.sub_scores[Parameter.SPO2] == 1
    assert result.sub_scores[Parameter.AIR_OR_OXYGEN] == 2
    assert result.total == 3
    assert not result.any_single_3
    assert result.risk is Risk.LOW


def test_scale_2_spo2_97_on_oxygen_is_five() -> None:
    result = normal_with(spo2=97, on_oxygen=True, spo2_scale=2)
    assert result.total == 5
    assert result.any_single_3
    assert result.risk is Risk.MEDIUM
    assert result.spo2_scale == 2


# --- Quantisation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameter", "raw", "quantised", "points"),
    [
        (Parameter.TEMPERATURE, 38.05, "38.1", 1),
        (Parameter.TEMPERATURE, Decimal("38.05"), "38.1", 1),
        (Parameter.TEMPERATURE, 38.049, "38.0", 0),
        (Parameter.TEMPERATURE, 35.05, "35.1", 1),
        (Parameter.TEMPERATURE, 35.04, "35.0", 3),
        (Parameter.TEMPERATURE, 39.05, "39.1", 2),
        (Parameter.RESP_RATE, 20.5, "21", 2),
        (Parameter.RESP_RATE, 20.4, "20", 0),
        (Parameter.RESP_RATE, 8.5, "9", 1),
        (Parameter.SYSTOLIC_BP, 219.5, "220", 3),
        (Parameter.PULSE, 130.49, "130", 2),
        (Parameter.SPO2, 95.5, "96", 0),
        (Parameter.SPO2, 2, "2", 3),
    ],
)
def test_quantise_half_up_on_the_decimal_value(
    parameter: Parameter, raw: float | Decimal, quantised: str, points: int
) -> None:
    assert quantise(parameter, raw) == Decimal(quantised)
    fields: dict[str, Any] = {parameter.value: raw}
    result = score(Observations(**fields))
    assert result.quantised[parameter] == Decimal(quantised)
    assert result.sub_scores[parameter] == points


def test_quantise_rounds_halves_away_from_zero_and_survives_huge_values() -> None:
    assert quantise(Parameter.RESP_RATE, -20.5) == Decimal(-21)
    assert quantise(Parameter.PULSE, 1e300) == Decimal("1e300")


@pytest.mark.parametrize("parameter", [Parameter.AIR_OR_OXYGEN, Parameter.CONSCIOUSNESS])
def test_quantise_refuses_non_numeric_parameters(parameter: Parameter) -> None:
    with pytest.raises(News2Error, match=parameter.value):
        quantise(parameter, 1)


# --- Chart 2 and Chart 4 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "single_3", "risk"),
    [
        (0, False, Risk.LOW), (4, False, Risk.LOW), (3, True, Risk.LOW_MEDIUM),
        (4, True, Risk.LOW_MEDIUM), (5, False, Risk.MEDIUM), (6, True, Risk.MEDIUM),
        (7, False, Risk.HIGH), (7, True, Risk.HIGH), (20, True, Risk.HIGH),
    ],
)  # fmt: skip
def test_risk_is_evaluated_in_chart_2_order(total: int, single_3: bool, risk: Risk) -> None:
    assert risk_of(total, any_single_3=single_3) is risk


LOW_4_6 = ("4–6-hourly", 4, "ward-based response")
LOW_MEDIUM_1 = ("1-hourly", 1, "urgent ward-based response")
MEDIUM_1 = ("1-hourly", 1, "key threshold for urgent response")


@pytest.mark.parametrize(
    ("changes", "chart_2", "chart_4"),
    [
        ({}, (0, Risk.LOW, False), ("12-hourly", 12, "ward-based response")),
        ({"pulse": 95}, (1, Risk.LOW, False), LOW_4_6),
        ({"pulse": 95, "resp_rate": 22, "temperature": 38.5}, (4, Risk.LOW, False), LOW_4_6),
        ({"consciousness": Consciousness.C}, (3, Risk.LOW_MEDIUM, True), LOW_MEDIUM_1),
        ({"resp_rate": 25, "pulse": 95}, (4, Risk.LOW_MEDIUM, True), LOW_MEDIUM_1),
        ({"resp_rate": 22, "pulse": 115, "temperature": 38.5}, (5, Risk.MEDIUM, False), MEDIUM_1),
        ({"resp_rate": 25, "pulse": 115, "temperature": 38.5}, (6, Risk.MEDIUM, True), MEDIUM_1),
        ({"resp_rate": 25, "pulse": 115, "temperature": 39.5}, (7, Risk.HIGH, True),
         ("continuous", None, "emergency response")),
    ],
)  # fmt: skip
def test_chart_2_risk_and_chart_4_monitoring(
    changes: dict[str, Any],
    chart_2: tuple[int, Risk, bool],
    chart_4: tuple[str, int | None, str],
) -> None:
    result = normal_with(**changes)
    assert (result.total, result.risk, result.any_single_3) == chart_2
    frequency, hours, response = chart_4
    assert result.monitoring_frequency == frequency
    assert result.monitoring_interval == (
        None if hours is None else datetime.timedelta(hours=hours)
    )
    assert result.response == response
    assert result.complete


def test_single_3_flag_stays_visible_at_high() -> None:
    result = normal_with(consciousness=Consciousness.U, resp_rate=22, pulse=115)
    assert result.risk is Risk.HIGH
    assert result.any_single_3


# --- Partial scores ----------------------------------------------------------------------------


@pytest.mark.parametrize("parameter", list(Parameter))
def test_missing_parameter_is_reported_never_normal(parameter: Parameter) -> None:
    result = normal_with(**{_FIELD_OF[parameter]: None})
    assert result.missing == {parameter}
    assert parameter not in result.sub_scores
    assert not result.complete
    assert result.total == 0


def test_nothing_measured_is_empty_partial_score() -> None:
    result = score(Observations())
    assert result.missing == frozenset(Parameter)
    assert (result.total, result.complete, result.risk) == (0, False, Risk.LOW)


def test_partial_total_still_triggers() -> None:
    result = score(Observations(resp_rate=26, pulse=135, systolic_bp=85))
    assert result.risk is Risk.HIGH
    assert not result.complete


@pytest.mark.parametrize(("spo2", "points"), [(83, 3), (85, 2), (87, 1), (92, 0), (97, 0)])
def test_scale_2_with_unknown_oxygen_scores_lowest_consistent_value(spo2: int, points: int) -> None:
    result = normal_with(spo2=spo2, on_oxygen=None, spo2_scale=2)
    assert result.sub_scores[Parameter.SPO2] == points
    assert result.missing == {Parameter.AIR_OR_OXYGEN}
    assert not result.complete


# --- Validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"spo2_scale": 3}, "3"),
        ({"spo2_scale": True}, "True"),
        ({"pulse": float("nan")}, "nan"),
        ({"temperature": Decimal("Infinity")}, "Infinity"),
        ({"resp_rate": True}, "True"),
        ({"systolic_bp": "120"}, "'120'"),
        ({"on_oxygen": 1}, "1"),
        ({"consciousness": "A"}, "'A'"),
    ],
)
def test_observations_validate_and_name_the_bad_value(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(ObservationError, match=named):
        Observations(**changes)


# --- Properties --------------------------------------------------------------------------------


def readings(low: int, high: int) -> st.SearchStrategy[float | int | Decimal | None]:
    """Whole numbers, halves, hundredths (e.g. 38.05), arbitrary floats, decimals, or missing."""
    return st.one_of(
        st.none(),
        st.integers(low, high),
        st.integers(low * 2, high * 2).map(lambda i: i / 2),
        st.integers(low * 100, high * 100).map(lambda i: i / 100),
        st.floats(low, high),
        st.decimals(low, high, places=3),
    )


observations = st.builds(
    Observations,
    resp_rate=readings(0, 60),
    spo2=readings(50, 100),
    on_oxygen=st.none() | st.booleans(),
    systolic_bp=readings(40, 260),
    pulse=readings(20, 200),
    consciousness=st.none() | st.sampled_from(Consciousness),
    temperature=readings(30, 44),
    spo2_scale=st.sampled_from([1, 2]),
)


@given(observations)
def test_sub_scores_sum_to_total_within_chart_range(obs: Observations) -> None:
    result = score(obs)
    assert result.total == sum(result.sub_scores.values())
    assert 0 <= result.total <= 20
    assert set(result.sub_scores) | result.missing == set(Parameter)
    assert not set(result.sub_scores) & result.missing
    assert result.complete == (not result.missing)
    assert result.risk is risk_of(result.total, any_single_3=result.any_single_3)


@given(observations, st.sets(st.sampled_from(list(_FIELD_OF.values()))))
def test_adding_a_missing_parameter_never_lowers_total_or_risk(
    obs: Observations, dropped: set[str]
) -> None:
    fuller = score(obs)
    partial = score(Observations(**{**vars(obs), **dict.fromkeys(dropped)}))
    assert partial.total <= fuller.total
    assert RISK_ORDER.index(partial.risk) <= RISK_ORDER.index(fuller.risk)
    assert partial.missing >= fuller.missing
