"""Trends on the patient's own baseline: learn each patient's normal, flag a drift from it.

Fixed population thresholds (NEWS2) fire late for a patient whose normal is far inside them: a
pulse going from 62 to 88 scores nothing. Personalised models of each patient's own vital signs
detect deterioration earlier and with fewer false alerts than fixed thresholds (Tarassenko L et
al., *Br J Anaesth* 2006;97:64–68; Clifton L et al., *IEEE J Biomed Health Inform*
2014;18:722–730, on patient-specific models). The method is a control chart (Shewhart;
Montgomery DC, *Introduction to Statistical Quality Control*, 7th ed., ch. 6) of a
*multivariate* index, run per patient:

* **Day/night swing removed first** (:func:`circadian_offset`). Pulse and temperature follow a
  24-h rhythm with its nadir near 04:00 and its peak in the late afternoon (a cosinor model,
  Halberg F; Refinetti R, Menaker M, *Physiol Behav* 1992;51:613–637 for temperature, about
  ±0.3 °C; Degaute JP et al., *Hypertension* 1991;18:199–210 for heart rate, about ±5/min).
  Every reading is charted as its value minus the expected circadian offset at its own
  London-local hour, so a baseline learned in the morning is not exceeded by the afternoon's
  normal rise, and the night's fall cannot hide a drift. Whatever amplitude a patient really
  has beyond the model is covered by the SD floor below.
* **Learning** (:func:`learn`): the baseline of a code is learned once from the patient's first
  readings and never updated (a baseline that followed the patient would learn the
  deterioration). A *continuous* code (a wearable, ≥ :data:`CONTINUOUS_LEARN_MIN` readings in
  the first :data:`CONTINUOUS_LEARN_SPAN`) is learned after that span: its mean and SD are
  those of the circadian-adjusted :data:`LEVEL_WINDOW` medians — the very statistic that is
  charted (a chart's limits come from the SD of what it plots, not of single readings). 3 h
  of one-a-minute readings are 12 such levels; learning sooner than the 6 h a spot kit needs
  keeps the baseline ahead of deteriorations that start in the first hours (a baseline learned
  during the deterioration hides it). A spot code is learned from the readings of the first
  :data:`LEARN_SPAN` (≥ :data:`LEARN_MIN`; short of that, the first :data:`LEARN_MIN` if
  within :data:`LEARN_LIMIT`). SDs are floored (:data:`SD_FLOOR`) at what the devices and the
  residual day-to-day variation can resolve, so a patient whose first hours were unusually
  flat does not alarm on ordinary variation.
* **Level** (:func:`level`): for a continuous device the median (its two middles' mean,
  ``alerting.medians.Tie.MIDPOINT``) of the last :data:`LEVEL_WINDOW`
  (≥ :data:`CONTINUOUS_LEVEL` readings; steady to well under a beat a minute, and it follows a real rise within minutes, not the half hour an hourly median
  lagged); for a spot device the latest accepted reading while fresh (:data:`LEVEL_FRESH`).
* **Index**: each sign's standardised deviation in its harmful direction, z, floored at
  :data:`Z_CREDIT` (a sign better than usual may not cancel one that is worse), combined by
  Stouffer's weighted sum ``Z = Σwz / √Σw²`` over the charted signs — deterioration moves
  several signs a little before any one moves a lot (Tarassenko et al. 2006 combine the signs
  the same way, as a novelty score of the whole vector). A continuous level weighs 1, a spot
  reading less the older it is (:func:`weight`: 0 at :data:`LEVEL_FRESH`), so this
  afternoon's normal set cannot dilute a wearable's drift tonight. Under control each z is
  about standard normal, and so is Z, whatever the weights.
* **Limit from the in-control run length, not from a seed** (:data:`Z_LIMIT`): the level moves
  slowly (its in-control variation is hours long, so consecutive levels are not independent
  and an hour is about one independent look). The limit is the one-sided normal quantile that
  gives an in-control run length ARL0 = :data:`ARL0_HOURS` independent hours — one false amber
  per patient per :data:`ARL0_HOURS` h, i.e. per fortnight, the longest usual virtual-ward stay
  (`/work/shared/clinical/VIRTUAL_WARD.md`): ``Z_LIMIT = Φ⁻¹(1 − 1/ARL0)`` ≈ 2.75.
* **Persistence, for a wearable: a tabular CUSUM over the hour's looks** (Page ES,
  *Biometrika* 1954;41:100–115; the tabular form of Montgomery ch. 9.1): every
  :data:`LOOK` the index is one look, ``Z_j``; over the last :data:`LOOKS` looks (the hour the
  snapshot carries, :data:`alerting.snapshot.RECENT`), oldest first and from 0,
  ``C_j = max(0, C_{j−1} + Z_j − k)``, and the chart signals when ``C ≥ h`` (:data:`CUSUM_K`,
  :data:`CUSUM_H`). ``k`` is half the shift it is built to catch (a sustained 2-SD drift,
  ``k = 1``). The textbook ``h`` for independent looks (Siegmund's approximation,
  ``ARL0 ≈ (e^{2kb} − 2kb − 1)/(2k²)``, ``b = h + 1.166``: ``h ≈ 5.4`` for 14 days of 15-min
  looks) would be far too low: the index's in-control looks are autocorrelated (measured on
  shipped-scenario wearables before onset: 0.49 at 15 min, 0.36 at 30 min — Montgomery ch. 10,
  "SPC with autocorrelated data"). So ``h`` is set by simulation of the in-control model
  — standard-normal looks, AR(1) with :data:`IN_CONTROL_RHO` = 0.6 between consecutive looks,
  conservative against those measurements — as the smallest value whose false-signal rate
  (one signal per excursion, cleared below :data:`Z_CLEAR`) is no higher than the run rule's
  it replaced (index beyond :data:`Z_LIMIT` now and one look earlier) under the same model:
  about one per 14 days (``benchmarks/bench_trend_arl.py`` prints both; the test
  ``test_the_cusum_limit_keeps_the_in_control_rate`` re-checks it). The same false-alert rate,
  then, by construction — not by fitting a seed. A burst of motion shorter than a look moves
  neither the 15-min median nor the sum. A spot-check patient has no looks between sets: its
  latest set is charted alone against :data:`Z_LIMIT`.

  What it buys is honest but small: with an hour of autocorrelated looks, a sum of looks is
  not much quieter than one look, so the chart can lower the bar only a little for a drift
  that has been there a while (a sum ≥ 6 over four looks above ``k``: a mean index of 2.5
  held an hour, or 2.9/3.1/... over fewer). Replayed, it catches slow drifts up to a look
  earlier; on the shipped 3–8 h ramps it is within minutes of the run rule. The deeper limit
  is physical: a smoothstep course barely moves the signs in its first tenth.
* **Hysteresis**: it clears only once Z is back below :data:`Z_CLEAR`; in between it is
  undecided (nothing is returned), so a drift wavering about the limit is one finding, not a
  finding a half hour.

The finding is *amber* (:attr:`Severity.LOW`): a prompt to look and to ask for a full set, not
an emergency; NEWS2 still decides the band. The evidence shown is each sign's baseline, level,
circadian offset and z, the index and its limit, and the readings behind them.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import zoneinfo
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from alerting import series
from alerting.candidates import Clear, Evidence, Firing, Kind, Outcome, Severity
from alerting.medians import Tie, median_value
from alerting.observations import Latest
from alerting.series import Series
from alerting.snapshot import BaselineStat

#: Harmful direction of each charted sign (+1: higher is worse).
DIRECTION: Final[Mapping[str, int]] = MappingProxyType(
    {"pulse": 1, "resp_rate": 1, "temperature": 1, "spo2": -1})
CODES: Final = frozenset(DIRECTION)
LONDON: Final = zoneinfo.ZoneInfo("Europe/London")
#: Cosinor model of the normal day/night swing: amplitude (half peak-to-trough) per code and
#: the local hour of the peak (nadir twelve hours earlier, ~04:00). Respiration rate and SpO2
#: have no rhythm of a size that matters at the devices' resolution.
CIRCADIAN_AMPLITUDE: Final[Mapping[str, float]] = MappingProxyType(
    {"pulse": 5.0, "temperature": 0.3})
CIRCADIAN_PEAK_HOUR: Final = 16.0
LEARN_SPAN: Final = dt.timedelta(hours=6)
LEARN_LIMIT: Final = dt.timedelta(hours=24)
LEARN_MIN: Final = 3
#: A continuous code is learned after this span when it holds this many readings (one every
#: two minutes at least): 12 levels of 15 min, enough for their mean and SD.
CONTINUOUS_LEARN_SPAN: Final = dt.timedelta(hours=3)
CONTINUOUS_LEARN_MIN: Final = 90
#: The earliest a baseline can be learned (the store asks only for codes this old).
EARLIEST_LEARN: Final = min(LEARN_SPAN, CONTINUOUS_LEARN_SPAN)
#: SD floors, after the circadian swing is removed: pulse ±3/min (a pulse oximeter's stated
#: pulse-rate accuracy), respiration ±2/min (a carer's count over 30–60 s), temperature
#: ±0.2 °C (a home thermometer's accuracy), SpO2 ±1 % point (the display's resolution and an
#: oximeter's reading-to-reading jitter).
SD_FLOOR: Final[Mapping[str, float]] = MappingProxyType(
    {"pulse": 3.0, "resp_rate": 2.0, "temperature": 0.2, "spo2": 1.0})
CONTINUOUS_LEVEL: Final = 10
LEVEL_WINDOW: Final = dt.timedelta(minutes=15)
#: A level older than this no longer describes the patient (one low-risk observation cycle).
LEVEL_FRESH: Final = dt.timedelta(hours=4)
#: A sign better than its baseline counts at most this much against the others.
Z_CREDIT: Final = -1.0
#: In-control run length the limit is set for, in independent hours (a fortnight's stay).
ARL0_HOURS: Final = 14 * 24
Z_LIMIT: Final = statistics.NormalDist().inv_cdf(1.0 - 1.0 / ARL0_HOURS)
#: Back below this (one SD inside the limit) the trend is clear.
Z_CLEAR: Final = Z_LIMIT - 1.0
#: A wearable's index is looked at every quarter hour (the level window: consecutive looks
#: share no reading) over the snapshot's hour (alerting.snapshot.RECENT): four looks.
LOOK: Final = LEVEL_WINDOW
LOOKS: Final = 4
#: The tabular CUSUM's reference value: half the sustained shift (2 SD of the index) to catch.
CUSUM_K: Final = 1.0
#: Its decision interval, from the in-control model (standard-normal looks, AR(1) with
#: :data:`IN_CONTROL_RHO`): the smallest h (0.1 steps) whose false-signal rate is no higher
#: than that of the run rule it replaced (beyond :data:`Z_LIMIT` at two consecutive looks),
#: about 0.5 per 14 days; see ``benchmarks/bench_trend_arl.py``.
CUSUM_H: Final = 6.0
#: Lag-one autocorrelation of in-control looks assumed for :data:`CUSUM_H` (measured 0.49).
IN_CONTROL_RHO: Final = 0.6
#: Kept for callers: the span a wearable's drift must have been charted before it can fire.
PERSIST: Final = LOOK


def circadian_offset(code: str, at: dt.datetime) -> float:
    """The expected day/night deviation of ``code`` at ``at`` from its 24-h mean."""
    amplitude = CIRCADIAN_AMPLITUDE.get(code, 0.0)
    if not amplitude:
        return 0.0
    local = at.astimezone(LONDON)
    hour = local.hour + local.minute / 60.0 + local.second / 3600.0
    return amplitude * math.cos(2.0 * math.pi * (hour - CIRCADIAN_PEAK_HOUR) / 24.0)


def adjusted(e: Evidence) -> float:
    """A reading's value with the day/night swing of its hour removed."""
    return e.value - circadian_offset(e.code, e.measured_at)


