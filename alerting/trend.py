"""Trends on the patient's own baseline: learn each patient's normal, flag a drift from it.

Fixed population thresholds (NEWS2) fire late for a patient whose normal is far inside them: a
pulse going from 62 to 88 scores nothing. Personalised models of each patient's own vital signs
detect deterioration earlier and with fewer false alerts than fixed thresholds (Tarassenko L et
al., *Br J Anaesth* 2006;97:64–68; Clifton L et al., *IEEE J Biomed Health Inform*
2014;18:722–730, on patient-specific models). The method here is the classical control chart (Shewhart; Montgomery DC,
*Introduction to Statistical Quality Control*, ch. 6), run per patient and parameter:

* **Learning** (:func:`learn`): the baseline of a code is the mean and standard deviation of
  the patient's readings over the first :data:`LEARN_SPAN` from their first reading (at least
  :data:`LEARN_MIN` readings; a spot-check patient short of that within the span uses their
  first :data:`LEARN_MIN` readings if those fall within :data:`LEARN_LIMIT`). Learned once,
  stored, never updated: a baseline that followed the patient would learn the deterioration.
  The SD is floored (:data:`SD_FLOOR`) at the normal within-day variability of each sign, so a
  patient whose first hours were unusually flat does not alarm on the afternoon's circadian
  rise (pulse ±5/min, temperature ±0.3 °C peak to trough, respiration ±2/min).
* **Level**: for a continuous device the median of the last :data:`LEVEL_WINDOW` (≥
  :data:`CONTINUOUS_LEVEL` readings; the median of 10–15 one-a-minute readings is steady to
  well under a beat a minute, and a shorter window lags a real rise less than an hour's
  median, which trailed the true course by about half an hour); for a spot device the latest
  accepted reading.
* **Chart**: each sign's deviation in its harmful direction, in baseline SDs (z). The finding
  fires when at least two signs are beyond :data:`Z_TWO` together (deterioration moves several
  signs at once; two correlated 2.5-SD excursions by chance are rare), or one sign beyond
  :data:`Z_ONE`. It is *amber* (:attr:`Severity.LOW`): a prompt to look and to ask for a full
  set, not an emergency; NEWS2 still decides the band. The evidence shown is the baseline,
  the level, z and the readings behind them.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from alerting.candidates import Clear, Evidence, Firing, Kind, Outcome, Severity
from alerting.observations import Latest
from alerting.snapshot import BaselineStat

#: Harmful direction of each charted sign (+1: higher is worse).
DIRECTION: Final[Mapping[str, int]] = MappingProxyType(
    {"pulse": 1, "resp_rate": 1, "temperature": 1, "spo2": -1})
CODES: Final = frozenset(DIRECTION)
LEARN_SPAN: Final = dt.timedelta(hours=6)
LEARN_LIMIT: Final = dt.timedelta(hours=24)
LEARN_MIN: Final = 3
SD_FLOOR: Final[Mapping[str, float]] = MappingProxyType(
    {"pulse": 5.0, "resp_rate": 2.0, "temperature": 0.3, "spo2": 1.5})
CONTINUOUS_LEVEL: Final = 10
LEVEL_WINDOW: Final = dt.timedelta(minutes=15)
Z_TWO: Final = 2.5
Z_ONE: Final = 4.0
#: A level older than this no longer describes the patient (one low-risk observation cycle).
LEVEL_FRESH: Final = dt.timedelta(hours=4)


def learn(code: str, first: Sequence[Evidence], now: dt.datetime) -> BaselineStat | None:
    """The baseline of ``code`` from the patient's first readings (oldest first), or None
    while still learning (or when it can never be learned from these)."""
    if not first:
        return None
    start = first[0].measured_at
    if now - start < LEARN_SPAN:
        return None
    window = [e for e in first if e.measured_at - start <= LEARN_SPAN]
    if len(window) < LEARN_MIN:
        window = [e for e in first[:LEARN_MIN] if e.measured_at - start <= LEARN_LIMIT]
        if len(window) < LEARN_MIN:
            return None
    values = [e.value for e in window]
    return BaselineStat(code, statistics.fmean(values), statistics.pstdev(values), len(values),
                        window[0].measured_at, window[-1].measured_at)


def level(code: str, latest: Latest | None, recent: Sequence[Evidence],
          now: dt.datetime) -> tuple[float, tuple[Evidence, ...]] | None:
    """The current level of ``code`` and the readings behind it (None when unknown)."""
    window = [e for e in recent if dt.timedelta(0) <= now - e.measured_at <= LEVEL_WINDOW]
    if len(window) >= CONTINUOUS_LEVEL:
        values = sorted(e.value for e in window)
        return statistics.median(values), (window[0], window[-1])
    if latest is None or now - latest.measured_at > LEVEL_FRESH:
        return None
    return latest.value, (latest.evidence,)


def z_score(code: str, value: float, base: BaselineStat) -> float:
    sd = max(base.sd, SD_FLOOR[code])
    return DIRECTION[code] * (value - base.mean) / sd


def trend_rule(latest: Mapping[str, Latest], recent: Mapping[str, tuple[Evidence, ...]],
               baselines: Mapping[str, BaselineStat], now: dt.datetime) -> tuple[Outcome, ...]:
    """Firing when the patient has drifted from their own baseline; Clear when every
    charted sign with a baseline is known and within it; nothing while learning."""
    charted: list[dict[str, object]] = []
    evidence: list[Evidence] = []
    flagged: list[tuple[str, float]] = []
    for code in sorted(CODES):
        base = baselines.get(code)
        if base is None:
            continue
        found = level(code, latest.get(code), recent.get(code, ()), now)
        if found is None:
            continue
        value, behind = found
        z = z_score(code, value, base)
        if not math.isfinite(z):
            continue
        charted.append({"code": code, "level": round(value, 2), "z": round(z, 2),
                        "baseline_mean": round(base.mean, 2), "baseline_sd": round(base.sd, 2),
                        "baseline_n": base.n, "learned_from": base.from_at.isoformat(),
                        "learned_to": base.to_at.isoformat()})
        evidence.extend(behind)
        if z >= Z_TWO:
            flagged.append((code, z))
    if not charted:
        return ()
    firing = len(flagged) >= 2 or any(z >= Z_ONE for _, z in flagged)
    if firing:
        names = ", ".join(f"{c['code']} {c['level']:g} (own baseline {c['baseline_mean']:g}, "
                          f"{c['z']:+.1f} SD)" for c in charted if c["code"] in dict(flagged))
        return (Firing(Kind.TREND, Severity.LOW, f"Drifting from own baseline: {names}",
                       {"charted": charted, "flagged": [c for c, _ in flagged],
                        "z_two": Z_TWO, "z_one": Z_ONE}, tuple(sorted(set(evidence)))),)
    return (Clear(Kind.TREND, tuple(sorted(set(evidence)))),)
