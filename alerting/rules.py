"""Vital-sign alert rules: each a pure function from plain data to outcomes per alert kind.

Pipeline (Alertmanager-style small stages): the snapshot's latest readings pass the artefact
filter (:mod:`alerting.artefacts`: continuous codes median-filtered, a doubtful spot jump set
aside and reported in :attr:`Evaluation.doubtful`), then become NEWS2 observations
(:mod:`alerting.observations`, stale = missing); the score feeds the NEWS2 and single-parameter
rules; the patient's own baseline feeds the trend rule (:mod:`alerting.trend`); the SpO2 history feeds the falling-SpO2 rule; the care
plan feeds the target and patient-threshold rules; :mod:`alerting.device_rules` adds the timer,
device and infusion rules. A rule returns ``Firing`` or ``Clear`` for its kind, or nothing when
the data cannot decide (missing is never clear).

Decisions that are ours, not the chart's:

* **news2** fires at Chart 2 risk low-medium, medium or high, with that risk as severity; a
  *partial* score still fires (its total is a lower bound) and is marked partial. It is clear
  only on a *complete* low score: a partial low total could hide up to 3 points per missing
  parameter.
* **single_parameter_3** keeps the "single parameter scored 3" flag visible when the total
  already puts the patient at medium or high. At total < 5 the news2 alert *is* the
  low-medium single-3 alert, so this kind is not raised then (inhibited, as Alertmanager would
  say) — one cause, one alert, against alarm fatigue.
* **trend** (which replaced *news2_rising*, a raw rise of the total by 2 in 24 h that fired
  on noise — 0→2 is one artefact — and late on real drifts inside the normal bands): a
  control chart of pulse, respiration rate, temperature and SpO2 against the patient's own
  learned baseline; see :mod:`alerting.trend`.
* **spo2_falling**: ≥ 4 SpO2 readings within 6 h spanning at least
  :data:`SPO2_TREND_MIN_SPAN`, none more than 1 point above its predecessor (oximeters jitter
  by about ±1 %), and a total fall of ≥ 3 points — "falling steadily". The span is what makes
  it a course: a wearable's first four one-a-minute readings are one measurement's noise four
  times (on `noisy-devices` they raised a third of the rule's findings on patients who never
  deteriorated), and once a wearable has an hour of readings its jitter keeps them from
  looking "steady" — its slow fall is the trend rule's (15-min levels on its own baseline).
* **spo2_below_target**: below the care plan's ``spo2_target_low``; by default 94 % on Scale 1
  and 88 % on Scale 2 — the lower ends of the BTS 2017 oxygen-target ranges (94–98 % for most
  acutely ill patients, 88–92 % for those at risk of hypercapnic failure). An earlier default
  of 96 % (where Scale 1 starts to score) repeated what the NEWS2 alert already says and, in a
  replay of the `deteriorations` scenario, made this the noisiest rule (10.6 alerts per
  patient-day) — alarm fatigue is the main failure mode of remote monitoring.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final

from alerting import artefacts, device_rules, observations, series, trend
from alerting.artefacts import Doubt
from alerting.candidates import VITAL_KINDS, Clear, Evidence, Firing, Kind, Outcome, Severity
from alerting.care_plan import CarePlan
from alerting.medians import Tie, median_evidence
from alerting.news2 import News2Score, Parameter, Risk, quantise, score
from alerting.observations import ObservationSet
from alerting.series import Series
from alerting.snapshot import PatientSnapshot, RuleConfig
from ward.domain.vitals import VitalCode

#: Which reading code feeds each NEWS2 parameter.
PARAMETER_CODE: Final[Mapping[Parameter, str]] = MappingProxyType(
    {p: ("on_oxygen" if p is Parameter.AIR_OR_OXYGEN else p.value) for p in Parameter}
)
SPO2_TREND_WINDOW: Final = dt.timedelta(hours=6)  # spans 6 hourly sets at medium risk
SPO2_TREND_MIN_READINGS: Final = 4
SPO2_TREND_JITTER: Final = 1.0  # a pulse oximeter's usual reading-to-reading noise, % points
SPO2_TREND_FALL: Final = 3.0  # % points: one NEWS2 Scale 1 band and more
#: A steady fall must take at least the hourly interval NEWS2 sets for a medium score (Chart 4):
#: readings closer together measure the same saturation again. A spot kit's four readings in
#: 6 h always span more; a wearable's first minutes never do (a warm-up; red values still
#: score on NEWS2 at once).
SPO2_TREND_MIN_SPAN: Final = dt.timedelta(hours=1)
#: Default SpO2 targets when the care plan has none: BTS 2017 target ranges' lower ends.
DEFAULT_SPO2_TARGET_LOW: Final[Mapping[int, float]] = MappingProxyType({1: 94.0, 2: 88.0})
#: A continuous oximeter is below target when its median of this window is (the trend level).
SPO2_TARGET_WINDOW: Final = trend.LEVEL_WINDOW
#: ...an even window's lower middle (unlike the 5-min filter's upper one for SpO2): the upper
#: middle lost a wearable catch before NEWS2 7 on noisy-devices seed 3 (6/6 -> 5/6), measured
#: when the two were made one (commit c877684); the reasons are in `alerting.medians`.
SPO2_TARGET_TIE: Final = Tie.LOWER
#: Staleness for threshold parameters outside NEWS2 (diastolic BP comes with systolic).
OTHER_STALENESS: Final = dt.timedelta(hours=1)
_RISK_LABEL: Final[Mapping[Risk, str]] = MappingProxyType(
    {Risk.LOW: "low", Risk.LOW_MEDIUM: "low–medium", Risk.MEDIUM: "medium", Risk.HIGH: "high"}
)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The result of running every rule over one snapshot."""

    score: News2Score | None  # None when no NEWS2 parameter is fresh
    observation_set: ObservationSet
    outcomes: tuple[Outcome, ...]
    #: Readings set aside as doubtful (not scored): the hook for "repeat the measurement".
    doubtful: tuple[Doubt, ...] = ()
    #: Doubts lapsed with no repeat: scored as measured (``artefacts.DOUBT_LAPSE``).
    lapsed: tuple[Doubt, ...] = ()
    #: Doubts scored at once, their score being red (``artefacts.holds``): a repeat is still
    #: asked for, not waited for.
    urgent: tuple[Doubt, ...] = ()

    def by_kind(self) -> dict[Kind, Outcome]:
        return {o.kind: o for o in self.outcomes}