def _levels(window: Sequence[Evidence]) -> list[float]:
    """Circadian-adjusted medians of consecutive :data:`LEVEL_WINDOW` blocks (≥ the readings
    a continuous level needs), oldest first."""
    out: list[float] = []
    if not window:
        return out
    start = window[0].measured_at
    block: list[float] = []
    edge = start + LEVEL_WINDOW
    for e in window:
        while e.measured_at >= edge:
            if len(block) >= CONTINUOUS_LEVEL:
                out.append(median_value(block, Tie.MIDPOINT))
            block, edge = [], edge + LEVEL_WINDOW
        block.append(adjusted(e))
    if len(block) >= CONTINUOUS_LEVEL:
        out.append(median_value(block, Tie.MIDPOINT))
    return out


def learn(code: str, first: Sequence[Evidence], now: dt.datetime) -> BaselineStat | None:
    """The baseline of ``code`` from the patient's first readings (oldest first), or None
    while still learning (or when it can never be learned from these). Its mean and SD are
    of circadian-adjusted values (:func:`adjusted`)."""
    if not first:
        return None
    start = first[0].measured_at
    if now - start < EARLIEST_LEARN:
        return None
    early = [e for e in first if e.measured_at - start < CONTINUOUS_LEARN_SPAN]
    if len(early) >= CONTINUOUS_LEARN_MIN:
        levels = _levels(early)
        if len(levels) >= LEARN_MIN:
            return BaselineStat(code, statistics.fmean(levels), statistics.pstdev(levels),
                                len(early), early[0].measured_at, early[-1].measured_at)
    if now - start < LEARN_SPAN:
        return None
    window = [e for e in first if e.measured_at - start <= LEARN_SPAN]
    if len(window) < LEARN_MIN:
        window = [e for e in first[:LEARN_MIN] if e.measured_at - start <= LEARN_LIMIT]
        if len(window) < LEARN_MIN:
            return None
    values = [adjusted(e) for e in window]
    return BaselineStat(code, statistics.fmean(values), statistics.pstdev(values), len(values),
                        window[0].measured_at, window[-1].measured_at)


