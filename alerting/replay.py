"""Backtest: run a history of readings through the rules and episodes, offline and pure.

Readings are replayed in time order; a patient is evaluated at each instant one of their
readings was measured (as the gateway would, right after the commit), with the same artefact
filter, baselines learned the same way, staleness windows, score-storage rule and hysteresis in
time as live. Between readings, **timer sweeps** run every :data:`SWEEP_EVERY` over every
patient whose data has started and not yet ended, as the scheduler would: the timer kinds
(observations overdue; device kinds need status messages, which a readings file does not
carry, so they stay silent), the episodes' hysteresis in time, escalation of episodes
nobody acknowledges (a replay has no nurse), and every rule for a patient whose doubtful
reading's doubt lapsed unrepeated (``alerting.artefacts.DOUBT_LAPSE``).

Measures (:meth:`Report.summary`): episodes, pages and findings per patient-day, by kind, for
patients who did and did not deteriorate (ground truth), and for each ``deterioration_start``
the first *clinical* signal (a clinical finding added, or an episode raised or worsened) at or
after it (within 48 h), its lead over the true NEWS2 reaching 5 and 7, and — for spot-check
kits — its delay after the first measured complete NEWS2 ≥ 5 ("the first deteriorated set").
Per kit (``kits``: patient → kit name). Must never do I/O.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from alerting import artefacts, episodes, escalation, lifecycle, rules, trend
from alerting.candidates import TIMER_KINDS, Evidence, Kind
from alerting.care_plan import CarePlan
from alerting.lifecycle import AckWithin, Alert, State, Transition
from alerting.news2 import Risk
from alerting.observations import NEWS2_CODES, Latest
from alerting.policy import Policy
from alerting.snapshot import RECENT, BaselineStat, PatientSnapshot, ScorePoint

CATCH_WINDOW: Final = dt.timedelta(hours=48)
SCORE_EVERY: Final = dt.timedelta(minutes=5)  # as the live runner
#: Sweep cadence: the scheduler sweeps every 15 s live; replay sweeps every 15 min — the
#: granularity of the timer rules themselves (the overdue grace and the "continuous" gap are
#: 15 min), so a finer sweep changes *when* within 15 min a timer finding starts or a hold
#: completes, not *whether*; it keeps a 200-patient, 2-day replay to a minute or two.
SWEEP_EVERY: Final = dt.timedelta(minutes=15)
_SIGNALS: Final = frozenset({"raised", "finding_raised", "severity_raised"})
_SPO2_HISTORY: Final = dt.timedelta(hours=6)  # as alerting.store.SPO2_HISTORY
_SCORE_HISTORY: Final = dt.timedelta(hours=24)  # as alerting.store.SCORE_HISTORY
_KEEP_LAST: Final = 3  # as alerting.store.LAST_READINGS
_LEARN_READINGS: Final = 400  # as alerting.store.LEARN_READINGS


@dataclass(frozen=True, slots=True)
class ReplayReading:
    patient: str
    code: str
    measured_at: dt.datetime
    value: float
    device_id: str = "replay"


@dataclass(frozen=True, slots=True)
class TruthEvent:
    patient: str
    event: str
    at: dt.datetime
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Raised:
    """A clinical signal: a clinical finding added, or the episode raised or worsened."""

    patient: str
    kind: str
    severity: str
    at: dt.datetime
    event: str = "raised"


@dataclass(slots=True)
class EpisodeRecord:
    patient: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None = None
    clinical: bool = False
    findings: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Catch:
    patient: str
    deterioration_at: dt.datetime
    first_alert: Raised | None
    crossed_5: dt.datetime | None
    crossed_7: dt.datetime | None
    kit: str = "unknown"
    first_set_5: dt.datetime | None = None  # first measured complete NEWS2 >= 5 after start
    #: The platform had vital-sign readings of the patient after the true NEWS2 reached 5 (a
    #: spot kit whose patient deteriorates at night, after the last check, cannot be caught).
    observable: bool = True
    #: A clinical episode was already open at the onset: the hub was already looking (the
    #: catch is then the onset itself, the episode's later signals are not "first").
    open_at_onset: bool = False

    @property
    def delay(self) -> dt.timedelta | None:
        return None if self.first_alert is None else self.first_alert.at - self.deterioration_at

    def lead_over(self, crossed: dt.datetime | None) -> dt.timedelta | None:
        if crossed is None or self.first_alert is None:
            return None
        return crossed - self.first_alert.at

    @property
    def after_first_set(self) -> dt.timedelta | None:
        if self.first_set_5 is None or self.first_alert is None:
            return None
        return self.first_alert.at - self.first_set_5


@dataclass(slots=True)
class _Patient:
    pid: int
    first: dt.datetime
    last: dt.datetime
    latest: dict[str, Latest] = field(default_factory=dict)
    recent: dict[str, list[Evidence]] = field(default_factory=lambda: defaultdict(list))
    spo2: list[Evidence] = field(default_factory=list)
    history: list[ScorePoint] = field(default_factory=list)
    learning: dict[str, list[Evidence]] = field(default_factory=lambda: defaultdict(list))
    baselines: dict[str, BaselineStat] = field(default_factory=dict)
    episode: Alert | None = None
    record: EpisodeRecord | None = None
    sets_5: list[dt.datetime] = field(default_factory=list)
    was_5: bool = False


@dataclass(frozen=True, slots=True)
class Report:
    raised: tuple[Raised, ...]
    patient_days: float
    per_kind: Mapping[str, int]  # findings started, by kind
    catches: tuple[Catch, ...]
    episodes: tuple[EpisodeRecord, ...] = ()
    pages: Mapping[str, int] = field(default_factory=dict)  # per patient
    days: Mapping[str, float] = field(default_factory=dict)  # patient-days per patient
    findings: Mapping[str, Counter[str]] = field(default_factory=dict)  # per patient, by kind
    sweeps: int = 0
    sweep_changes: Mapping[str, int] = field(default_factory=dict)
    escalations: int = 0
    kits: Mapping[str, str] = field(default_factory=dict)

    def per_patient_day(self) -> dict[str, float]:
        days = max(self.patient_days, 1e-9)
        return {kind: n / days for kind, n in sorted(self.per_kind.items())}

    def summary(self) -> dict[str, Any]:
        """The figures that matter, split by patients who did / did not deteriorate."""
        deteriorated = {c.patient for c in self.catches}
        groups = {"not_deteriorated": [p for p in self.days if p not in deteriorated],
                  "deteriorated": [p for p in self.days if p in deteriorated],
                  "all": list(self.days)}
        out: dict[str, Any] = {"patient_days": self.patient_days, "sweeps": self.sweeps,
                               "sweep_changes": dict(self.sweep_changes),
                               "escalations": self.escalations, "groups": {}}
        for name, members in groups.items():
            days = sum(self.days[p] for p in members)
            chosen = set(members)
            eps = [e for e in self.episodes if e.patient in chosen]
            kinds: Counter[str] = Counter()
            for p in members:
                kinds.update(self.findings.get(p, Counter()))
            per = max(days, 1e-9)
            out["groups"][name] = {
                "patients": len(members), "patient_days": days,
                "episodes_per_patient_day": len(eps) / per,
                "clinical_episodes_per_patient_day": sum(e.clinical for e in eps) / per,
                "pages_per_patient_day": sum(self.pages.get(p, 0) for p in members) / per,
                "findings_per_patient_day": {k: n / per for k, n in sorted(kinds.items())}}
        out["deteriorations"] = _catch_summary(self.catches)
        out["per_kit"] = {kit: _catch_summary([c for c in self.catches if c.kit == kit])
                          for kit in sorted({c.kit for c in self.catches})}
        return out


def _hours(d: dt.timedelta | None) -> float | None:
    return None if d is None else d.total_seconds() / 3600


def _catch_summary(catches: Sequence[Catch]) -> dict[str, Any]:
    leads5 = [h for c in catches if (h := _hours(c.lead_over(c.crossed_5))) is not None]
    leads7 = [h for c in catches if (h := _hours(c.lead_over(c.crossed_7))) is not None]
    after = [h * 60 for c in catches if not c.open_at_onset
             and (h := _hours(c.after_first_set)) is not None]
    crossed7 = [c for c in catches if c.crossed_7 is not None and c.observable]
    return {
        "count": len(catches), "caught": sum(c.first_alert is not None for c in catches),
        "observable": sum(c.observable for c in catches),
        "observable_caught": sum(c.observable and c.first_alert is not None for c in catches),
        "open_at_onset": sum(c.open_at_onset for c in catches),
        "crossed_7": len(crossed7),
        "caught_before_7": sum(1 for c in crossed7 if (c.lead_over(c.crossed_7) or
                                                       dt.timedelta(-1)) > dt.timedelta(0)),
        "median_lead_5_h": statistics.median(leads5) if leads5 else None,
        "median_lead_7_h": statistics.median(leads7) if leads7 else None,
        "max_minutes_after_first_set_5": max(after) if after else None,
    }


class _Replay:
    def __init__(self, ack_within: AckWithin, plans: Mapping[str, CarePlan],
                 policy: Policy | None) -> None:
        self.ack_within = ack_within
        self.plans = plans
        self.policy = policy
        self.patients: dict[str, _Patient] = {}
        self.raised: list[Raised] = []
        self.records: list[EpisodeRecord] = []
        self.pages: Counter[str] = Counter()
        self.findings: dict[str, Counter[str]] = defaultdict(Counter)
        self.sweeps = 0
        self.sweep_changes: Counter[str] = Counter()
        self.escalations = 0

    def snapshot(self, name: str, p: _Patient, now: dt.datetime) -> PatientSnapshot:
        for items in p.recent.values():
            keep = max(0, len(items) - _KEEP_LAST)
            while keep and now - items[0].measured_at > RECENT:
                items.pop(0)
                keep -= 1
        while p.spo2 and now - p.spo2[0].measured_at > _SPO2_HISTORY:
            p.spo2.pop(0)
        while p.history and now - p.history[0].computed_at > _SCORE_HISTORY:
            p.history.pop(0)
        for code in list(p.learning):
            base = trend.learn(code, p.learning[code], now)
            if base is not None:
                p.baselines[code] = base
                del p.learning[code]
        return PatientSnapshot(p.pid, dict(p.latest), self.plans.get(name, CarePlan(p.pid)),
                               score_history=tuple(p.history), spo2_history=tuple(p.spo2),
                               recent={c: tuple(v) for c, v in p.recent.items()},
                               baselines=dict(p.baselines))

    def add(self, name: str, r: ReplayReading) -> None:
        p = self.patients.get(name)
        if p is None:
            p = self.patients[name] = _Patient(len(self.patients) + 1, r.measured_at, r.measured_at)
        p.last = max(p.last, r.measured_at)
        e = Evidence(r.measured_at, r.code, r.device_id, r.value)
        old = p.latest.get(r.code)
        if old is None or old.measured_at <= r.measured_at:
            p.latest[r.code] = Latest(r.code, r.measured_at, r.value, r.device_id)
        p.recent[r.code].append(e)
        if r.code == "spo2":
            p.spo2.append(e)
        if r.code in trend.CODES and r.code not in p.baselines:
            first = p.learning[r.code]
            if len(first) < _LEARN_READINGS:
                first.append(e)

    def evaluate(self, name: str, now: dt.datetime, *, sweep: bool = False) -> None:
        p = self.patients[name]
        snapshot = self.snapshot(name, p, now)
        evaluation = rules.evaluate(snapshot, now, kinds=TIMER_KINDS if sweep else None)
        if sweep and artefacts.unscored_lapse(
                evaluation.lapsed, p.history[-1].computed_at if p.history else None):
            sweep = False  # a doubt lapsed: the sweep runs every rule, as alerting.runner does
            evaluation = rules.evaluate(snapshot, now)
        result = evaluation.score
        if result is not None and not sweep:
            missing = frozenset(x.value for x in result.missing)
            last = p.history[-1] if p.history else None
            if last is None or (last.total, last.risk, last.complete, last.missing) != (
                    result.total, result.risk, result.complete, missing) \
                    or now - last.computed_at >= SCORE_EVERY:
                p.history.append(ScorePoint(now, result.total, result.risk, result.complete,
                                            missing))
            high = result.complete and result.risk in (Risk.MEDIUM, Risk.HIGH)
            if high and not p.was_5:
                p.sets_5.append(now)
            p.was_5 = high
        t = episodes.observe(p.episode, evaluation.outcomes, now, patient_id=p.pid,
                             ack_within=self.ack_within)
        if sweep and t.events:
            self.sweep_changes.update(e.event for e in t.events)
        self.apply(name, p, t)

    def apply(self, name: str, p: _Patient, t: Transition) -> None:
        if t.after is None:
            return
        after = replace(t.after, id=t.after.id or p.pid)
        for event in t.events:
            if event.event == "raised":
                p.record = EpisodeRecord(name, event.at)
                self.records.append(p.record)
            if episodes.pages(event):
                self.pages[name] += 1
            added = (event.detail.get("findings", []) if event.event == "raised"
                     else [event.detail["finding"]] if event.event == "finding_raised" else [])
            for kind in added:
                self.findings[name][kind] += 1
                if p.record is not None:
                    p.record.findings.add(kind)
            clinical = [k for k in added if episodes.is_clinical(Kind(k))]
            if p.record is not None and clinical:
                p.record.clinical = True
            if event.event in _SIGNALS and (clinical or (
                    event.event == "severity_raised" and episodes.is_clinical(after.kind))):
                self.raised.append(Raised(name, clinical[0] if clinical else after.kind.value,
                                          after.severity.value, event.at, event.event))
            if event.event == "resolved" and p.record is not None:
                p.record.closed_at = event.at
                p.record = None
        p.episode = after if after.open else None

    def sweep(self, now: dt.datetime) -> None:
        self.sweeps += 1
        for name, p in self.patients.items():
            if not p.first <= now <= p.last:
                continue
            self.evaluate(name, now, sweep=True)
            ep = p.episode
            if self.policy is None or ep is None or ep.state is not State.RAISED:
                continue
            decision = escalation.next_step(ep, self.policy, now)
            if decision.action is escalation.Action.NOTIFY:
                self.escalations += 1
                t = lifecycle.escalate(ep, tier=decision.tier, target=decision.target,
                                       next_at=decision.next_at, now=now, detail={})
                self.apply(name, p, t)


def run(readings: Iterable[ReplayReading], ack_within: AckWithin, *,
        plans: Mapping[str, CarePlan] | None = None, truth: Sequence[TruthEvent] = (),
        policy: Policy | None = None, kits: Mapping[str, str] | None = None,
        sweep_every: dt.timedelta | None = SWEEP_EVERY) -> Report:
    """Replay ``readings`` (any order) and match the episodes against ``truth``."""
    ordered = sorted(readings, key=lambda r: (r.measured_at, r.patient, r.code))
    replay = _Replay(ack_within, plans or {}, policy)
    spans: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    vitals_until: dict[str, dt.datetime] = {}
    for r in ordered:
        a, b = spans.get(r.patient, (r.measured_at, r.measured_at))
        spans[r.patient] = (min(a, r.measured_at), max(b, r.measured_at))
        if r.code in NEWS2_CODES:
            vitals_until[r.patient] = r.measured_at
    next_sweep = ordered[0].measured_at if ordered and sweep_every else None
    i = 0
    while i < len(ordered):
        now, name = ordered[i].measured_at, ordered[i].patient
        while next_sweep is not None and sweep_every is not None and next_sweep < now:
            replay.sweep(next_sweep)
            next_sweep += sweep_every
        while i < len(ordered) and ordered[i].measured_at == now and ordered[i].patient == name:
            replay.add(name, ordered[i])
            i += 1
        replay.patients[name].last = spans[name][1]
        replay.evaluate(name, now)
    days = {n: max((b - a).total_seconds() / 86400, 1 / 24) for n, (a, b) in spans.items()}
    kits = kits or {}
    sets5 = {n: p.sets_5 for n, p in replay.patients.items()}
    return Report(tuple(replay.raised), sum(days.values()),
                  sum(replay.findings.values(), Counter()),
                  tuple(_catches(replay.raised, truth, kits, sets5=sets5, last=vitals_until,
                                 records=replay.records)), tuple(replay.records),
                  dict(replay.pages), days, dict(replay.findings), replay.sweeps,
                  dict(replay.sweep_changes), replay.escalations, dict(kits))


def _catches(raised: Sequence[Raised], truth: Sequence[TruthEvent], kits: Mapping[str, str], *,
             sets5: Mapping[str, list[dt.datetime]], last: Mapping[str, dt.datetime],
             records: Sequence[EpisodeRecord]) -> list[Catch]:
    by_patient: dict[str, list[Raised]] = defaultdict(list)
    for r in raised:
        by_patient[r.patient].append(r)
    out = []
    for start in (t for t in truth if t.event == "deterioration_start"):
        window = [r for r in by_patient.get(start.patient, ())
                  if start.at <= r.at <= start.at + CATCH_WINDOW]

        def crossed(name: str, start: TruthEvent = start) -> dt.datetime | None:
            times = [t.at for t in truth if t.patient == start.patient and t.event == name
                     and t.at >= start.at]
            return min(times, default=None)

        first5 = min((t for t in sets5.get(start.patient, ()) if t >= start.at), default=None)
        c5 = crossed("news2_crossed_5")
        seen_after = last.get(start.patient)
        observable = seen_after is not None and seen_after >= (c5 or start.at)
        already = next((e for e in records if e.patient == start.patient and e.clinical
                        and e.opened_at < start.at
                        and (e.closed_at is None or e.closed_at > start.at)), None)
        first = min(window, key=lambda r: r.at, default=None)
        if already is not None:
            first = Raised(start.patient, "episode", "open", start.at, "open_at_onset")
        out.append(Catch(start.patient, start.at, first, c5, crossed("news2_crossed_7"),
                         kits.get(start.patient, "unknown"), first5, observable,
                         already is not None))
    return out
