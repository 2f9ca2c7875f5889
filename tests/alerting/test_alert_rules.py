"""The alert rules as tables: explicit instants, plain data, no database."""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

import pytest

from alerting import rules
from alerting.candidates import Clear, Evidence, Firing, Kind, Severity
from alerting.care_plan import CarePlan, Threshold
from alerting.news2 import Risk
from alerting.observations import Latest, build
from alerting.snapshot import DeviceState, PatientSnapshot, RuleConfig, ScorePoint

NOW = dt.datetime(2026, 3, 29, 12, 0, tzinfo=dt.UTC)
NORMAL = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.8, "systolic_bp": 125,
          "on_oxygen": 0, "consciousness": 0}


def snap(values: dict[str, float], *, age: dt.timedelta = dt.timedelta(0), plan: CarePlan | None = None,
         **kw: object) -> PatientSnapshot:
    latest = {c: Latest(c, NOW - age, float(v), f"d-{c}") for c, v in values.items()}
    return PatientSnapshot(1, latest, plan or CarePlan(1), **kw)  # type: ignore[arg-type]


def outcome(s: PatientSnapshot, kind: Kind, now: dt.datetime = NOW,
            config: RuleConfig | None = None) -> Firing | Clear | None:
    return rules.evaluate(s, now, config).by_kind().get(kind)


@pytest.mark.parametrize(("values", "severity"), [
    (NORMAL, None),
    ({**NORMAL, "spo2": 91}, Severity.LOW_MEDIUM),  # single 3, total 3
    ({**NORMAL, "pulse": 115, "resp_rate": 22}, Severity.MEDIUM),  # 2 + 2 + ... = 5? (2+2=4)+temp
    ({**NORMAL, "pulse": 115, "resp_rate": 22, "temperature": 38.5}, Severity.MEDIUM),  # 5
    ({**NORMAL, "spo2": 90, "pulse": 125, "resp_rate": 26}, Severity.HIGH),  # 8
])
def test_news2_rule_severity_is_chart_2_risk(values: dict[str, float], severity: Severity | None) -> None:
    result = rules.evaluate(snap(values), NOW)
    found = result.by_kind().get(Kind.NEWS2)
    assert result.score is not None
    if severity is None or result.score.risk is Risk.LOW:
        assert isinstance(found, Clear)
    else:
        assert isinstance(found, Firing)
        assert found.severity is Severity.of_risk(result.score.risk)
        assert {e.code for e in found.evidence} == set(values)


@pytest.mark.parametrize(("code", "age", "fresh"), [
    ("spo2", dt.timedelta(hours=3, minutes=59), True),
    ("spo2", dt.timedelta(hours=4, minutes=1), False),
    ("pulse", dt.timedelta(hours=4), True),
    ("systolic_bp", dt.timedelta(hours=4, seconds=1), False),
    ("resp_rate", dt.timedelta(hours=3, minutes=59), True),
    ("resp_rate", dt.timedelta(hours=4, minutes=1), False),
    ("consciousness", dt.timedelta(hours=4, minutes=1), False),
    ("temperature", dt.timedelta(hours=4), True),
    ("on_oxygen", dt.timedelta(hours=11), True),
    ("on_oxygen", dt.timedelta(hours=13), False),
    ("spo2", -dt.timedelta(minutes=4), True),  # device clock slightly ahead
])
def test_staleness_window_per_parameter(code: str, age: dt.timedelta, fresh: bool) -> None:
    obs = build({code: Latest(code, NOW - age, 1.0 if code in ("on_oxygen",) else 0.0
                              if code == "consciousness" else 97.0, "d")}, NOW)
    assert (code in {e.code for e in obs.used}) is fresh
    assert (code in obs.stale) is not fresh


def test_stale_parameters_are_missing_and_a_partial_low_score_is_not_clear() -> None:
    s = snap({**NORMAL, "resp_rate": 30}, age=dt.timedelta(hours=5))  # all 4-h codes stale
    fresh_rr = Latest("resp_rate", NOW - dt.timedelta(minutes=30), 30.0, "d-resp_rate")
    s = PatientSnapshot(1, {**s.latest, "resp_rate": fresh_rr}, CarePlan(1))
    result = rules.evaluate(s, NOW)
    assert result.score is not None
    assert not result.score.complete
    assert {"spo2", "pulse", "systolic_bp"} <= result.observation_set.stale
    news2 = result.by_kind()[Kind.NEWS2]
    assert isinstance(news2, Firing)
    assert news2.partial
    calm = rules.evaluate(snap({"spo2": 98, "pulse": 70}), NOW).by_kind()
    assert Kind.NEWS2 not in calm  # partial and low: undecided, never "clear"