def level(code: str, latest: Latest | None, recent: Sequence[Evidence],
          now: dt.datetime) -> tuple[float, tuple[Evidence, ...]] | None:
    """The current level of ``code`` (raw units, circadian swing *not* removed) and the
    readings behind it (None when unknown)."""
    if type(recent) is Series:  # columns: the same window, bisected
        found = series.level(recent, now, LEVEL_WINDOW, CONTINUOUS_LEVEL)
        if found is not None:
            return found
    else:
        window = [e for e in recent if dt.timedelta(0) <= now - e.measured_at <= LEVEL_WINDOW]
        if len(window) >= CONTINUOUS_LEVEL:
            return median_value((e.value for e in window), Tie.MIDPOINT), (window[0], window[-1])
    if latest is None or now - latest.measured_at > LEVEL_FRESH:
        return None
    return latest.value, (latest.evidence,)


def z_score(code: str, value: float, base: BaselineStat, at: dt.datetime | None = None) -> float:
    """Standardised deviation of ``value`` from ``base`` in the harmful direction; with
    ``at``, the circadian offset expected at that instant is removed from ``value`` first."""
    sd = max(base.sd, SD_FLOOR[code])
    offset = 0.0 if at is None else circadian_offset(code, at)
    return DIRECTION[code] * (value - offset - base.mean) / sd


