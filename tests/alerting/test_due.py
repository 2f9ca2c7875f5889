"""What is due and overdue per NEWS2 parameter (alerting.due), as tables with explicit instants."""

from __future__ import annotations

import datetime as dt

import pytest

from alerting import due, rules
from alerting.candidates import Clear, Firing, Kind, Severity
from alerting.care_plan import CarePlan
from alerting.due import LastComplete
from alerting.news2 import Parameter, Risk
from alerting.observations import Latest
from alerting.snapshot import DeviceState, PatientSnapshot, RuleConfig, ScorePoint

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
NORMAL = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.8, "systolic_bp": 125,
          "on_oxygen": 0, "consciousness": 0}
FULL_KIT = (("ox-1", "pulse_oximeter"), ("bp-1", "bp_cuff"), ("th-1", "thermometer"),
            ("hub-1", "home_hub"))


def latest(values: dict[str, float], at: dt.datetime) -> dict[str, Latest]:
    return {c: Latest(c, at, float(v), f"d-{c}") for c, v in values.items()}


def report(values: dict[str, Latest], *, now: dt.datetime, last: LastComplete | None = None,
           kit: tuple[tuple[str, str], ...] = FULL_KIT, scale: int = 1) -> due.DueReport:
    out = due.due(values, last=last, kit=due.kit_codes(kit), admitted_at=T0, spo2_scale=scale,
                  now=now)
    assert out is not None
    return out


def test_wearable_only_patient_gets_overdue_warnings_within_48_simulated_hours() -> None:
    """SpO2 and pulse every minute, nothing else ever: RR, BP, T, ACVPU must not be silent."""
    kit = (DeviceState("ox-1", "pulse_oximeter", True, 80.0, T0),)
    named: set[str] = set()
    methods: dict[str, str] = {}
    for hour in range(1, 49):
        now = T0 + dt.timedelta(hours=hour)
        snap = PatientSnapshot(7, latest({"spo2": 96, "pulse": 80}, now - dt.timedelta(minutes=1)),
                               CarePlan(7), devices=kit, admitted_at=T0)
        found = rules.evaluate(snap, now).by_kind().get(Kind.OBSERVATIONS_OVERDUE)
        if isinstance(found, Firing):
            for item in found.details["parameters"]:
                named.add(item["parameter"])
                methods[item["parameter"]] = item["method"]
    assert {"resp_rate", "systolic_bp", "temperature", "consciousness"} <= named
    assert "spo2" not in named  # measured every minute
    assert "pulse" not in named
    # What the kit cannot measure is a hub task: a call for RR and ACVPU, a visit for BP, T.
    assert methods["resp_rate"] == methods["consciousness"] == "phone call"
    assert methods["systolic_bp"] == methods["temperature"] == "visit"


def test_each_parameter_has_its_own_due_time() -> None:
    now = T0 + dt.timedelta(hours=6)
    values = latest({**NORMAL, "pulse": 95}, now - dt.timedelta(minutes=10))  # NEWS2 1
    values["resp_rate"] = Latest("resp_rate", now - dt.timedelta(hours=3, minutes=50), 16.0, "h")
    last = LastComplete(now - dt.timedelta(hours=3, minutes=50), 1, Risk.LOW)  # 4-hourly band
    r = report(values, now=now, last=last)
    by = {p.parameter: p for p in r.parameters}
    assert by[Parameter.RESP_RATE].due_at == now + dt.timedelta(minutes=10)
    assert by[Parameter.PULSE].due_at == now + dt.timedelta(hours=3, minutes=50)
    assert r.interval == dt.timedelta(hours=4)
    assert r.overdue(now) == ()
    later = now + dt.timedelta(minutes=26)  # RR: due + 15 min grace passed; the rest are not
    assert [p.parameter for p in r.overdue(later)] == [Parameter.RESP_RATE]


@pytest.mark.parametrize(("last", "current", "interval", "basis"), [
    (None, {}, dt.timedelta(hours=4), "never scored"),
    (LastComplete(T0, 0, Risk.LOW), {"spo2": 97}, dt.timedelta(hours=12), "last complete score"),
    # a partial lower bound may raise the band above the last complete one ...
    (LastComplete(T0, 0, Risk.LOW), {"spo2": 90, "pulse": 135}, dt.timedelta(hours=1),
     "partial score (lower bound)"),
    # ... but never lower it
    (LastComplete(T0, 6, Risk.MEDIUM), {"spo2": 97}, dt.timedelta(hours=1), "last complete score"),
    (LastComplete(T0, 8, Risk.HIGH), {"spo2": 97}, RuleConfig().continuous_gap,
     "last complete score"),
    (LastComplete(T0, 8, Risk.HIGH), NORMAL, dt.timedelta(hours=12), "complete score"),
])
def test_band_from_last_complete_score_raised_by_a_partial_one(
        last: LastComplete | None, current: dict[str, float], interval: dt.timedelta,
        basis: str) -> None:
    now = T0 + dt.timedelta(hours=1)
    r = report(latest(current, now), now=now, last=last)
    assert (r.interval, r.basis) == (interval, basis)


