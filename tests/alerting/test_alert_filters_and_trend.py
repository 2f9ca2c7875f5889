"""Artefact filtering and the trend on the patient's own baseline, as tables (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from alerting import artefacts, rules, trend
from alerting.candidates import Clear, Evidence, Firing, Kind, Severity
from alerting.care_plan import CarePlan
from alerting.observations import Latest
from alerting.snapshot import BaselineStat, PatientSnapshot

NOW = dt.datetime(2026, 3, 29, 12, 0, tzinfo=dt.UTC)
NORMAL = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.8, "systolic_bp": 125,
          "on_oxygen": 0, "consciousness": 0}


def mins(m: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=m)


def series(code: str, values: list[float], *, every: float = 1.0, device: str = "wear"
           ) -> tuple[Evidence, ...]:
    """Readings of ``code``, the last one at NOW, ``every`` minutes apart (oldest first)."""
    n = len(values)
    return tuple(Evidence(mins(every * (n - 1 - i)), code, device, float(v))
                 for i, v in enumerate(values))


def latest_of(recent: dict[str, tuple[Evidence, ...]]) -> dict[str, Latest]:
    return {c: Latest(c, es[-1].measured_at, es[-1].value, es[-1].device_id)
            for c, es in recent.items()}


# -- artefacts ------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "seen"), [
    ([96, 97, 96, 97, 85], 96),  # one artefact at the end never reaches a rule
    ([96, 85, 96, 97, 96], 96),  # nor one in the middle
    ([96, 88, 87, 86, 86], 87),  # a real fall shows within half the window
    ([96, 97], 97),  # two readings: not continuous, the newest counts
])
def test_continuous_readings_are_median_filtered(values: list[float], seen: float) -> None:
    recent = {"spo2": series("spo2", values)}
    out = artefacts.apply(latest_of(recent), recent)
    assert out.latest["spo2"].value == seen
    assert ("spo2" in out.medians) is (len(values) >= artefacts.CONTINUOUS_MIN)
    # the value seen is one of the actual readings: traceable evidence
    assert out.latest["spo2"].evidence in recent["spo2"]


def test_a_single_artefact_on_a_wearable_raises_nothing() -> None:
    recent = {"spo2": series("spo2", [97, 97, 96, 97, 86]),
              "pulse": series("pulse", [72, 71, 73, 72, 72])}
    latest = {**{c: Latest(c, NOW, float(v), "hub") for c, v in NORMAL.items()},
              **latest_of(recent)}
    found = rules.evaluate(PatientSnapshot(1, latest, CarePlan(1), recent=recent), NOW).by_kind()
    assert isinstance(found[Kind.SPO2_BELOW_TARGET], Clear)
    assert isinstance(found[Kind.NEWS2], Clear)


def _spot(spo2_then: float, spo2_now: float, pulse_then: float, pulse_now: float,
          ) -> tuple[dict[str, Latest], dict[str, tuple[Evidence, ...]]]:
    then = dt.timedelta(hours=3)
    recent = {
        "spo2": (Evidence(NOW - then, "spo2", "ox", spo2_then), Evidence(NOW, "spo2", "ox", spo2_now)),
        "pulse": (Evidence(NOW - then, "pulse", "ox", pulse_then),
                  Evidence(NOW, "pulse", "ox", pulse_now)),
    }
    latest = {**{c: Latest(c, NOW, float(v), "hub") for c, v in NORMAL.items()
                 if c not in recent}, **latest_of(recent)}
    return latest, recent


@pytest.mark.parametrize(("then", "now", "pulse_then", "pulse_now", "doubtful"), [
    (97, 90, 72, 73, True),  # SpO2 down 7 alone: a probe artefact until repeated
    (97, 90, 72, 95, False),  # pulse up 23 with it: corroborated, it counts
    (97, 94, 72, 73, False),  # a fall of 3 is plausible on its own
    (90, 90, 72, 73, False),  # the repeat confirms the low value (no jump from its predecessor)
])
def test_a_single_implausible_spot_jump_is_doubtful_not_scored(
        then: float, now: float, pulse_then: float, pulse_now: float, doubtful: bool) -> None:
    latest, recent = _spot(then, now, pulse_then, pulse_now)
    evaluation = rules.evaluate(PatientSnapshot(1, latest, CarePlan(1), recent=recent), NOW)
    assert bool(evaluation.doubtful) is doubtful
    target = evaluation.by_kind().get(Kind.SPO2_BELOW_TARGET)
    if doubtful:
        (doubt,) = evaluation.doubtful
        assert doubt.code == "spo2"
        assert doubt.reading == Evidence(NOW, "spo2", "ox", now)
        assert doubt.previous is not None
        assert doubt.as_json()["reading"]["value"] == now  # the hook's payload
        assert isinstance(target, Clear)  # scored on the previous reading: nothing raised
    else:
        assert isinstance(target, Firing) is (now < 94)


def test_low_perfusion_index_makes_the_spo2_doubtful() -> None:
    latest = {**{c: Latest(c, NOW, float(v), "hub") for c, v in NORMAL.items()},
              "spo2": Latest("spo2", NOW, 89.0, "ox"),
              "perfusion_index": Latest("perfusion_index", NOW, 0.2, "ox")}
    evaluation = rules.evaluate(PatientSnapshot(1, latest, CarePlan(1)), NOW)
    (doubt,) = evaluation.doubtful
    assert "perfusion" in doubt.reason
    assert evaluation.observation_set.observations.spo2 is None  # not scored


# -- baseline trend -------------------------------------------------------------------------

def _learn(code: str, values: list[float], hours: float = 6.0) -> BaselineStat | None:
    step = dt.timedelta(hours=hours) / max(len(values) - 1, 1)
    first = [Evidence(NOW - dt.timedelta(hours=24) + step * i, code, "d", v)
             for i, v in enumerate(values)]
    return trend.learn(code, first, NOW)


def test_baseline_is_learned_from_the_first_hours_only_once_enough_is_seen() -> None:
    base = _learn("pulse", [60, 62, 64, 62])
    assert base is not None
    assert base.mean == pytest.approx(62.0)
    assert base.n == 4
    assert _learn("pulse", [60, 62]) is None  # two readings cannot make a baseline
    start = [Evidence(NOW - dt.timedelta(hours=2), "pulse", "d", 60.0)]
    assert trend.learn("pulse", start, NOW) is None  # still within the learning span


def _baselines(**means: float) -> dict[str, BaselineStat]:
    sd = {"pulse": 3.0, "resp_rate": 1.0, "temperature": 0.2, "spo2": 1.0}
    t0 = NOW - dt.timedelta(hours=24)
    return {c: BaselineStat(c, m, sd[c], 12, t0, t0 + dt.timedelta(hours=6))
            for c, m in means.items()}


@pytest.mark.parametrize(("values", "fires"), [
    # pulse 62 → 88 scores nothing on NEWS2 (51–90) but is +5 SD from this patient's own
    # baseline (SD floored at 5): amber on one sign alone.
    ({"pulse": 88, "resp_rate": 15, "temperature": 36.7, "spo2": 97}, True),
    # two signs together past 2.5 SD: pulse +14, temperature +0.8
    ({"pulse": 76, "resp_rate": 15, "temperature": 37.5, "spo2": 97}, True),
    # one sign at +2.8 SD alone is not enough (the afternoon's circadian rise looks like this)
    ({"pulse": 76, "resp_rate": 15, "temperature": 36.8, "spo2": 97}, False),
    # a better SpO2 than baseline is never a trend
    ({"pulse": 62, "resp_rate": 15, "temperature": 36.7, "spo2": 100}, False),
])
def test_trend_on_the_patients_own_baseline(values: dict[str, float], fires: bool) -> None:
    latest = {c: Latest(c, NOW, float(v), "d") for c, v in values.items()}
    (out,) = trend.trend_rule(latest, {}, _baselines(pulse=62, resp_rate=15, temperature=36.7,
                                                     spo2=97), NOW)
    assert isinstance(out, Firing) is fires
    if isinstance(out, Firing):
        assert out.kind is Kind.TREND
        assert out.severity is Severity.LOW  # amber: look and ask for a full set
        charted = {c["code"]: c for c in out.details["charted"]}
        assert charted["pulse"]["baseline_mean"] == 62
        assert out.evidence  # the readings behind the level


def test_trend_is_silent_while_learning_and_uses_a_wearables_recent_median() -> None:
    latest = {"pulse": Latest("pulse", NOW, 120.0, "wear")}
    assert trend.trend_rule(latest, {}, {}, NOW) == ()
    # a wearable: one spike of 120 among 64s is not the level; the level is the median of
    # the last 15 minutes only (an hour's median lagged a real rise by half an hour)
    recent = {"pulse": series("pulse", [64.0] * 30 + [120.0])}
    (out,) = trend.trend_rule(latest_of(recent), recent, _baselines(pulse=62), NOW)
    assert isinstance(out, Clear)
    assert out.evidence[0].measured_at == mins(15)
    rising = {"pulse": series("pulse", [64.0] * 45 + [95.0] * 15)}
    (up,) = trend.trend_rule(latest_of(rising), rising, _baselines(pulse=62), NOW)
    assert isinstance(up, Firing)  # 15 minutes at 95: +6.6 SD now, not in half an hour