def combined(zs: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """Stouffer's (weighted) combination of the signs' z, each floored at :data:`Z_CREDIT`:
    ``Σ wᵢzᵢ / √(Σ wᵢ²)`` — standard normal under control whatever the weights."""
    w = [1.0] * len(zs) if weights is None else list(weights)
    norm = math.sqrt(sum(x * x for x in w))
    if not zs or norm == 0.0:
        return 0.0
    return sum(x * max(z, Z_CREDIT) for x, z in zip(w, zs, strict=True)) / norm


def cusum(looks: Sequence[float], k: float = CUSUM_K) -> float:
    """Page's upper tabular CUSUM over ``looks`` (oldest first), started at 0:
    ``C_j = max(0, C_{j−1} + Z_j − k)``; its last value."""
    c = 0.0
    for z in looks:
        c = max(0.0, c + z - k)
    return c


def weight(age: dt.timedelta, *, continuous: bool) -> float:
    """How much a sign's level says about *now*: 1 for a continuous level, falling linearly
    to 0 at :data:`LEVEL_FRESH` for a spot reading (an old set cannot dilute a wearable's
    drift, nor stand in for a new one)."""
    if continuous:
        return 1.0
    return max(0.0, 1.0 - age / LEVEL_FRESH)


_SORTED_CODES: Final = tuple(sorted(CODES))


def _signs(latest: Mapping[str, Latest], recent: Mapping[str, Sequence[Evidence]],
           baselines: Mapping[str, BaselineStat], now: dt.datetime,
           ) -> list[tuple[str, float, float, float, BaselineStat, tuple[Evidence, ...]]]:
    """Each charted sign at ``now``: (code, level, z rounded to 2 places, weight rounded to
    3, baseline, the readings behind the level), in code order."""
    out = []
    for code in _SORTED_CODES:
        base = baselines.get(code)
        if base is None:
            continue
        readings = recent.get(code, ())
        current = latest.get(code)
        history: Sequence[Evidence]
        if type(readings) is Series:
            # Not sliced at `now`: the level bisects at `now` itself (the same readings), so
            # only the fallback below needs the bound (copying the window's columns for each
            # of the hour's looks was most of the rule, issue 14).
            history = readings
            if current is not None and current.measured_at > now:
                end = readings.upto(series.micros(now))
                current = readings.latest(end - 1) if end else None
        else:
            history = tuple(e for e in readings if e.measured_at <= now)
            if current is not None and current.measured_at > now:
                current = next((Latest(e.code, e.measured_at, e.value, e.device_id)
                                for e in reversed(history)), None)
        found = level(code, current, history, now)
        if found is None:
            continue
        value, behind = found
        z = z_score(code, value, base, now)
        if not math.isfinite(z):
            continue
        # level() names two readings (first and last of a window) for a continuous median
        out.append((code, value, round(z, 2),
                    round(weight(now - behind[-1].measured_at, continuous=len(behind) == 2), 3),
                    base, behind))
    return out


def _combined(signs: Sequence[tuple[str, float, float, float, BaselineStat,
                                    tuple[Evidence, ...]]]) -> float:
    return combined([float(s[2]) for s in signs], [float(s[3]) for s in signs])


def _index(latest: Mapping[str, Latest], recent: Mapping[str, Sequence[Evidence]],
           baselines: Mapping[str, BaselineStat], now: dt.datetime,
           ) -> tuple[float, list[dict[str, object]], list[Evidence], bool]:
    """The index at ``now``, each charted sign, the readings behind them, and whether any
    sign's level is a continuous median."""
    signs = _signs(latest, recent, baselines, now)
    charted: list[dict[str, object]] = [
        {"code": code, "level": round(value, 2), "z": z, "weight": w,
         "circadian_offset": round(circadian_offset(code, now), 2),
         "baseline_mean": round(base.mean, 2), "baseline_sd": round(base.sd, 2),
         "baseline_n": base.n, "learned_from": base.from_at.isoformat(),
         "learned_to": base.to_at.isoformat()}
        for code, value, z, w, base, _ in signs]
    evidence = [e for *_, behind in signs for e in behind]
    continuous = any(len(s[5]) == 2 for s in signs)
    return _combined(signs), charted, evidence, continuous


def trend_rule(latest: Mapping[str, Latest], recent: Mapping[str, Sequence[Evidence]],
               baselines: Mapping[str, BaselineStat], now: dt.datetime) -> tuple[Outcome, ...]:
    """Firing when the patient has drifted from their own baseline (a wearable: the CUSUM of
    the hour's looks at or beyond :data:`CUSUM_H`; a spot set: the index beyond
    :data:`Z_LIMIT`); Clear when the index is below :data:`Z_CLEAR`; nothing while learning
    or in between."""
    index, charted, evidence, continuous = _index(latest, recent, baselines, now)
    if not charted:
        return ()
    behind = tuple(sorted(set(evidence)))
    if index < Z_CLEAR:
        return (Clear(Kind.TREND, behind),)
    looks = [index]
    statistic = index
    if continuous:
        for j in range(1, LOOKS):
            # The earlier looks' index only (their charted details are never shown).
            then = _signs(latest, recent, baselines, now - j * LOOK)
            if not then:
                break
            looks.append(_combined(then))
        looks.reverse()
        statistic = cusum(looks)
        if len(looks) < 2 or statistic < CUSUM_H:
            return ()
    elif index < Z_LIMIT:
        return ()
    flagged = [c for c in charted if float(c["z"]) >= 1.0]  # type: ignore[arg-type]
    names = ", ".join(f"{c['code']} {c['level']:g} (own baseline {c['baseline_mean']:g}"
                      f"{_offset(c)}, {float(c['z']):+.1f} SD)"  # type: ignore[arg-type]
                      for c in flagged) or "several signs a little"
    return (Firing(Kind.TREND, Severity.LOW,
                   f"Drifting from own baseline ({_why(index, statistic, continuous)}): {names}",
                   {"charted": charted, "flagged": [c["code"] for c in flagged],
                    "index": round(index, 2),
                    "index_earlier": round(looks[-2] if len(looks) > 1 else index, 2),
                    "looks": [round(z, 2) for z in looks],
                    "cusum": round(statistic, 2) if continuous else None,
                    "cusum_k": CUSUM_K, "cusum_h": CUSUM_H,
                    "z_limit": round(Z_LIMIT, 3), "z_clear": round(Z_CLEAR, 3),
                    "arl0_hours": ARL0_HOURS, "look_min": LOOK.total_seconds() / 60},
                   behind),)


def _why(index: float, statistic: float, continuous: bool) -> str:
    if continuous:
        return (f"index {index:.1f}, CUSUM of the last hour {statistic:.1f} ≥ {CUSUM_H:g}")
    return f"index {index:.1f} ≥ {Z_LIMIT:.2f}"


def _offset(c: Mapping[str, object]) -> str:
    off = float(c["circadian_offset"])  # type: ignore[arg-type]
    return f" {off:+.1f} at this hour" if off else ""