@pytest.mark.parametrize(("interval_total", "risk", "grace"), [
    (0, Risk.LOW, dt.timedelta(minutes=15)),
    (5, Risk.MEDIUM, dt.timedelta(minutes=15)),
    (8, Risk.HIGH, dt.timedelta(minutes=3, seconds=45)),  # a quarter of the 15-min gap
])
def test_grace_is_at_most_a_quarter_of_the_interval(interval_total: int, risk: Risk,
                                                    grace: dt.timedelta) -> None:
    now = T0 + dt.timedelta(hours=1)
    r = report(latest({"spo2": 97}, now), now=now, last=LastComplete(now, interval_total, risk))
    assert all(p.overdue_at - p.due_at == grace for p in r.parameters)


def test_scale_2_with_oxygen_status_unknown_is_not_scored_as_air() -> None:
    """Scale 2, SpO2 97 %, air/oxygen last said "oxygen" 13 h ago: 0 partial on air, 5 on O2."""
    now = T0 + dt.timedelta(hours=14)
    values = latest({**NORMAL, "spo2": 97}, now - dt.timedelta(minutes=5))
    values["on_oxygen"] = Latest("on_oxygen", now - dt.timedelta(hours=13), 1.0, "hub-1")
    r = report(values, now=now, scale=2)
    assert r.oxygen_unknown
    assert r.possible_total == 5  # SpO2 ≥ 97 on oxygen (3) + oxygen (2)
    assert r.risk is Risk.MEDIUM
    assert Parameter.AIR_OR_OXYGEN in {p.parameter for p in r.overdue(now)}
    plan = CarePlan(3, spo2_scale=2, spo2_scale_set_by="dr", spo2_scale_reason="T2RF")
    snap = PatientSnapshot(3, values, plan, admitted_at=T0,
                           devices=tuple(DeviceState(i, k) for i, k in FULL_KIT))
    found = rules.evaluate(snap, now).by_kind()[Kind.OBSERVATIONS_OVERDUE]
    assert isinstance(found, Firing)
    assert found.severity is Severity.MEDIUM
    assert "could be 5" in found.summary
    assert found.details["oxygen_unknown"] is True
    # Scale 1, same readings: no flag.
    assert not report(values, now=now, scale=1).oxygen_unknown


def test_overdue_rule_clears_when_every_parameter_is_in_time() -> None:
    now = T0 + dt.timedelta(hours=2)
    snap = PatientSnapshot(1, latest(NORMAL, now - dt.timedelta(minutes=5)), CarePlan(1),
                           admitted_at=T0,
                           devices=tuple(DeviceState(i, k) for i, k in FULL_KIT))
    assert isinstance(rules.evaluate(snap, now).by_kind()[Kind.OBSERVATIONS_OVERDUE], Clear)


def test_staff_entries_are_not_the_patients_kit() -> None:
    assert due.kit_codes([("staff-4", "home_hub"), ("ox-9", "pulse_oximeter")]) == {
        "spo2", "pulse"}


def test_last_complete_ignores_partial_future_and_old_scores() -> None:
    now = T0 + dt.timedelta(days=2)
    points = [(now - dt.timedelta(hours=25), 5, Risk.MEDIUM, True),
              (now - dt.timedelta(hours=3), 2, Risk.LOW, True),
              (now - dt.timedelta(hours=1), 7, Risk.HIGH, False),
              (now + dt.timedelta(minutes=1), 9, Risk.HIGH, True)]
    assert due.last_complete(points, now) == LastComplete(now - dt.timedelta(hours=3), 2,
                                                          Risk.LOW)


def test_a_reading_from_before_the_admission_does_not_count() -> None:
    now = T0 + dt.timedelta(hours=1)
    values = latest({"resp_rate": 16}, T0 - dt.timedelta(days=3))
    r = report(values, now=now)
    rr = next(p for p in r.parameters if p.parameter is Parameter.RESP_RATE)
    assert rr.last_at is None
    assert rr.due_at == T0 + dt.timedelta(hours=4)


def test_score_point_history_feeds_the_rule_like_the_hub() -> None:
    """The rule's score history and the hub's newest complete score give one LastComplete."""
    now = T0 + dt.timedelta(hours=5)
    history = (ScorePoint(now - dt.timedelta(hours=2), 5, Risk.MEDIUM, True),
               ScorePoint(now - dt.timedelta(hours=1), 1, Risk.LOW, False, frozenset({"spo2"})))
    last = due.last_complete(((p.computed_at, p.total, p.risk, p.complete) for p in history), now)
    assert last == LastComplete(now - dt.timedelta(hours=2), 5, Risk.MEDIUM)


def test_a_code_the_patients_device_sent_is_measurable_by_the_kit() -> None:
    sent = {"resp_rate": Latest("resp_rate", T0, 16.0, "ox-9"),
            "temperature": Latest("temperature", T0, 36.8, "staff-4")}
    assert due.kit_codes([("ox-9", "pulse_oximeter"), ("staff-4", "home_hub")], sent) == {
        "spo2", "pulse", "resp_rate"}
