"""Artefacts: what the rules see of a reading, before they see it.

Home monitoring is noisy: a wearable oximeter reads through motion, cold fingers and a loose
probe, and most false alarms of continuous monitors are single-sample artefacts shorter than a
minute or two (Drew BJ et al., *PLoS One* 2014;9:e110274; Imhoff M, Kuhls S, *Anesth Analg*
2006;102:1525–1532). Two stages, both pure:

* **Continuous readings are median-filtered.** When a device sends a code at least
  :data:`CONTINUOUS_MIN` times within :data:`MEDIAN_WINDOW` (a wearable at one a minute), the
  rules see the *median reading* of that device's last :data:`MEDIAN_WINDOW` instead of its
  newest: a single outlier never reaches a rule, a real change does within half the window.
  The median is one of the actual readings, so the evidence stays a real, traceable reading.
  For an even window (a reading lost to a malformed message or a gap) it is the middle reading
  on the *less harmful* side for a code harmful in one direction only (SpO2: the upper middle,
  :data:`SAFER_HIGH`), the lower middle otherwise (the tie rules are named, with their
  reasons, in :mod:`alerting.medians`): a harmful value then reaches the rules only
  when a strict majority of the window holds it — the persistence the median is there for.
  Taking the lower middle let two artefacts of four readings through as the scored SpO2:
  replayed on `noisy-devices` (seed 1, before this change) 5 of the 6 SpO2-led NEWS2 findings
  of patients who never deteriorated were exactly that. Median filtering as a pre-processor for limit
  alarms cut false alarms by roughly a third to two thirds without missing true events in
  Mäkivirta A et al., *Comput Methods Programs Biomed* 1991;34:139–144; 5 readings (5 min)
  is the persistence that SpO2 alarm-delay studies found removes most brief desaturation
  artefacts (Welch J, *Biomed Instrum Technol* 2011;45 s1:46–52).
* **A single implausible jump from a spot device is doubtful.** A spot SpO2 at least
  :data:`SPOT_JUMP` points below the patient's previous reading, with nothing else in the set
  getting worse (pulse, respiration rate, temperature unchanged within :data:`CORROBORATION`),
  is what a probe artefact looks like: physiology rarely moves one sign alone that far. Such a
  reading is **not scored** (unless its score is red, below): the rules see the previous
  reading (while it is fresh) and the reading is returned as a :class:`Doubt`, the hook for asking the patient to repeat the set
  (``alerting.rules.Evaluation.doubtful``). The next reading confirms or refutes it: a repeat
  close to the doubtful value is no longer a jump from its predecessor, so it counts.
  **The doubt lapses** :data:`DOUBT_LAPSE` (30 min) after the reading was measured — the due
  time of the repeat it asks for (``alerting.requests.RequestConfig.answer_within``). From then
  on, with no repeat, the reading is scored *as measured* (:attr:`Filtered.lapsed`): a reading
  nobody confirmed or refuted must never be read as normal, and a repeat may never be asked
  for (at night, within a request's cooldown, or when the patient does not answer). Because a
  lapse is a change that time alone makes, the scheduler's sweep re-runs the vital rules of a
  patient whose doubt lapsed after their last stored score (:func:`unscored_lapse`), so the
  alert appears without waiting for a new reading.
  A spot (carer-counted) respiration rate of :data:`RR_RED` or less — NEWS2's red band,
  3 points alone — is doubtful the same way when the patient's previous count was at least
  :data:`RR_PREVIOUS_AT_LEAST` (inside NEWS2's normal band, 12–20) and nothing in the set
  corroborates it (:data:`RR_LOW_CORROBORATION`: SpO2 down or consciousness no longer Alert —
  what opioid toxicity or hypercapnic narcosis, the causes of a real bradypnoea, bring with
  them; a red respiration rate in the same set likewise corroborates a SpO2 jump). A carer
  counts breaths over 30–60 s, and a count over 15 s times four, a pause, or
  counting exhalations only halves the rate; a slow count on its own is far more often a
  miscount than a patient's breathing halving with no other sign changing (respiratory-rate
  counting error: Lovett PB et al., *Ann Emerg Med* 2005;45:68–76; Kallioinen N et al.,
  *J Adv Nurs* 2021;77:98–124, a systematic review of manual counting error). It asks for a
  repeat, and lapses (below) like any doubt.
  A low perfusion index (< :data:`LOW_PERFUSION` %, sent by the oximeter as code
  ``perfusion_index`` with the same instant) marks its SpO2 doubtful too: below about 0.3–0.4 %
  oximeter readings become unreliable (Lima AP et al., *Crit Care Med* 2002;30:1210–1213).
* **A doubt never holds back a red score** (:func:`holds`). NEWS2 asks for an *urgent*
  response to any single parameter scoring 3 or an aggregate of 5 or more (RCP, *National
  Early Warning Score (NEWS) 2*, 2017, Chart 2: "key threshold for urgent response" at 5–6,
  "urgent ward-based response" at a single red score), so a doubt holds its reading back only
  while the score counted *with* the reading — every other parameter as the rules see it —
  stays at 4 or less with no parameter scoring 3: NEWS2's low band, where the chart's response
  is a ward-based one on the next round and waiting up to :data:`DOUBT_LAPSE` for a repeat
  costs nothing the chart asks for. Otherwise the reading is scored at once
  (:attr:`Filtered.urgent`) and the repeat is still asked for: asking for a repeat is fine,
  waiting for it is not. The rule is the strict one: the doubtful parameter's own 3 counts
  too. So a carer's count of 8 or less (3 points alone) is never held, only re-asked; nor is
  a spot SpO2 of 91 % or less on Scale 1. The narrower variant measured against it (hold
  unless the aggregate is 5 or more or *another* parameter scores 3) and the figures of both
  are in ``docs/architecture.md`` (the alert model, artefacts).

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from alerting import news2
from alerting.candidates import Evidence
from alerting.medians import Tie, median_evidence
from alerting.observations import Latest, build, is_fresh
from alerting.series import Series, window_level

#: Codes filtered when continuous (those a wearable sends).
FILTERED: Final = frozenset({"spo2", "pulse", "resp_rate"})
#: Filtered codes harmful in one direction only, low (NEWS2 scores SpO2 low only; pulse and
#: respiration rate score both ways): an even window's median is their upper middle.
SAFER_HIGH: Final = frozenset({"spo2"})
MEDIAN_WINDOW: Final = dt.timedelta(minutes=5)
#: Readings within the window that make a device "continuous" (3 = at least one a 2 minutes).
CONTINUOUS_MIN: Final = 3
#: A fall this large (SpO2 % points) between two spot readings is implausible on its own: it
#: crosses two NEWS2 Scale 1 bands, and oximeters are accurate to about ±2 % (ISO 80601-2-61).
SPOT_JUMP: Final[Mapping[str, float]] = MappingProxyType({"spo2": 4.0})
#: A change in the harmful direction this large in another sign corroborates the jump:
#: about twice each measurement's own noise (pulse ±5/min, carer-counted RR ±2/min,
#: thermometer ±0.2 °C).
CORROBORATION: Final[Mapping[str, float]] = MappingProxyType(
    {"pulse": 10.0, "resp_rate": 3.0, "temperature": 0.4})
#: Harmful direction per code: +1 when higher is worse.
DIRECTION: Final[Mapping[str, int]] = MappingProxyType(
    {"spo2": -1, "pulse": 1, "resp_rate": 1, "temperature": 1, "consciousness": 1})
#: A corroborating reading must belong to the same set: within an hour of the doubtful one
#: (a spot check's devices are used one after another, within minutes).
SAME_SET: Final = dt.timedelta(hours=1)
#: The previous reading is compared only while it still describes the patient (a day).
PREVIOUS_WITHIN: Final = dt.timedelta(hours=24)
LOW_PERFUSION: Final = 0.4
#: A spot respiration rate at or below this scores NEWS2 3 on its own (≤ 8/min).
RR_RED: Final = 8.0
#: ...and is doubtful only after a previous count in NEWS2's normal band (12–20/min): a fall
#: of at least 4 breaths/min across two bands, twice a carer's counting noise (±2/min).
RR_PREVIOUS_AT_LEAST: Final = 12.0
#: What corroborates a slow count (same set, change in the harmful direction this large):
#: SpO2 down a band (3 points) or consciousness no longer Alert (ACVPU ordinal up by 1; a
#: set that is not Alert corroborates even with no earlier one charted).
RR_LOW_CORROBORATION: Final[Mapping[str, float]] = MappingProxyType(
    {"spo2": 3.0, "consciousness": 1.0})
#: A doubt holds a reading back at most this long after it was measured: the due time of the
#: repeat it asks for (``alerting.requests.RequestConfig.answer_within``, 30 min; a test holds
#: them equal). Why that bound: a patient with the kit at hand repeats a set in 5-10 min, so a
#: repeat not in by then is not coming; 30 min is also NEWS2's window for an urgent
#: assessment at medium risk. The price: a real fall that looked like an artefact and was never
#: repeated alerts at most this (plus one sweep) late, instead of never — and only a fall whose
#: score stays in NEWS2's low band: a red one is scored at once (:func:`holds`).
DOUBT_LAPSE: Final = dt.timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Doubt:
    """A reading the rules did not score, and why: the hook for "repeat the measurement"."""

    code: str
    reading: Evidence
    reason: str
    previous: Evidence | None = None

    @property
    def lapses_at(self) -> dt.datetime:
        """When the doubt lapses and the reading is scored as measured (:data:`DOUBT_LAPSE`)."""
        return self.reading.measured_at + DOUBT_LAPSE

    def as_json(self) -> dict[str, object]:
        return {"code": self.code, "reading": self.reading.as_json(), "reason": self.reason,
                "previous": None if self.previous is None else self.previous.as_json(),
                "lapses_at": self.lapses_at.isoformat()}


@dataclass(frozen=True, slots=True)
class Filtered:
    """The latest readings as the rules should see them, and the doubtful ones left out."""

    latest: Mapping[str, Latest]
    doubtful: tuple[Doubt, ...] = ()
    #: Codes whose value is a median of a continuous device's window.
    medians: frozenset[str] = frozenset()
    #: Doubts that lapsed with no repeat (:data:`DOUBT_LAPSE`): their readings *are* scored.
    lapsed: tuple[Doubt, ...] = ()
    #: Doubts scored at once because the score with their reading is red (:func:`holds`):
    #: a repeat is still asked for, but not waited for.
    urgent: tuple[Doubt, ...] = ()


def _as_latest(e: Evidence) -> Latest:
    return Latest(e.code, e.measured_at, e.value, e.device_id)


def tie_for(code: str) -> Tie:
    """The 5-min filter's tie rule for ``code``: :attr:`Tie.UPPER` for a code in
    :data:`SAFER_HIGH` (SpO2: a low value counts only when a strict majority of the window
    holds it), :attr:`Tie.LOWER` otherwise (harmful both ways: neither middle is safer)."""
    return Tie.UPPER if code in SAFER_HIGH else Tie.LOWER


def level_reading(code: str, window: list[Evidence]) -> Evidence:
    """The median reading of ``code``'s ``window`` in the 5-min filter (:func:`tie_for`)."""
    return median_evidence(window, tie_for(code))