def test_single_parameter_3_is_inhibited_below_medium_and_kept_visible_above() -> None:
    low_medium = rules.evaluate(snap({**NORMAL, "spo2": 91}), NOW).by_kind()
    assert Kind.SINGLE_PARAMETER_3 not in low_medium
    high = rules.evaluate(snap({**NORMAL, "spo2": 90, "pulse": 125, "resp_rate": 26}), NOW).by_kind()
    single = high[Kind.SINGLE_PARAMETER_3]
    assert isinstance(single, Firing)
    assert single.severity is Severity.LOW_MEDIUM
    assert {e.code for e in single.evidence} == {"spo2", "resp_rate"}


def test_news2_rising_is_no_longer_raised() -> None:
    """A rise of the total by 2 (0 → 2 is one artefact) no longer fires: the trend on the
    patient's own baseline replaced it (tests/alerting/test_alert_filters_and_trend.py)."""
    history = (ScorePoint(NOW - dt.timedelta(hours=20), 0, Risk.LOW, True),)
    found = rules.evaluate(snap({**NORMAL, "pulse": 115}, score_history=history), NOW).by_kind()
    assert Kind.NEWS2_RISING not in found
    assert Kind.TREND not in found  # no baseline learned: undecided


def _spo2(*values: float) -> tuple[Evidence, ...]:
    step = dt.timedelta(hours=1)
    return tuple(Evidence(NOW - step * (len(values) - 1 - i), "spo2", "ox", v)
                 for i, v in enumerate(values))


@pytest.mark.parametrize(("values", "fires"), [
    ((97, 96, 95, 94), True),
    ((97, 97, 96, 95, 94), True),
    ((97, 95, 96, 94), True),  # +1 jitter still "steady"
    ((97, 94, 97, 94), False),  # up by 3: not steady
    ((97, 96, 96, 95), False),  # fall of 2 only
    ((97, 95, 94), None),  # three readings cannot decide
])
def test_spo2_falling_steadily(values: tuple[float, ...], fires: bool | None) -> None:
    s = snap({"spo2": values[-1]}, spo2_history=_spo2(*values))
    found = outcome(s, Kind.SPO2_FALLING)
    assert (None if found is None else isinstance(found, Firing)) is fires


@pytest.mark.parametrize(("spo2", "scale", "target", "fires"), [
    (93, 1, None, True),  # default 94 on Scale 1 (BTS target 94–98 %)
    (94, 1, None, False),
    (95, 1, None, False),  # scores 1 in NEWS2, but is within the BTS target range
    (93.5, 1, None, False),  # quantised half up to 94
    (87, 2, None, True),  # default 88 on Scale 2
    (89, 2, None, False),
    (93, 1, 92.0, False),  # care plan target 92
    (91, 1, 92.0, True),
])
def test_spo2_below_target(spo2: float, scale: int, target: float | None, fires: bool) -> None:
    plan = CarePlan(1, spo2_scale=scale, spo2_scale_set_by="dr" if scale == 2 else None,
                    spo2_target_low=target)
    found = outcome(snap({"spo2": spo2}, plan=plan), Kind.SPO2_BELOW_TARGET)
    assert isinstance(found, Firing) is fires


def test_patient_threshold_names_author_and_reason() -> None:
    plan = CarePlan(1, thresholds=MappingProxyType({"pulse": Threshold(
        "pulse", 45, 100, "dr.patel", "AF, rate control target", severity=Severity.MEDIUM)}))
    found = outcome(snap({"pulse": 104}, plan=plan), Kind.THRESHOLD)
    assert isinstance(found, Firing)
    assert found.severity is Severity.MEDIUM
    assert found.details["breaches"][0]["by"] == "dr.patel"
    assert isinstance(outcome(snap({"pulse": 90}, plan=plan), Kind.THRESHOLD), Clear)
    assert outcome(snap({"pulse": 104}, plan=plan, age=dt.timedelta(hours=5)), Kind.THRESHOLD) is None


@pytest.mark.parametrize(("values", "age", "history", "severity"), [
    (NORMAL, dt.timedelta(hours=4, minutes=10), (), None),  # low: 4 h + 15 min grace
    ({"spo2": 97}, dt.timedelta(hours=4, minutes=16), (), Severity.LOW),
    ({"temperature": 36.8}, dt.timedelta(hours=1, minutes=16),
     (ScorePoint(NOW - dt.timedelta(hours=2), 5, Risk.MEDIUM, True),), Severity.MEDIUM),
    # continuous: 15 min + a grace of a quarter of the interval (3 min 45 s), not 15 min
    ({"temperature": 36.8}, dt.timedelta(minutes=19),
     (ScorePoint(NOW - dt.timedelta(hours=2), 8, Risk.HIGH, True),), Severity.HIGH),
    ({"temperature": 36.8}, dt.timedelta(minutes=18),
     (ScorePoint(NOW - dt.timedelta(hours=2), 8, Risk.HIGH, True),), None),
])
def test_observations_overdue_by_chart_4_band(values: dict[str, float], age: dt.timedelta,
                                               history: tuple[ScorePoint, ...],
                                               severity: Severity | None) -> None:
    s = snap(values, age=age, score_history=history)
    found = outcome(s, Kind.OBSERVATIONS_OVERDUE)
    if severity is None:
        assert isinstance(found, Clear)
    else:
        assert isinstance(found, Firing)
        assert found.severity is severity


