"""Artefact filtering and the trend on the patient's own baseline, as tables (pure)."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from statistics import NormalDist

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
    (97, 93, 72, 73, True),  # SpO2 down 4 alone: a probe artefact until repeated
    (97, 93, 72, 95, False),  # pulse up 23 with it: corroborated, it counts
    (97, 94, 72, 73, False),  # a fall of 3 is plausible on its own
    (93, 93, 72, 73, False),  # the repeat confirms the low value (no jump from its predecessor)
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
              "spo2": Latest("spo2", NOW, 93.0, "ox"),
              "perfusion_index": Latest("perfusion_index", NOW, 0.2, "ox")}
    evaluation = rules.evaluate(PatientSnapshot(1, latest, CarePlan(1)), NOW)
    (doubt,) = evaluation.doubtful
    assert "perfusion" in doubt.reason
    assert evaluation.observation_set.observations.spo2 is None  # not scored


def test_low_perfusion_index_never_holds_back_a_red_spo2() -> None:
    # SpO2 89 scores 3 alone (NEWS2's urgent response): scored at once, the repeat still asked
    latest = {**{c: Latest(c, NOW, float(v), "hub") for c, v in NORMAL.items()},
              "spo2": Latest("spo2", NOW, 89.0, "ox"),
              "perfusion_index": Latest("perfusion_index", NOW, 0.2, "ox")}
    evaluation = rules.evaluate(PatientSnapshot(1, latest, CarePlan(1)), NOW)
    assert evaluation.doubtful == ()
    (doubt,) = evaluation.urgent
    assert "perfusion" in doubt.reason
    assert evaluation.observation_set.observations.spo2 == 89
    assert isinstance(evaluation.by_kind()[Kind.NEWS2], Firing)


# -- baseline trend -------------------------------------------------------------------------
#
# Synthetic series: a seeded generator (no global random state), a day/night swing following
# the textbook cosinor (the same shape the simulator and the chart assume), a slow wander of
# a few hours' period and device noise. The assertions are about what must hold whatever the
# seed: in-control noise and the day/night swing never fire, a drift does.

T0 = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)  # 06:00 London, winter: a morning admission


def _learn(code: str, values: list[float], hours: float = 6.0) -> BaselineStat | None:
    step = dt.timedelta(hours=hours) / max(len(values) - 1, 1)
    first = [Evidence(NOW - dt.timedelta(hours=24) + step * i, code, "d", v)
             for i, v in enumerate(values)]
    return trend.learn(code, first, NOW)


def test_a_spot_baseline_is_learned_from_the_first_hours_only_once_enough_is_seen() -> None:
    base = _learn("resp_rate", [14, 16, 18, 16])
    assert base is not None
    assert base.mean == pytest.approx(16.0)  # no day/night swing modelled for respiration
    assert base.n == 4
    assert _learn("resp_rate", [14, 16]) is None  # two readings cannot make a baseline
    start = [Evidence(NOW - dt.timedelta(hours=2), "pulse", "d", 60.0)]
    assert trend.learn("pulse", start, NOW) is None  # still within the learning span


def _wearable(code: str, start: dt.datetime, minutes: int, value: Callable[[dt.datetime], float],
              ) -> list[Evidence]:
    return [Evidence(start + dt.timedelta(minutes=m), code, "wear",
                     float(round(value(start + dt.timedelta(minutes=m)))))
            for m in range(minutes)]


def test_a_continuous_baseline_is_learned_after_three_hours_from_level_medians() -> None:
    rng = random.Random(1)
    first = _wearable("pulse", T0, 200, lambda t: 70 + trend.circadian_offset("pulse", t)
                      + rng.gauss(0, 2))
    assert trend.learn("pulse", first[:170], T0 + dt.timedelta(hours=2, minutes=50)) is None
    base = trend.learn("pulse", first, T0 + dt.timedelta(hours=3, minutes=20))
    assert base is not None
    # the day/night swing is removed: the mean is the patient's 24-h mean, not the morning's
    assert base.mean == pytest.approx(70.0, abs=0.6)
    # the SD is that of 15-min medians (the charted statistic), far below a reading's ±2
    assert base.sd < 1.0
    assert base.to_at - base.from_at < trend.CONTINUOUS_LEARN_SPAN


def test_circadian_offset_follows_london_time_with_the_nadir_at_four() -> None:
    assert trend.circadian_offset("pulse", dt.datetime(2026, 1, 5, 4, 0, tzinfo=dt.UTC)) \
        == pytest.approx(-5.0)
    # 15:00 UTC in summer is 16:00 London: the peak
    assert trend.circadian_offset("temperature", dt.datetime(2026, 7, 1, 15, 0, tzinfo=dt.UTC)) \
        == pytest.approx(0.3)
    assert trend.circadian_offset("resp_rate", NOW) == 0.0


def test_the_limit_comes_from_the_in_control_run_length() -> None:
    assert pytest.approx(NormalDist().inv_cdf(1 - 1 / trend.ARL0_HOURS)) == trend.Z_LIMIT
    assert 2.5 < trend.Z_LIMIT < 3.0
    assert trend.Z_CLEAR < trend.Z_LIMIT


def test_a_sign_better_than_usual_does_not_cancel_one_that_is_worse() -> None:
    assert trend.combined([3.0, -4.0]) == pytest.approx((3.0 - 1.0) / math.sqrt(2))
    assert trend.combined([2.0, 2.0, 2.0, 2.0]) == pytest.approx(4.0)  # four signs a little
    assert trend.combined([]) == 0.0


def _baselines(**means: float) -> dict[str, BaselineStat]:
    sd = {"pulse": 3.0, "resp_rate": 1.0, "temperature": 0.2, "spo2": 1.0}
    t0 = NOW - dt.timedelta(hours=24)
    return {c: BaselineStat(c, m, sd[c], 12, t0, t0 + dt.timedelta(hours=6))
            for c, m in means.items()}


# NOW is 13:00 London (summer time began that morning): pulse +3.5/min and temperature
# +0.2 °C above their 24-h means are this hour's normal.
@pytest.mark.parametrize(("values", "fires"), [
    # pulse 62 → 88 scores nothing on NEWS2 (51–90) but is +7.5 SD from this patient's own
    # (circadian-adjusted) baseline: amber even with the other three signs normal
    ({"pulse": 88, "resp_rate": 15, "temperature": 36.7, "spo2": 97}, True),
    # two signs a little: pulse +3.5 SD, temperature +2.9 SD → index 3.2
    ({"pulse": 76, "resp_rate": 15, "temperature": 37.5, "spo2": 97}, True),
    # one sign at +3.5 SD with the others normal: index 1.5, not enough
    ({"pulse": 76, "resp_rate": 15, "temperature": 36.9, "spo2": 97}, False),
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
        assert charted["pulse"]["circadian_offset"] == pytest.approx(3.54, abs=0.01)
        assert out.details["index"] >= out.details["z_limit"]
        assert out.evidence  # the readings behind the level


def test_between_the_clear_and_the_limit_the_trend_is_undecided() -> None:
    # pulse alone at index 2.2: above Z_CLEAR (1.75), below Z_LIMIT (2.75)
    base = _baselines(pulse=62)
    value = 62 + trend.circadian_offset("pulse", NOW) + 2.2 * 3.0
    assert trend.trend_rule({"pulse": Latest("pulse", NOW, value, "d")}, {}, base, NOW) == ()


def test_trend_is_silent_while_learning_and_a_wearable_must_persist() -> None:
    latest = {"pulse": Latest("pulse", NOW, 120.0, "wear")}
    assert trend.trend_rule(latest, {}, {}, NOW) == ()
    base = _baselines(pulse=62)
    usual = 62 + trend.circadian_offset("pulse", NOW)
    # one spike of 120 among usual readings is not the level (median of the last 15 min)
    recent = {"pulse": series("pulse", [usual] * 30 + [120.0])}
    (out,) = trend.trend_rule(latest_of(recent), recent, base, NOW)
    assert isinstance(out, Clear)
    assert out.evidence[0].measured_at == mins(15)
    # ten minutes of motion: high now, but not 15 minutes ago: not yet a trend
    burst = {"pulse": series("pulse", [usual] * 50 + [usual + 20] * 10)}
    assert trend.trend_rule(latest_of(burst), burst, base, NOW) == ()
    # 30 minutes at +20: beyond the limit now and a level window ago
    rising = {"pulse": series("pulse", [usual] * 30 + [usual + 20] * 30)}
    (up,) = trend.trend_rule(latest_of(rising), rising, base, NOW)
    assert isinstance(up, Firing)
    assert up.details["index_earlier"] >= up.details["z_limit"]


def _patient(rng: random.Random, hours: float, *, drift_from: float | None = None,
             per_hour: float = 0.0, noise: float = 1.0) -> tuple[list[dt.datetime],
                                                                  dt.datetime | None]:
    """Replay a synthetic wearable patient (pulse and SpO2 once a minute) through learning
    and the rule every 5 min; (instants it fired, when the drift started)."""
    phase = rng.uniform(0, 2 * math.pi)
    start = T0 + dt.timedelta(hours=drift_from) if drift_from is not None else None

    def drift(t: dt.datetime) -> float:
        return 0.0 if start is None or t < start else (t - start).total_seconds() / 3600 * per_hour

    def wander(t: dt.datetime) -> float:
        return math.sin(2 * math.pi * (t - T0).total_seconds() / 3600 / 5.3 + phase)

    makers: dict[str, Callable[[dt.datetime], float]] = {
        "pulse": lambda t: 72 + trend.circadian_offset("pulse", t) + 2.0 * wander(t)
        + drift(t) + rng.gauss(0, 2 * noise),
        "spo2": lambda t: min(100.0, 97 + 0.3 * wander(t) - 0.15 * drift(t)
                              + rng.gauss(0, 0.8 * noise)),
    }
    first: dict[str, list[Evidence]] = {c: [] for c in makers}
    recent: dict[str, list[Evidence]] = {c: [] for c in makers}
    base: dict[str, BaselineStat] = {}
    fired = []
    for m in range(int(hours * 60)):
        t = T0 + dt.timedelta(minutes=m)
        for code, make in makers.items():
            e = Evidence(t, code, "wear", float(round(make(t))))
            recent[code] = [*[x for x in recent[code] if t - x.measured_at <= dt.timedelta(hours=1)], e]
            if code not in base:
                first[code].append(e)
                learned = trend.learn(code, first[code], t)
                if learned is not None:
                    base[code] = learned
        if m % 5 == 0 and base:
            out = trend.trend_rule(latest_of({c: tuple(v) for c, v in recent.items()}),
                                   {c: tuple(v) for c, v in recent.items()}, base, t)
            if out and isinstance(out[0], Firing):
                fired.append(t)
    return fired, start


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_in_control_noise_and_the_day_night_swing_do_not_fire(seed: int) -> None:
    # two days: two nights' fall of 10/min from the afternoon peak, a wander of ±2/min
    fired, _ = _patient(random.Random(seed), 48.0, noise=1.5)
    assert fired == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_drift_is_detected_well_before_it_scores_on_news2(seed: int) -> None:
    # +4/min an hour from hour 10 (and SpO2 −0.6 % an hour): NEWS2 pulse scores at 91
    fired, start = _patient(random.Random(seed), 18.0, drift_from=10.0, per_hour=4.0)
    assert start is not None
    assert fired
    assert start < fired[0] < start + dt.timedelta(hours=3)  # pulse still under 86


def test_an_old_spot_set_weighs_less_than_a_wearables_level() -> None:
    assert trend.weight(dt.timedelta(hours=9), continuous=True) == 1.0
    assert trend.weight(dt.timedelta(0), continuous=False) == 1.0
    assert trend.weight(dt.timedelta(hours=3), continuous=False) == pytest.approx(0.25)
    assert trend.weight(trend.LEVEL_FRESH, continuous=False) == 0.0
    # a wearable's pulse at +4 SD with an SpO2 at +1, and a normal set from 3 h ago: the old
    # set barely dilutes the drift (4 signs unweighted would give 2.5, below the limit)
    fresh = trend.combined([4.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.25, 0.25])
    assert fresh > trend.Z_LIMIT > trend.combined([4.0, 1.0, 0.0, 0.0])
    # weights never make noise look worse: one sign alone is its own z, whatever its weight
    assert trend.combined([2.0], [0.3]) == pytest.approx(2.0)


def _copd_wearable(values: list[float]) -> PatientSnapshot:
    recent = {"spo2": series("spo2", values)}
    latest = {**{c: Latest(c, NOW, float(v), "hub") for c, v in NORMAL.items() if c != "spo2"},
              **latest_of(recent)}
    plan = CarePlan(1, spo2_scale=2, spo2_target_low=88.0, spo2_target_high=92.0)
    return PatientSnapshot(1, latest, plan, recent=recent)


@pytest.mark.parametrize(("values", "fires"), [
    # a COPD patient whose normal is 89–90 on a 88–92 % target: five minutes at 86–87 (the
    # 5-min median NEWS2 scores is 87) is a dip, not an amber
    ([90.0, 89.0] * 5 + [87.0, 86.0, 87.0, 86.0, 87.0], False),
    # most of a quarter hour below 88: below target
    ([89.0, 89.0, 89.0] + [87.0, 86.0] * 6, True),
])
def test_a_wearable_is_below_target_on_its_quarter_hour_median(values: list[float],
                                                               fires: bool) -> None:
    outcome = rules.evaluate(_copd_wearable(values), NOW).by_kind()[Kind.SPO2_BELOW_TARGET]
    assert isinstance(outcome, Firing) is fires
    if fires:
        assert isinstance(outcome, Firing)
        assert outcome.evidence[0].device_id == "wear"  # the median reading, a real one
