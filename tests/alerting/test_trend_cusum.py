"""The trend's tabular CUSUM for wearables (pure): earlier than the run rule it replaced on a
slow drift, no noisier in control at the documented rate, hysteresis on the index."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

import pytest

from alerting import trend
from alerting.candidates import Clear, Evidence, Firing, Outcome
from alerting.observations import Latest
from alerting.snapshot import BaselineStat

NOW = dt.datetime(2026, 3, 29, 12, 0, tzinfo=dt.UTC)
BASE = {"pulse": BaselineStat("pulse", 62.0, 3.0, 12, NOW - dt.timedelta(days=1),
                              NOW - dt.timedelta(hours=21))}


def _wearable(z_at: Callable[[dt.datetime], float], now: dt.datetime
              ) -> tuple[dict[str, Latest], dict[str, tuple[Evidence, ...]]]:
    """An hour of one-a-minute pulse readings whose (circadian-adjusted) z is ``z_at(t)``."""
    readings = []
    for m in range(60, -1, -1):
        t = now - dt.timedelta(minutes=m)
        value = 62.0 + trend.circadian_offset("pulse", t) + 3.0 * z_at(t)
        readings.append(Evidence(t, "pulse", "wear", value))
    last = readings[-1]
    return ({"pulse": Latest("pulse", last.measured_at, last.value, "wear")},
            {"pulse": tuple(readings)})


def _held(z: float, *, before: float | None = None) -> tuple[Outcome, ...]:
    """The rule at NOW after the index was ``before`` (default ``z``) for 45 min, then ``z``."""
    def z_at(t: dt.datetime) -> float:
        return z if before is None or NOW - t < trend.LOOK else before
    return trend.trend_rule(*_wearable(z_at, NOW), BASE, NOW)


def test_a_small_shift_held_an_hour_fires_though_it_never_crosses_the_run_rule_limit() -> None:
    assert trend.Z_LIMIT > 2.55  # the run rule (beyond 2.75 at two looks) would never fire
    (out,) = _held(2.55)
    assert isinstance(out, Firing)
    assert out.details["cusum"] >= trend.CUSUM_H
    assert len(out.details["looks"]) == trend.LOOKS
    assert "CUSUM" in out.summary


def test_the_hysteresis_is_on_the_index_clear_only_below_z_clear() -> None:
    # 2.0 SD held an hour: C = 4 x (2.0 - 1) = 4 < 6: undecided, not clear
    assert _held(2.0) == ()
    # after an hour at +4 SD, now 2.0: still beyond (the sum remembers the hour)
    (still,) = _held(2.0, before=4.0)
    assert isinstance(still, Firing)
    # below Z_CLEAR now: clear, whatever the hour before held
    (gone,) = _held(trend.Z_CLEAR - 0.3, before=4.0)
    assert isinstance(gone, Clear)


def _old_run_rule(latest: dict[str, Latest], recent: dict[str, tuple[Evidence, ...]],
                  now: dt.datetime) -> bool:
    """The rule the CUSUM replaced: index beyond Z_LIMIT now and one look earlier."""
    now_z, *_ = trend._index(latest, recent, BASE, now)
    then_z, *_ = trend._index(latest, recent, BASE, now - trend.LOOK)
    return now_z >= trend.Z_LIMIT and then_z >= trend.Z_LIMIT


@pytest.mark.parametrize("sd_per_hour", [0.5, 0.75])
def test_a_slow_ramp_is_caught_earlier_than_by_the_run_rule(sd_per_hour: float) -> None:
    start = NOW

    def z_at(t: dt.datetime) -> float:
        return max(0.0, (t - start).total_seconds() / 3600 * sd_per_hour)

    new = old = None
    t = start
    while (new is None or old is None) and t < start + dt.timedelta(hours=12):
        latest, recent = _wearable(z_at, t)
        out = trend.trend_rule(latest, recent, BASE, t)
        if new is None and out and isinstance(out[0], Firing):
            new = t
        if old is None and _old_run_rule(latest, recent, t):
            old = t
        t += dt.timedelta(minutes=5)
    assert new is not None
    assert old is not None
    assert new < old  # 0.5 SD/h: about 20 min earlier (benchmarks/bench_trend_arl.py)


def _ar1_looks(rng: random.Random, n: int, rho: float) -> list[float]:
    z, out, s = 0.0, [], (1 - rho * rho) ** 0.5
    for _ in range(n):
        z = rho * z + s * rng.gauss(0.0, 1.0)
        out.append(z)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_the_cusum_limit_keeps_the_in_control_rate(seed: int) -> None:
    # The documented in-control model: N(0,1) looks, AR(1) rho 0.6; about 60 fortnights
    looks = _ar1_looks(random.Random(seed), 60 * 14 * 24 * 4, trend.IN_CONTROL_RHO)
    signals, on = 0, False
    for i in range(trend.LOOKS - 1, len(looks)):
        z = looks[i]
        if on:
            on = z >= trend.Z_CLEAR
        elif z >= trend.Z_CLEAR and trend.cusum(looks[i - trend.LOOKS + 1:i + 1]) >= trend.CUSUM_H:
            on, signals = True, signals + 1
    # ARL0 of at least 14 days: no more than one false signal a fortnight (0.44 expected)
    assert signals / 60 <= 1.0


def test_cusum_is_pages_tabular_form() -> None:
    assert trend.cusum([]) == 0.0
    assert trend.cusum([0.0, 0.0, 3.0, 3.0]) == pytest.approx(4.0)  # k = 1
    assert trend.cusum([5.0, -5.0, 2.0]) == pytest.approx(1.0)  # resets at 0