def test_never_observed_patient_is_overdue_from_admission() -> None:
    s = PatientSnapshot(1, {}, CarePlan(1), admitted_at=NOW - dt.timedelta(hours=5))
    found = outcome(s, Kind.OBSERVATIONS_OVERDUE)
    assert isinstance(found, Firing)
    assert "since admission" in found.summary


@pytest.mark.parametrize(("device", "offline", "battery"), [
    (DeviceState("ox", "pulse_oximeter", True, 80, NOW), False, False),
    (DeviceState("ox", "pulse_oximeter", False, 80, NOW), True, False),
    (DeviceState("ox", "pulse_oximeter", True, 80, NOW - dt.timedelta(minutes=31)), True, False),
    (DeviceState("ox", "pulse_oximeter", True, 20, NOW), False, True),
    (DeviceState("ox", "pulse_oximeter", True, 23, NOW), False, None),  # hysteresis band
    (DeviceState("ox", "pulse_oximeter", None, None, None), None, None),  # never reported
])
def test_device_offline_and_battery(device: DeviceState, offline: bool | None,
                                    battery: bool | None) -> None:
    s = PatientSnapshot(1, {}, CarePlan(1), devices=(device,))
    by_kind = rules.evaluate(s, NOW).by_kind()
    for kind, expected in ((Kind.DEVICE_OFFLINE, offline), (Kind.BATTERY_LOW, battery)):
        found = by_kind.get(kind)
        assert (None if found is None else isinstance(found, Firing)) is expected


START = NOW - dt.timedelta(hours=10)
INFUSION = CarePlan(1, prescribed_infusion_rate_ml_h=10.0, infusion_pump_type="elastomeric",
                    infusion_volume_ml=100.0, infusion_started_at=START)  # 10 h planned


def pump(state: int, rate: float | None = None, at: dt.datetime = NOW) -> dict[str, Latest]:
    out = {"pump_state": Latest("pump_state", at, float(state), "pump")}
    if rate is not None:
        out["infusion_rate"] = Latest("infusion_rate", at, rate, "pump")
    return out


@pytest.mark.parametrize(("latest", "now", "kind", "fires"), [
    (pump(2), NOW, Kind.INFUSION_OCCLUDED, True),
    (pump(0, 10), NOW, Kind.INFUSION_OCCLUDED, False),
    (pump(4), NOW, Kind.INFUSION_DISCONNECTED, True),
    (pump(0, 11.4), NOW - dt.timedelta(hours=2), Kind.INFUSION_FLOW, False),  # +14 %
    (pump(0, 11.6), NOW - dt.timedelta(hours=2), Kind.INFUSION_FLOW, True),  # +16 %
    (pump(0, 8.4), NOW - dt.timedelta(hours=2), Kind.INFUSION_FLOW, True),  # -16 %
    (pump(1, 0), NOW - dt.timedelta(hours=2), Kind.INFUSION_FLOW, False),  # paused: no flow alert
    (pump(3, at=START + dt.timedelta(hours=8)), NOW, Kind.INFUSION_FINISHED_EARLY, True),
    (pump(3, at=START + dt.timedelta(hours=9)), NOW, Kind.INFUSION_FINISHED_EARLY, False),
    (pump(0, 10, at=NOW + dt.timedelta(hours=1)), NOW + dt.timedelta(hours=1, minutes=31),
     Kind.INFUSION_LATE, True),
    (pump(0, 10, at=NOW + dt.timedelta(hours=1)), NOW + dt.timedelta(hours=1, minutes=29),
     Kind.INFUSION_LATE, False),
])
def test_infusion_rules(latest: dict[str, Latest], now: dt.datetime, kind: Kind,
                        fires: bool) -> None:
    # readings are "at" the given time; evaluate when asked (fresh within 30 min for flow)
    shifted = {c: Latest(c, min(r.measured_at, now), r.value, r.device_id) for c, r in latest.items()}
    found = rules.evaluate(PatientSnapshot(1, shifted, INFUSION), now).by_kind().get(kind)
    assert found is not None
    assert isinstance(found, Firing) is fires


def test_tolerance_is_configurable_per_pump_type() -> None:
    plan = CarePlan(1, prescribed_infusion_rate_ml_h=10.0, infusion_pump_type="volumetric")
    s = PatientSnapshot(1, pump(0, 10.6), plan)
    assert isinstance(outcome(s, Kind.INFUSION_FLOW), Firing)  # 6 % > 5 %
    loose = RuleConfig(pump_tolerance={"volumetric": 0.1})
    assert isinstance(outcome(s, Kind.INFUSION_FLOW, config=loose), Clear)
