"""The virtual-ward risk tier (low / rising / high): a points table anyone can check.

Why: the hub ordered patients only by the NEWS2 band of the moment. The tier adds what a
single score cannot see - where NEWS2 is heading, how far the patient is from their own early
values, whether the sets are arriving, and their readmission risk - and says why, factor by
factor, with the points each one gave. It is a transparent heuristic, not a validated
clinical instrument: its weights are ours (below, one table) and are measured, not fitted,
by `benchmarks/bench_risk.py`.

Factors (each gives 0..max points; the tier is set by the sum):

* **NEWS2 now** - the latest stored total (5+ is the chart's urgent-response threshold).
* **NEWS2 trajectory** - mean of the last 24 h minus mean of the 24-72 h before it.
* **Own baseline** - mean of the last 12 h minus the mean of the patient's first 24 h of
  stored scores. This is a small measure of our own from stored scores; the episodes work
  builds a fuller per-patient baseline trend detector in `alerting/`, which may replace it.
* **Completeness / adherence** - sets received in the last 24 h against sets expected
  (missed or overdue sets are a risk signal, never "no news"), partial sets counting half.
* **Readmission score** - LACE >= 10 or HOSPITAL high (>= 7): 2; LACE 5-9 or HOSPITAL
  intermediate (5-6): 1 (the published bands).
* **Pathway** - step-up (admitted from the community instead of hospital) 1, step-down 0.

Must never do I/O, read a clock, or log: `now` is a parameter.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Final

from alerting import hospital_score


class Tier(enum.StrEnum):
    LOW = "low"
    RISING = "rising"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return TIER_ORDER.index(self)


TIER_ORDER: Final = (Tier.LOW, Tier.RISING, Tier.HIGH)

# Windows. 24 h and 72 h are the brief's trajectory horizon; 12 h "recent" keeps the baseline
# comparison about today while still averaging several spot checks.
RECENT: Final = dt.timedelta(hours=24)
TRAJECTORY_SPAN: Final = dt.timedelta(hours=72)
BASELINE_RECENT: Final = dt.timedelta(hours=12)
BASELINE_SPAN: Final = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Step:
    """`points` when the measured value is at least `at_least`."""

    at_least: float
    points: int


# THE weights table: factor -> steps (highest first). Shown on screen as it stands here.
WEIGHTS: Final[dict[str, tuple[Step, ...]]] = {
    # NEWS2 7+ gives the "high" cut-off by itself: a patient in the chart's high band is never
    # placed below "high"; 5-6 gives "rising" by itself.
    "news2_now": (Step(7, 6), Step(5, 3), Step(3, 1)),
    "trajectory": (Step(2.0, 3), Step(1.0, 2), Step(0.5, 1)),
    "baseline": (Step(3.0, 3), Step(2.0, 2), Step(1.0, 1)),
    # Value: share of the expected sets missed in the last 24 h (0..1).
    "completeness": (Step(0.5, 2), Step(0.25, 1)),
    # Value: 2 = published high band, 1 = intermediate (computed below).
    "readmission": (Step(2, 2), Step(1, 1)),
    "pathway": (Step(1, 1),),
}
LABELS: Final[dict[str, str]] = {
    "news2_now": "NEWS2 now",
    "trajectory": "NEWS2 trajectory (last 24 h vs 24-72 h before)",
    "baseline": "Own baseline (last 12 h vs first 24 h on the ward)",
    "completeness": "Missed sets (last 24 h)",
    "readmission": "Readmission score (LACE / HOSPITAL)",
    "pathway": "Pathway",
}
# Tier cut-offs on the summed points. "high" needs 6: NEWS2 7+ alone, or e.g. NEWS2 5+ (3)
# with a rising trend (2+) and one more signal; "rising" needs 3: any one strong signal, or
# two or three weak ones.
HIGH_FROM: Final = 6
RISING_FROM: Final = 3
LACE_HIGH: Final = 10  # the threshold the LACE literature uses for "high risk"
LACE_MEDIUM: Final = 5


@dataclass(frozen=True)
class ScorePoint:
    at: dt.datetime
    total: int
    complete: bool = True


@dataclass(frozen=True)
class RiskInputs:
    scores: Sequence[ScorePoint]  # stored NEWS2 scores, any order
    expected_sets_24h: int  # sets the monitoring plan asked for over the last 24 h
    lace: int | None = None
    hospital: int | None = None
    step_up: bool | None = None


@dataclass(frozen=True)
class Contribution:
    factor: str
    label: str
    value: float | None  # None: not enough data (gives 0 points, said so)
    points: int
    max_points: int
    detail: str


@dataclass(frozen=True)
class Assessment:
    tier: Tier
    points: int
    contributions: tuple[Contribution, ...]
    at: dt.datetime


def points_for(factor: str, value: float | None) -> int:
    if value is None:
        return 0
    return next((s.points for s in WEIGHTS[factor] if value >= s.at_least), 0)


def tier_of(points: int) -> Tier:
    if points >= HIGH_FROM:
        return Tier.HIGH
    return Tier.RISING if points >= RISING_FROM else Tier.LOW


def _mean(points: Sequence[ScorePoint]) -> float | None:
    return fmean(p.total for p in points) if points else None


def _within(points: Sequence[ScorePoint], start: dt.datetime, end: dt.datetime,
            ) -> list[ScorePoint]:
    return [p for p in points if start < p.at <= end]


def readmission_band(lace: int | None, hospital: int | None) -> int | None:
    """2 = high, 1 = intermediate, 0 = low by the published bands; None when neither known."""
    if lace is None and hospital is None:
        return None
    bands = [0]
    if lace is not None:
        bands.append(2 if lace >= LACE_HIGH else 1 if lace >= LACE_MEDIUM else 0)
    if hospital is not None:
        risk = hospital_score.risk_of(hospital)
        bands.append({hospital_score.HospitalRisk.HIGH: 2,
                      hospital_score.HospitalRisk.INTERMEDIATE: 1}.get(risk, 0))
    return max(bands)


def _fmt(value: float | None, unit: str = "") -> str:
    return "not enough data" if value is None else f"{value:+.1f}{unit}"


def assess(inputs: RiskInputs, now: dt.datetime) -> Assessment:
    """The tier at `now` and every factor's contribution to it."""
    past = sorted((p for p in inputs.scores if p.at <= now), key=lambda p: p.at)
    latest = past[-1] if past else None
    recent = _within(past, now - RECENT, now)
    before = _within(past, now - TRAJECTORY_SPAN, now - RECENT)
    values: dict[str, tuple[float | None, str]] = {}
    values["news2_now"] = ((float(latest.total), f"latest total {latest.total}")
                           if latest else (None, "no stored score"))
    r_mean, b_mean = _mean(recent), _mean(before)
    trend = None if r_mean is None or b_mean is None else r_mean - b_mean
    values["trajectory"] = (trend, "no earlier scores to compare" if trend is None else
                            f"mean {r_mean:.1f} vs {b_mean:.1f} before ({_fmt(trend)})")
    baseline: float | None = None
    detail = "fewer than 36 h of scores"
    if past and now - past[0].at >= BASELINE_SPAN + BASELINE_RECENT:
        first = [p for p in past if p.at < past[0].at + BASELINE_SPAN]
        last = _within(past, now - BASELINE_RECENT, now)
        f_mean, l_mean = _mean(first), _mean(last)
        if f_mean is not None and l_mean is not None:
            baseline = l_mean - f_mean
            detail = f"mean {l_mean:.1f} vs own first-24 h {f_mean:.1f} ({_fmt(baseline)})"
    values["baseline"] = (baseline, detail)
    if inputs.expected_sets_24h > 0:
        received = sum(1.0 if p.complete else 0.5 for p in recent)
        missed = max(0.0, 1.0 - received / inputs.expected_sets_24h)
        values["completeness"] = (missed, f"{received:g} of {inputs.expected_sets_24h} "
                                          f"expected sets ({missed:.0%} missed)")
    else:
        values["completeness"] = (None, "no monitoring plan yet")
    band = readmission_band(inputs.lace, inputs.hospital)
    parts = [f"LACE {inputs.lace}" if inputs.lace is not None else "LACE not entered",
             f"HOSPITAL {inputs.hospital}" if inputs.hospital is not None
             else "HOSPITAL not entered"]
    values["readmission"] = (None if band is None else float(band), ", ".join(parts))
    values["pathway"] = ((None, "pathway unknown") if inputs.step_up is None else
                         (1.0 if inputs.step_up else 0.0,
                          "step-up" if inputs.step_up else "step-down"))
    contributions = tuple(
        Contribution(factor=f, label=LABELS[f], value=v, points=points_for(f, v),
                     max_points=WEIGHTS[f][0].points, detail=d)
        for f, (v, d) in values.items())
    total = sum(c.points for c in contributions)
    return Assessment(tier=tier_of(total), points=total, contributions=contributions, at=now)


def changed(previous: Tier | None, current: Tier) -> bool:
    """A tier change worth recording (the first assessment is one too)."""
    return previous is not current
