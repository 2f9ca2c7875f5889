"""Residual noise on `noisy-devices` (issue 10): an even SpO2 median window and a wearable's
first readings must not raise, while a sustained low SpO2 still does at once (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from alerting import artefacts, rules
from alerting.candidates import Evidence, Firing, Kind
from alerting.care_plan import CarePlan
from alerting.observations import Latest
from alerting.snapshot import PatientSnapshot

NOW = dt.datetime(2026, 3, 29, 12, 0, tzinfo=dt.UTC)
NORMAL = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.8, "systolic_bp": 125,
          "on_oxygen": 0, "consciousness": 0}


def wearable(values: list[float | None]) -> tuple[Evidence, ...]:
    """One-a-minute SpO2, the last at NOW; None is a reading lost (a malformed message)."""
    n = len(values)
    return tuple(Evidence(NOW - dt.timedelta(minutes=n - 1 - i), "spo2", "wear", float(v))
                 for i, v in enumerate(values) if v is not None)


def snapshot(spo2: tuple[Evidence, ...]) -> PatientSnapshot:
    latest = {c: Latest(c, NOW, float(v), "hub") for c, v in NORMAL.items()}
    last = spo2[-1]
    latest["spo2"] = Latest("spo2", last.measured_at, last.value, last.device_id)
    return PatientSnapshot(1, latest, CarePlan(1), spo2_history=spo2, recent={"spo2": spo2})


@pytest.mark.parametrize(("values", "seen"), [
    # replayed noisy-devices cases: two artefacts among four readings (one reading lost)
    ([98, 84, 89, None, 100], 98),
    ([100, 87, 97, None, 86], 97),
    ([97, 91, 97, 93, None, 89], 93),
    ([96, 88, 87, 86, 86], 87),  # a real fall still shows within half the window
    ([96, 88, 87, None, 86], 88),  # also with a reading lost: three of four are low
    ([97, 88, 87], 88),  # three readings: two of three low is a majority
])
def test_a_harmful_spo2_needs_a_strict_majority_of_the_window(
        values: list[float | None], seen: float) -> None:
    spo2 = wearable(values)
    recent = {"spo2": spo2}
    latest = {"spo2": Latest("spo2", spo2[-1].measured_at, spo2[-1].value, "wear")}
    assert artefacts.apply(latest, recent).latest["spo2"].value == seen


def test_two_artefacts_of_four_readings_raise_nothing() -> None:
    found = rules.evaluate(snapshot(wearable([98, 84, 89, None, 100])), NOW).by_kind()
    assert not isinstance(found.get(Kind.NEWS2), Firing)


def test_a_sustained_low_spo2_on_a_wearable_raises_at_once() -> None:
    # 97 then 88 from three minutes ago: a majority of the window (3 of 5) is low now
    found = rules.evaluate(snapshot(wearable([97, 97, 88, 88, 87])), NOW).by_kind()
    news2 = found[Kind.NEWS2]
    assert isinstance(news2, Firing)
    assert news2.details["sub_scores"]["spo2"] == 3


def test_a_wearables_first_readings_are_no_steady_fall() -> None:
    found = rules.evaluate(snapshot(wearable([99, 98, 95, 96])), NOW).by_kind()
    assert Kind.SPO2_FALLING not in found


def test_spot_readings_falling_over_hours_still_fire() -> None:
    spo2 = tuple(Evidence(NOW - dt.timedelta(hours=3 - i), "spo2", "ox", v)
                 for i, v in enumerate((97.0, 96.0, 95.0, 94.0)))
    assert isinstance(rules.spo2_falling_rule(spo2, NOW)[0], Firing)
