"""alerting.medians: one median, its tie rules named (pure)."""

from __future__ import annotations

import datetime as dt
import random
import statistics

import pytest

from alerting import artefacts, medians, rules, trend
from alerting.candidates import Evidence
from alerting.medians import Tie

T = dt.datetime(2026, 3, 29, 12, 0, tzinfo=dt.UTC)


def _window(values: list[float]) -> list[Evidence]:
    return [Evidence(T + dt.timedelta(minutes=i), "spo2", "wear", v) for i, v in enumerate(values)]


@pytest.mark.parametrize(("values", "lower", "upper", "midpoint"), [
    ([97.0], 97.0, 97.0, 97.0),
    ([97.0, 88.0, 96.0], 96.0, 96.0, 96.0),  # odd: one middle, every rule agrees
    ([97.0, 88.0, 87.0, 96.0], 88.0, 96.0, 92.0),  # even: two artefacts among four readings
    ([70.0, 71.0], 70.0, 71.0, 70.5),
])
def test_each_tie_rule_takes_its_middle(values: list[float], lower: float, upper: float,
                                        midpoint: float) -> None:
    assert medians.median_evidence(_window(values), Tie.LOWER).value == lower
    assert medians.median_evidence(_window(values), Tie.UPPER).value == upper
    assert medians.median_value(values, Tie.LOWER) == lower
    assert medians.median_value(values, Tie.UPPER) == upper
    assert medians.median_value(values, Tie.MIDPOINT) == midpoint


def test_midpoint_is_statistics_median_exactly() -> None:
    rng = random.Random(10)
    for n in range(1, 40):
        values = [round(rng.gauss(80, 12), 1) for _ in range(n)]
        assert medians.median_value(values) == statistics.median(values)


def test_the_middle_reading_does_not_depend_on_the_windows_order() -> None:
    window = _window([96.0, 96.0, 88.0, 97.0, 96.0, 88.0])
    for tie in (Tie.LOWER, Tie.UPPER):
        picked = medians.median_evidence(window, tie)
        assert medians.median_evidence(list(reversed(window)), tie) == picked
        assert picked in window  # a real reading: traceable evidence


def test_a_midpoint_is_not_one_reading_and_nothing_has_no_median() -> None:
    with pytest.raises(ValueError, match="not one reading"):
        medians.median_evidence(_window([1.0, 2.0]), Tie.MIDPOINT)
    with pytest.raises(ValueError, match="median of nothing"):
        medians.median_value([])


def test_the_callers_name_their_rules() -> None:
    # the 5-min filter: SpO2 (harmful low only) the upper middle, the rest the lower
    assert artefacts.tie_for("spo2") is Tie.UPPER
    assert artefacts.tie_for("pulse") is artefacts.tie_for("resp_rate") is Tie.LOWER
    even = _window([97.0, 88.0, 87.0, 96.0])
    assert artefacts.level_reading("spo2", even).value == 96.0
    assert medians.median_evidence(even, rules.SPO2_TARGET_TIE).value == 88.0  # 15-min target
    # the trend's level: the textbook median of the last 15 min
    recent = [Evidence(T - dt.timedelta(minutes=i), "pulse", "wear", float(70 + i % 4))
              for i in range(12)]
    found = trend.level("pulse", None, sorted(recent), T)
    assert found is not None
    assert found[0] == statistics.median(e.value for e in recent)
