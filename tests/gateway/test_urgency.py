"""gateway.urgency: the pre-screen that marks a queued patient urgent."""

from __future__ import annotations

import datetime as dt

import pytest

from alerting.news2 import score
from alerting.observations import NEWS2_CODES, Latest, build
from gateway.urgency import RED, could_alert, sub_score


@pytest.mark.parametrize(("code", "value", "urgent"), [
    ("systolic_bp", 124.0, False), ("systolic_bp", 85.0, True), ("systolic_bp", 110.0, True),
    ("pulse", 72.0, False), ("pulse", 131.0, True), ("resp_rate", 16.0, False),
    ("resp_rate", 25.0, True), ("temperature", 36.8, False), ("temperature", 39.2, True),
    ("spo2", 97.0, False), ("spo2", 95.0, True), ("spo2", 88.0, True),
    ("weight", 80.0, False), ("pulse", float("nan"), True),
])
def test_a_reading_is_urgent_when_it_scores_on_news2(code: str, value: float,
                                                      urgent: bool) -> None:
    assert could_alert(code, value) is urgent


def test_a_red_reading_scores_3() -> None:
    assert sub_score("systolic_bp", 85.0) == RED
    assert sub_score("temperature", 35.8) == 1
    assert sub_score("spo2", 97.0) == 0


@pytest.mark.parametrize(("code", "value", "points"), [
    ("consciousness", 0.0, 0),  # Alert
    ("consciousness", 1.0, RED),  # new Confusion scores 3 like V, P and U (RCP Chart 1)
    ("consciousness", 2.0, RED), ("consciousness", 3.0, RED), ("consciousness", 4.0, RED),
    ("consciousness", 9.0, RED),  # an ordinal the scorer refuses: look at once
    ("on_oxygen", 0.0, 0),  # room air
    ("on_oxygen", 1.0, 2),  # supplemental oxygen: its own parameter, 2 points, never a 3
    ("o2_flow", 2.0, 0),  # not a NEWS2 input to the evaluator (it reads on_oxygen)
])
def test_consciousness_and_oxygen_are_scored_as_news2_scores_them(
        code: str, value: float, points: int) -> None:
    assert sub_score(code, value) == points


def _evaluator_points(code: str, value: float) -> int:
    """What the evaluator's own path (observations.build, then news2.score) gives the
    reading's parameter; for SpO2 the highest of the scales the gateway may assume."""
    now = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)
    latest = {code: Latest(code, now, value, "dev")}
    scales = (1, 2) if code == "spo2" else (1,)
    return max(sum(score(build(latest, now, spo2_scale=s).observations).sub_scores.values())
               for s in scales)


_GRID = {
    "resp_rate": [n / 2 for n in range(0, 80)],
    "spo2": [n / 2 for n in range(140, 201)],
    "systolic_bp": [float(n) for n in range(60, 260, 3)],
    "pulse": [float(n) for n in range(20, 180, 3)],
    "temperature": [33.0 + n / 20 for n in range(0, 160)],
    "consciousness": [0.0, 1.0, 2.0, 3.0, 4.0],
    "on_oxygen": [0.0, 1.0],
}


def test_the_pre_screen_is_the_evaluators_rule_for_every_news2_parameter() -> None:
    # one rule, not two: every code NEWS2 is computed from, value by value
    assert set(_GRID) == {c.value for c in NEWS2_CODES}
    for code, values in _GRID.items():
        for value in values:
            assert sub_score(code, value) == _evaluator_points(code, value), (code, value)


def test_a_score_is_remembered_and_the_same_as_scoring_again() -> None:
    """The gateway scores every new reading of a batch; readings repeat a few values per code,
    so an answer is remembered (issue 14) — and it is the answer scoring gives."""
    sub_score.cache_clear()
    first = [sub_score(code, value) for code, value in
             (("spo2", 91.0), ("pulse", 131.0), ("spo2", 91.0), ("pulse", 131.0))]
    assert sub_score.cache_info().hits == 2
    assert first == [sub_score.__wrapped__(c, v) for c, v in
                     (("spo2", 91.0), ("pulse", 131.0), ("spo2", 91.0), ("pulse", 131.0))]
    assert first[:2] == [3, 3]  # SpO2 91 % on scale 1, pulse 131/min: red
