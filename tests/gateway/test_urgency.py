"""gateway.urgency: the pre-screen that marks a queued patient urgent."""

from __future__ import annotations

import pytest

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