def _evidence_for(obs_set: ObservationSet, parameters: Collection[Parameter]) -> tuple[Evidence, ...]:
    codes = {PARAMETER_CODE[p] for p in parameters}
    return tuple(e for e in obs_set.used if e.code in codes)


def score_details(result: News2Score) -> dict[str, Any]:
    """The score as JSON-ready details (sub-scores, missing, response, monitoring)."""
    return {
        "total": result.total,
        "risk": result.risk.value,
        "complete": result.complete,
        "any_single_3": result.any_single_3,
        "sub_scores": {p.value: s for p, s in result.sub_scores.items()},
        "missing": sorted(p.value for p in result.missing),
        "response": result.response,
        "monitoring": result.monitoring_frequency,
        "spo2_scale": result.spo2_scale,
    }


def news2_rule(result: News2Score | None, obs_set: ObservationSet) -> tuple[Outcome, ...]:
    if result is None:
        return ()
    if result.risk is not Risk.LOW:
        partial = "" if result.complete else " (partial: lower bound)"
        summary = f"NEWS2 {result.total}{partial} — {_RISK_LABEL[result.risk]} risk: {result.response}"
        return (Firing(Kind.NEWS2, Severity.of_risk(result.risk), summary, score_details(result),
                       obs_set.used, partial=not result.complete),)
    if result.complete:
        return (Clear(Kind.NEWS2, obs_set.used),)
    return ()


def single_parameter_rule(result: News2Score | None, obs_set: ObservationSet) -> tuple[Outcome, ...]:
    if result is None:
        return ()
    threes = [p for p, points in result.sub_scores.items() if points == 3]
    if threes and result.risk in (Risk.MEDIUM, Risk.HIGH):
        names = ", ".join(p.value for p in threes)
        return (Firing(Kind.SINGLE_PARAMETER_3, Severity.LOW_MEDIUM,
                       f"Single parameter scored 3: {names}",
                       {"parameters": [p.value for p in threes], **score_details(result)},
                       _evidence_for(obs_set, threes), partial=not result.complete),)
    if not threes and result.complete:
        return (Clear(Kind.SINGLE_PARAMETER_3, obs_set.used),)
    return ()


