"""Virtual patients: trends of each trajectory, day/night variation, purity."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.news2 import Consciousness, Observations, score
from simulators.physiology import (
    Profile,
    Trajectory,
    TrueState,
    circadian,
    draw_profile,
    true_state,
)

START = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def _profile(trajectory: Trajectory, seed: int, *, home_oxygen: bool = False) -> Profile:
    return draw_profile(seed, trajectory, np.random.default_rng(seed), start=START,
                        onset_earliest=2 * H, onset_latest=4 * H, ramp_hours=(3.0, 6.0),
                        home_oxygen=home_oxygen)


def _news2(state: TrueState, scale: int) -> int:
    return score(Observations(
        resp_rate=state.resp_rate, spo2=state.spo2, on_oxygen=state.on_oxygen,
        systolic_bp=state.systolic_bp, pulse=state.pulse,
        consciousness=Consciousness(state.consciousness), temperature=state.temperature,
        spo2_scale=scale)).total


@pytest.mark.parametrize("seed", range(20))
def test_sepsis_worsens_every_vital_it_should(seed: int) -> None:
    profile = _profile(Trajectory.SEPSIS, seed)
    assert profile.onset is not None
    before = true_state(profile, profile.onset - 10 * dt.timedelta(minutes=1))
    worst = true_state(profile, profile.onset + profile.ramp + dt.timedelta(minutes=1))
    assert worst.pulse > before.pulse + 25
    assert worst.resp_rate > before.resp_rate + 8
    assert worst.temperature > before.temperature + 1.2
    assert worst.systolic_bp < before.systolic_bp - 20
    assert worst.spo2 < before.spo2 - 4
    assert _news2(before, 1) <= 4
    assert _news2(worst, 1) >= (7 if profile.severity >= 1.0 else 5)


@pytest.mark.parametrize("seed", range(10))
def test_copd_exacerbation_falls_below_its_scale_2_target(seed: int) -> None:
    profile = _profile(Trajectory.COPD_EXACERBATION, seed)
    assert profile.spo2_scale == 2
    assert profile.onset is not None
    baseline = true_state(profile, START)
    assert 87.0 <= baseline.spo2 <= 93.5  # on target 88–92 give or take the wander
    assert _news2(baseline, 2) <= 4
    worst = true_state(profile, profile.onset + profile.ramp)
    assert worst.spo2 < 86.0
    assert _news2(worst, 2) >= 5


@pytest.mark.parametrize("seed", range(10))
def test_stable_patients_stay_in_normal_ranges_for_days(seed: int) -> None:
    profile = _profile(Trajectory.STABLE, seed)
    for minutes in range(0, 3 * 24 * 60, 17):
        s = true_state(profile, START + dt.timedelta(minutes=minutes))
        assert 94.5 <= s.spo2 <= 100
        assert 45 <= s.pulse <= 95
        assert 11 <= s.resp_rate <= 20
        assert 35.8 <= s.temperature <= 37.8
        assert 105 <= s.systolic_bp <= 165
        assert s.consciousness == "A"
        assert _news2(s, 1) <= 3


@pytest.mark.parametrize("seed", range(10))
def test_step_down_patients_recover(seed: int) -> None:
    profile = _profile(Trajectory.STEP_DOWN_RECOVERY, seed)
    assert profile.discharged_at is not None
    assert profile.onset is None
    early = true_state(profile, profile.discharged_at)
    later = true_state(profile, profile.discharged_at + 5 * profile.ramp)
    # Compare without the day/night swing: same local time of day, days later.
    assert early.resp_rate - profile.baseline.resp_rate > later.resp_rate - profile.baseline.resp_rate
    assert early.temperature - later.temperature > 0.5 - 0.2


def test_day_night_follows_london_local_time_across_the_clock_change() -> None:
    winter_nadir = dt.datetime(2026, 1, 10, 4, 0, tzinfo=dt.UTC)  # 04:00 GMT
    summer_nadir = dt.datetime(2026, 7, 10, 3, 0, tzinfo=dt.UTC)  # 04:00 BST
    assert circadian(winter_nadir) == pytest.approx(-1.0)
    assert circadian(summer_nadir) == pytest.approx(-1.0)
    assert circadian(winter_nadir + 12 * H) == pytest.approx(1.0)
    profile = _profile(Trajectory.STABLE, 3)
    night = true_state(profile, dt.datetime(2026, 1, 6, 4, 0, tzinfo=dt.UTC))
    afternoon = true_state(profile, dt.datetime(2026, 1, 6, 16, 0, tzinfo=dt.UTC))
    assert afternoon.temperature > night.temperature
    assert afternoon.pulse > night.pulse - 6  # the wander may eat part of the swing


def test_home_oxygen_patients_are_on_oxygen() -> None:
    profile = _profile(Trajectory.STABLE, 5, home_oxygen=True)
    state = true_state(profile, START)
    assert state.on_oxygen
    assert state.o2_flow > 0


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), minutes=st.integers(0, 10 * 24 * 60),
       trajectory=st.sampled_from(list(Trajectory)))
def test_true_state_is_a_pure_function_of_profile_and_instant(
    seed: int, minutes: int, trajectory: Trajectory
) -> None:
    at = START + dt.timedelta(minutes=minutes)
    assert true_state(_profile(trajectory, seed), at) == true_state(_profile(trajectory, seed), at)
    assert 0.0 <= true_state(_profile(trajectory, seed), at).progress <= 1.0
