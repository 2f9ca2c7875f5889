"""The risk tier: each factor's points from the one weights table, and the tier cut-offs."""

from __future__ import annotations

import datetime as dt

from alerting import risk_tier
from alerting.risk_tier import RiskInputs, ScorePoint, Tier

NOW = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)


def _series(totals_by_hours_ago: dict[int, int], complete: bool = True) -> list[ScorePoint]:
    return [ScorePoint(NOW - dt.timedelta(hours=h), t, complete)
            for h, t in totals_by_hours_ago.items()]


def _contrib(a: risk_tier.Assessment) -> dict[str, int]:
    return {c.factor: c.points for c in a.contributions}


def test_a_steady_patient_is_low_and_every_factor_is_listed() -> None:
    scores = _series(dict.fromkeys(range(0, 72, 4), 1))
    a = risk_tier.assess(RiskInputs(scores, expected_sets_24h=6, lace=3, hospital=2,
                                    step_up=False), NOW)
    assert a.tier is Tier.LOW
    assert a.points == 0
    assert [c.factor for c in a.contributions] == list(risk_tier.WEIGHTS)


def test_news2_high_band_alone_is_high_tier() -> None:
    a = risk_tier.assess(RiskInputs(_series({0: 7}), expected_sets_24h=0), NOW)
    assert a.tier is Tier.HIGH
    assert _contrib(a)["news2_now"] == 6


def test_trajectory_compares_last_24h_with_the_48h_before() -> None:
    scores = _series({h: (3 if h < 24 else 1) for h in range(0, 72, 4)})
    a = risk_tier.assess(RiskInputs(scores, expected_sets_24h=6), NOW)
    c = {x.factor: x for x in a.contributions}
    assert c["trajectory"].value == 2.0
    assert c["trajectory"].points == 3
    assert c["baseline"].value == 2.0
    assert c["baseline"].points == 2
    assert a.tier is Tier.HIGH  # 1 (NEWS2 3) + 3 + 2


def test_scores_after_now_are_ignored() -> None:
    scores = [*_series({5: 1}), ScorePoint(NOW + dt.timedelta(hours=1), 9)]
    a = risk_tier.assess(RiskInputs(scores, expected_sets_24h=0), NOW)
    assert _contrib(a)["news2_now"] == 0


def test_missed_and_partial_sets_are_a_risk_signal() -> None:
    full = risk_tier.assess(RiskInputs(_series(dict.fromkeys(range(0, 24, 4), 0)), 6), NOW)
    assert _contrib(full)["completeness"] == 0
    half = risk_tier.assess(RiskInputs(_series({0: 0, 8: 0, 16: 0}), 6), NOW)
    assert _contrib(half)["completeness"] == 2
    partial = risk_tier.assess(RiskInputs(_series(dict.fromkeys(range(0, 24, 4), 0),
                                                  complete=False), 6), NOW)
    assert _contrib(partial)["completeness"] == 2  # 6 partial sets count as 3 of 6


def test_readmission_bands_follow_the_published_thresholds() -> None:
    assert risk_tier.readmission_band(None, None) is None
    assert risk_tier.readmission_band(4, 4) == 0
    assert risk_tier.readmission_band(5, None) == 1
    assert risk_tier.readmission_band(10, None) == 2
    assert risk_tier.readmission_band(None, 6) == 1
    assert risk_tier.readmission_band(2, 7) == 2


def test_no_data_gives_no_points_and_says_so() -> None:
    a = risk_tier.assess(RiskInputs([], expected_sets_24h=0), NOW)
    assert a.tier is Tier.LOW
    assert a.points == 0
    assert all(c.value is None for c in a.contributions)
    assert all(c.detail for c in a.contributions)


def test_rising_from_static_risk_and_adherence() -> None:
    a = risk_tier.assess(RiskInputs(_series({0: 0, 12: 0}), expected_sets_24h=6, lace=12,
                                    step_up=True), NOW)
    assert _contrib(a) == {"news2_now": 0, "trajectory": 0, "baseline": 0, "completeness": 2,
                           "readmission": 2, "pathway": 1}
    assert a.tier is Tier.RISING


def test_tier_cut_offs_and_changes() -> None:
    assert [risk_tier.tier_of(p) for p in (0, 2, 3, 5, 6, 20)] == [
        Tier.LOW, Tier.LOW, Tier.RISING, Tier.RISING, Tier.HIGH, Tier.HIGH]
    assert risk_tier.changed(None, Tier.LOW)
    assert risk_tier.changed(Tier.LOW, Tier.HIGH)
    assert not risk_tier.changed(Tier.HIGH, Tier.HIGH)
    assert Tier.HIGH.rank > Tier.RISING.rank > Tier.LOW.rank
