"""The demo's referral stream (simulators.referrals): reproducible from its seed, a few an
hour, every source a virtual ward hears from, and every referral one the hub accepts (valid
NHS test number, plausible observations with known vital codes, an urgency the domain allows).
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators import referrals
from ward.domain import nhs_number
from ward.domain.patients import Admission, Pathway, ReferralSource, Urgency
from ward.domain.vitals import VitalCode

START = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)
# Plausible at referral (not the NEWS2 bands): anything outside is a generator bug.
PLAUSIBLE = {"resp_rate": (8, 35), "spo2": (80, 100), "pulse": (40, 140),
             "systolic_bp": (80, 190), "temperature": (35.0, 40.5)}


def _take(seed: int, n: int, per_hour: float = 4.0) -> list[referrals.SimReferral]:
    return list(itertools.islice(referrals.stream(seed, START, per_hour), n))


def test_the_same_seed_gives_the_same_referrals_and_another_seed_others():
    assert _take(11, 50) == _take(11, 50)
    assert _take(11, 50) != _take(12, 50)


@pytest.mark.parametrize("seed", [1, 2026, 424242])
def test_a_few_an_hour_from_every_source(seed):
    got = _take(seed, 1500, per_hour=4.0)
    gaps = [(b.at - a.at).total_seconds() / 60 for a, b in itertools.pairwise(got)]
    assert all(g > 0 for g in gaps)  # strictly later, one after another
    assert 13 < statistics.fmean(gaps) < 17  # 15 min on average at 4 an hour
    sources = {r.source for r in got}
    assert sources == set(ReferralSource)
    step_down = sum(r.pathway is Pathway.STEP_DOWN for r in got) / len(got)
    assert 0.15 < step_down < 0.25  # ~20 % step-down
    urgencies = {r.urgency for r in got}
    assert urgencies == set(Urgency)
    two_hour = sum(r.urgency is Urgency.TWO_HOUR for r in got) / len(got)
    assert 0.1 < two_hour < 0.4
    # New people each time: distinct NHS numbers from the 999 test range.
    numbers = [r.nhs_number for r in got]
    assert len(set(numbers)) == len(numbers)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), per_hour=st.floats(0.5, 30))
def test_every_referral_is_one_the_hub_accepts(seed, per_hour):
    for r in _take(seed, 40, per_hour):
        assert r.nhs_number.startswith("999")
        assert nhs_number.normalise(r.nhs_number) == r.nhs_number
        assert 64 <= (r.at.date() - r.date_of_birth).days / 365.25 <= 100
        # The domain's own checks (a step-down is never a 2-hour referral) pass.
        admission = Admission(1, r.pathway, r.source, r.at, urgency=r.urgency)
        assert admission.starts_urgent_clock is (r.urgency is Urgency.TWO_HOUR)
        for code, value in r.observations.items():
            low, high = PLAUSIBLE[VitalCode(code).value]
            assert low <= value <= high, (code, value)
        assert r.reason
        assert r.referrer


def test_who_gives_which_observations():
    got = _take(5, 600)
    full = {"resp_rate", "spo2", "pulse", "systolic_bp", "temperature"}
    for r in got:
        if r.source in (ReferralSource.AMBULANCE, ReferralSource.ED,
                        ReferralSource.HOSPITAL_WARD):
            assert set(r.observations) == full
    carers = [r for r in got if r.source is ReferralSource.SELF_CARER]
    assert carers
    assert any(len(r.observations) < 3 for r in carers)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_the_rate_must_be_positive(bad):
    with pytest.raises(ValueError, match="per_hour"):
        next(referrals.stream(1, START, bad))


def test_the_start_must_be_utc():
    with pytest.raises(ValueError, match="UTC"):
        next(referrals.stream(1, START.replace(tzinfo=None), 4))