def _window(history: Sequence[Evidence], newest: Latest) -> list[Evidence]:
    """The device's readings in the window before ``newest`` (history is oldest first)."""
    start, end = newest.measured_at - MEDIAN_WINDOW, newest.measured_at
    out = []
    for e in reversed(history):
        if e.measured_at <= start:
            break
        if e.measured_at <= end and e.device_id == newest.device_id:
            out.append(e)
    return out


def _corroborated(code: str, reading: Evidence, latest: Mapping[str, Latest],
                  recent: Mapping[str, Sequence[Evidence]],
                  margins: Mapping[str, float] = CORROBORATION) -> bool:
    for other, margin in margins.items():
        now = latest.get(other)
        if other == code or now is None or abs(now.measured_at - reading.measured_at) > SAME_SET:
            continue
        before = [e for e in recent.get(other, ()) if e.measured_at < now.measured_at - SAME_SET]
        if not before:
            continue
        if DIRECTION[other] * (now.value - before[-1].value) >= margin:
            return True
    return False


def _previous(code: str, newest: Latest,
              recent: Mapping[str, Sequence[Evidence]]) -> Evidence | None:
    earlier = [e for e in recent.get(code, ()) if e.measured_at < newest.measured_at
               and newest.measured_at - e.measured_at <= PREVIOUS_WITHIN]
    return earlier[-1] if earlier else None