def spo2_falling_rule(spo2_history: Sequence[Evidence], now: dt.datetime) -> tuple[Outcome, ...]:
    """``spo2_history`` oldest first (as the snapshot holds it)."""
    window: Sequence[Evidence]
    if type(spo2_history) is Series:  # columns: no Evidence made for the window's reads
        now_us = series.micros(now)
        window = spo2_history[spo2_history.since(now_us - series.span_micros(SPO2_TREND_WINDOW)):
                              spo2_history.upto(now_us)]
        ats, values = window.at, list(window.value)
    else:
        lo = bisect.bisect_left(spo2_history, now - SPO2_TREND_WINDOW,
                                key=lambda e: e.measured_at)
        hi = bisect.bisect_right(spo2_history, now, key=lambda e: e.measured_at)
        window = tuple(spo2_history[lo:hi])
        ats, values = tuple(e.measured_at for e in window), [e.value for e in window]
    if len(window) < SPO2_TREND_MIN_READINGS or ats[-1] - ats[0] < SPO2_TREND_MIN_SPAN:
        return ()
    if not observations.is_fresh("spo2", ats[-1], now):
        return ()
    steady = all(b <= a + SPO2_TREND_JITTER for a, b in itertools.pairwise(values))
    fall = values[0] - values[-1]
    if steady and fall >= SPO2_TREND_FALL:
        return (Firing(Kind.SPO2_FALLING, Severity.LOW,
                       f"SpO2 falling steadily: {values[0]:g} → {values[-1]:g} % over "
                       f"{len(values)} readings",
                       {"from": values[0], "to": values[-1], "readings": len(values)},
                       tuple(window)),)
    # A Clear's readings are never stored (episodes.observe reads its kind only): the window
    # as it is, columns or tuple (they compare equal).
    return (Clear(Kind.SPO2_FALLING, window),)


def spo2_target_rule(obs_set: ObservationSet, plan: CarePlan,
                     recent: Sequence[Evidence] = (), now: dt.datetime | None = None,
                     ) -> tuple[Outcome, ...]:
    """Below the care plan's target. A continuous oximeter is judged on its median reading of
    the last :data:`SPO2_TARGET_WINDOW` (the trend's level), not on the 5-minute median NEWS2
    scores: a wearable on a COPD patient whose normal sits at the bottom of a 88–92 % range
    dips below it for minutes many times a day, and brief dips below a *titration* target are
    not desaturation worth an amber (BTS 2017 oxygen guideline: targets guide titration; the
    alarm-delay evidence: Welch J, *Biomed Instrum Technol* 2011;45 s1:46–52). A real
    desaturation still scores on NEWS2 at once (the 5-minute median). Even window: the *lower*
    middle, unlike the 5-minute filter's upper middle (``artefacts.SAFER_HIGH``), on purpose:
    a tie there is two artefacts of four readings, here it is half of 15 minutes of readings
    low — a sustained desaturation, not an artefact. Measured (branch ``doubt``): taking the
    upper middle here too lost one wearable deterioration's catch before the true NEWS2
    reached 7 on `noisy-devices` seed 3 (6/6 → 5/6) for no fewer false episodes."""
    reading = next((e for e in obs_set.used if e.code == "spo2"), None)
    if reading is None:
        return ()
    if now is not None and type(recent) is Series:  # columns: the same pick, bisected
        now_us = series.micros(now)
        lo = recent.since(now_us - series.span_micros(SPO2_TARGET_WINDOW))
        hi = max(lo, recent.upto(now_us))
        device = recent.device
        indices = [i for i in range(lo, hi) if device[i] == reading.device_id]
        if len(indices) >= trend.CONTINUOUS_LEVEL:
            reading = recent[recent.median_index(indices, SPO2_TARGET_TIE)]
    elif now is not None:
        # `recent` is oldest first: only its last SPO2_TARGET_WINDOW up to `now` is read.
        lo = bisect.bisect_left(recent, now - SPO2_TARGET_WINDOW, key=lambda e: e.measured_at)
        hi = bisect.bisect_right(recent, now, lo=lo, key=lambda e: e.measured_at)
        window = [e for e in recent[lo:hi] if e.device_id == reading.device_id]
        if len(window) >= trend.CONTINUOUS_LEVEL:
            reading = median_evidence(window, SPO2_TARGET_TIE)
    target = plan.spo2_target_low
    source = "care plan"
    if target is None:
        target = DEFAULT_SPO2_TARGET_LOW[plan.spo2_scale]
        source = f"default for Scale {plan.spo2_scale}"
    value = float(quantise(Parameter.SPO2, reading.value))
    if value < target:
        return (Firing(Kind.SPO2_BELOW_TARGET, Severity.LOW,
                       f"SpO2 {value:g} % below target {target:g} % ({source})",
                       {"spo2": value, "target_low": target, "target_source": source,
                        "spo2_scale": plan.spo2_scale}, (reading,)),)
    return (Clear(Kind.SPO2_BELOW_TARGET, (reading,)),)


