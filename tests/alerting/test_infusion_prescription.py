"""The IV prescription (alerting.care_plan.infusion_change) and the pump rules it switches on."""

from __future__ import annotations

import datetime as dt

import pytest

from alerting import care_plan, rules
from alerting.candidates import Clear, Firing, Kind
from alerting.care_plan import CarePlan
from alerting.errors import CarePlanError
from alerting.observations import Latest
from alerting.snapshot import PatientSnapshot

START = dt.datetime(2026, 2, 3, 9, 0, tzinfo=dt.UTC)
NOW = START + dt.timedelta(hours=4)


def _plan(**kw: object) -> CarePlan:
    change = care_plan.infusion_change(CarePlan(1), by="dr.a", reason="cellulitis", now=START,
                                       started_at=START, drug="ceftriaxone", **kw)  # type: ignore[arg-type]
    c = change.columns
    return CarePlan(1, prescribed_infusion_rate_ml_h=c["prescribed_infusion_rate_ml_h"],
                    infusion_volume_ml=c["infusion_volume_ml"],
                    infusion_started_at=c["infusion_started_at"],
                    infusion_pump_type=c["infusion_pump_type"], infusion_drug=c["infusion_drug"])


def test_rate_or_duration_gives_the_expected_end_and_volume_line() -> None:
    by_rate = _plan(rate_ml_h=10.0, volume_ml=240.0)
    by_duration = _plan(rate_ml_h=None, volume_ml=240.0, duration=dt.timedelta(hours=24))
    assert by_rate.infusion_expected_end == by_duration.infusion_expected_end == (
        START + dt.timedelta(hours=24))
    assert by_rate.expected_infused_ml(NOW) == pytest.approx(40.0)
    assert by_rate.expected_infused_ml(START - dt.timedelta(hours=1)) == 0.0
    assert by_rate.expected_infused_ml(START + dt.timedelta(days=3)) == 240.0


@pytest.mark.parametrize("kw", [
    {"rate_ml_h": 10.0, "volume_ml": 240.0, "duration": dt.timedelta(hours=12)},  # disagree
    {"rate_ml_h": None, "volume_ml": None, "duration": dt.timedelta(hours=12)},  # no volume
    {"rate_ml_h": -1.0, "volume_ml": 240.0},
])
def test_inconsistent_prescriptions_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(CarePlanError):
        care_plan.infusion_change(CarePlan(1), by="dr.a", reason="x", now=START,
                                  started_at=START, **kw)  # type: ignore[arg-type]


def _snapshot(plan: CarePlan, infused: float, state: float = 0.0) -> PatientSnapshot:
    at = NOW - dt.timedelta(minutes=1)
    latest = {"pump_state": Latest("pump_state", at, state, "pump-1"),
              "infusion_volume_infused": Latest("infusion_volume_infused", at, infused, "pump-1"),
              "infusion_rate": Latest("infusion_rate", at, 10.0, "pump-1")}
    return PatientSnapshot(1, latest, plan)


@pytest.mark.parametrize(("infused", "stalled"), [
    (40.0, False), (35.0, False),  # on the line, and within ±15 % + 5 mL
    (20.0, True),  # half the expected 40 mL after 4 h
])
def test_an_infusion_behind_its_prescription_is_stalled(infused: float, stalled: bool) -> None:
    plan = _plan(rate_ml_h=10.0, volume_ml=240.0)
    found = rules.evaluate(_snapshot(plan, infused), NOW).by_kind().get(Kind.INFUSION_STALLED)
    assert isinstance(found, Firing if stalled else Clear)


def test_without_a_prescription_the_pump_rules_stay_off() -> None:
    found = rules.evaluate(_snapshot(CarePlan(1), 5.0), NOW).by_kind()
    assert Kind.INFUSION_STALLED not in found
    assert Kind.INFUSION_LATE not in found