def _slow_breathing(reading: Evidence, latest: Mapping[str, Latest]) -> bool:
    """A respiration rate in the red band in the same set corroborates a SpO2 fall (the two
    come together in opioid toxicity or hypercapnic narcosis), and vice versa."""
    rr = latest.get("resp_rate")
    return rr is not None and rr.value <= RR_RED \
        and abs(rr.measured_at - reading.measured_at) <= SAME_SET


def _slow_count(newest: Latest, latest: Mapping[str, Latest],
                recent: Mapping[str, Sequence[Evidence]]) -> Doubt | None:
    """A single spot respiration rate in NEWS2's red band after a normal count, alone."""
    reading = newest.evidence
    if reading.value > RR_RED:
        return None
    previous = _previous("resp_rate", newest, recent)
    if previous is None or previous.value < RR_PREVIOUS_AT_LEAST:
        return None
    acvpu = latest.get("consciousness")
    if acvpu is not None and acvpu.value > 0 \
            and abs(acvpu.measured_at - reading.measured_at) <= SAME_SET:
        return None  # not Alert in the same set: corroborated whatever was charted before
    if _corroborated("resp_rate", reading, latest, recent, RR_LOW_CORROBORATION):
        return None
    return Doubt("resp_rate", reading, f"respiration rate {previous.value:g} → "
                 f"{reading.value:g}/min with SpO2 and consciousness unchanged: a miscount "
                 "until repeated", previous)