def threshold_rule(snapshot: PatientSnapshot, now: dt.datetime) -> tuple[Outcome, ...]:
    thresholds = snapshot.care_plan.thresholds
    if not thresholds:
        return ()
    breaches: list[dict[str, Any]] = []
    evidence: list[Evidence] = []
    all_fresh = True
    for parameter, threshold in thresholds.items():
        latest = snapshot.latest.get(parameter)
        window = observations.STALENESS.get(VitalCode(parameter), OTHER_STALENESS)
        if latest is None or now - latest.measured_at > window:
            all_fresh = False
            continue
        evidence.append(latest.evidence)
        low_breach = threshold.low is not None and latest.value < threshold.low
        high_breach = threshold.high is not None and latest.value > threshold.high
        if low_breach or high_breach:
            breaches.append({"parameter": parameter, "value": latest.value, "low": threshold.low,
                             "high": threshold.high, "by": threshold.by,
                             "reason": threshold.reason, "severity": threshold.severity.value})
    if breaches:
        severity = max((Severity(b["severity"]) for b in breaches), key=lambda s: s.rank)
        names = ", ".join(f"{b['parameter']} {b['value']:g}" for b in breaches)
        return (Firing(Kind.THRESHOLD, severity, f"Outside the patient's own thresholds: {names}",
                       {"breaches": breaches}, tuple(sorted(evidence))),)
    if all_fresh:
        return (Clear(Kind.THRESHOLD, tuple(sorted(evidence))),)
    return ()


def evaluate(snapshot: PatientSnapshot, now: dt.datetime, config: RuleConfig | None = None,
             *, kinds: Collection[Kind] | None = None) -> Evaluation:
    """Run every rule (or only those producing ``kinds``) over ``snapshot`` at ``now``."""
    config = config or RuleConfig()
    plan = snapshot.care_plan
    filtered = artefacts.apply(snapshot.latest, snapshot.recent, now,
                               spo2_scale=plan.spo2_scale)
    # Only the threshold rule reads the filtered snapshot, and only with thresholds set
    # (rebuilding the snapshot per patient was a few % of a pass, issue 14).
    seen = replace(snapshot, latest=filtered.latest) if plan.thresholds else snapshot
    doubted = {d.reading for d in filtered.doubtful}
    obs_set = observations.build(filtered.latest, now, spo2_scale=plan.spo2_scale)
    result = score(obs_set.observations) if obs_set.used else None
    vital = kinds is None or not VITAL_KINDS.isdisjoint(kinds)  # a timer sweep skips them
    spo2 = snapshot.spo2_history
    outcomes: list[Outcome] = [] if not vital else [
        *news2_rule(result, obs_set),
        *single_parameter_rule(result, obs_set),
        *trend.trend_rule(filtered.latest, snapshot.recent, snapshot.baselines, now),
        *spo2_falling_rule(tuple(e for e in spo2 if e not in doubted) if doubted else spo2, now),
        *spo2_target_rule(obs_set, plan, snapshot.recent.get("spo2", ()), now),
        *threshold_rule(seen, now),
    ]
    outcomes += [
        *device_rules.overdue_rule(snapshot, result, now, config),
        *device_rules.device_rules(snapshot, now, config),
        *device_rules.infusion_rules(snapshot, now, config),
    ]
    if kinds is not None:
        wanted = set(kinds)
        outcomes = [o for o in outcomes if o.kind in wanted]
    return Evaluation(result, obs_set, tuple(outcomes), filtered.doubtful, filtered.lapsed,
                      filtered.urgent)