def _spot_doubt(code: str, newest: Latest, latest: Mapping[str, Latest],
                recent: Mapping[str, Sequence[Evidence]]) -> Doubt | None:
    reading = newest.evidence
    pi = latest.get("perfusion_index")
    if code == "spo2" and pi is not None and pi.measured_at == newest.measured_at \
            and pi.device_id == newest.device_id and pi.value < LOW_PERFUSION:
        return Doubt(code, reading, f"perfusion index {pi.value:g} % below {LOW_PERFUSION:g} %")
    if code == "resp_rate":
        return _slow_count(newest, latest, recent)
    jump = SPOT_JUMP.get(code)
    if jump is None:
        return None
    previous = _previous(code, newest, recent)
    if previous is None:
        return None
    if DIRECTION[code] * (reading.value - previous.value) < jump:
        return None
    if _corroborated(code, reading, latest, recent) or _slow_breathing(reading, latest):
        return None
    return Doubt(code, reading, f"{code} {previous.value:g} → {reading.value:g} with nothing "
                 "else in the set worse: a probe artefact until repeated", previous)


def unscored_lapse(lapsed: Sequence[Doubt], scored_at: dt.datetime | None) -> bool:
    """Whether a doubt in ``lapsed`` lapsed after ``scored_at`` (the patient's last stored
    score, None if none): then no evaluation has scored its reading yet, and the timer sweep
    runs the vital rules for the patient (``alerting.runner``, ``alerting.replay``). A stored
    score at or after the lapse ends it, so a patient is re-run only until their rules have
    seen the reading (at most ``alerting.runner.SCORE_EVERY`` when the score is unchanged)."""
    return any(scored_at is None or scored_at < d.lapses_at for d in lapsed)


def holds(result: news2.News2Score) -> bool:
    """Whether a doubt may hold its reading back, ``result`` being the score counted *with*
    the doubtful reading: only in NEWS2's low band — total ≤ 4 and no single parameter 3
    (RCP NEWS2 2017, Chart 2: a single 3 or a total ≥ 5 needs an urgent response, which may
    not wait for a repeat). See the module doc."""
    return result.risk is news2.Risk.LOW


def apply(latest: Mapping[str, Latest], recent: Mapping[str, Sequence[Evidence]],
          now: dt.datetime | None = None, *, spo2_scale: int = 1) -> Filtered:
    """Median-filter continuous codes; set doubtful spot readings aside until their doubt
    lapses at ``now`` (None: never — a caller without a clock, e.g. a what-if view), unless
    the score with the reading, on ``spo2_scale``, is red (:func:`holds`): then it is scored
    at once."""
    out = dict(latest)
    doubts: list[Doubt] = []
    lapsed: list[Doubt] = []
    medians: set[str] = set()
    for code, newest in latest.items():
        history = recent.get(code, ())
        if type(history) is Series and code in FILTERED:  # columns: the same pick, bisected
            found = window_level(history, newest, MEDIAN_WINDOW, CONTINUOUS_MIN,
                                 tie=tie_for(code))
            if found is not None:
                out[code] = found
                medians.add(code)
                continue
        else:
            window = _window(history, newest) if code in FILTERED else []
            if newest.evidence not in window:
                window.append(newest.evidence)
            if len(window) >= CONTINUOUS_MIN:
                out[code] = _as_latest(level_reading(code, window))
                medians.add(code)
                continue
        doubt = _spot_doubt(code, newest, latest, recent)
        if doubt is None:
            continue
        if now is not None and now >= doubt.lapses_at:
            if is_fresh(code, newest.measured_at, now):
                lapsed.append(doubt)  # no repeat came: scored as measured, never as normal
            continue
        doubts.append(doubt)
        if doubt.previous is not None:
            out[code] = _as_latest(doubt.previous)
        else:
            del out[code]
    held: list[Doubt] = []
    urgent: list[Doubt] = []
    for doubt in doubts:  # each scored with everything else as the rules will see it
        code = doubt.code
        kept = out.get(code)
        out[code] = latest[code]
        at = doubt.reading.measured_at if now is None else now
        if holds(news2.score(build(out, at, spo2_scale=spo2_scale).observations)):
            held.append(doubt)
            if kept is None:
                del out[code]
            else:
                out[code] = kept
        else:
            urgent.append(doubt)
    return Filtered(MappingProxyType(out), tuple(held), frozenset(medians), tuple(lapsed),
                    tuple(urgent))
