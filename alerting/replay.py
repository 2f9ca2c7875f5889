"""Backtest: run a history of readings through the rules and lifecycle, offline and pure.

Readings are replayed in time order; the patient is evaluated at each instant one of their
readings was measured (as the gateway would, right after the commit), with the same staleness
windows, score-storage rule and hysteresis as live. Timer kinds are evaluated at the same
instants only (no sweeps between readings), so "overdue" is under-counted and device kinds
(no status in a readings file) never fire — replay is for tuning the vital-sign rules.

Ground truth (format in docs/architecture.md): for each ``deterioration_start``, the first
vital-sign alert for that patient at or after it (within 48 h) and its lead time over the
``news2_crossed_5`` / ``news2_crossed_7`` events. Must never do I/O.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from alerting import lifecycle, rules
from alerting.candidates import Evidence, Kind
from alerting.care_plan import CarePlan
from alerting.lifecycle import AckWithin, Alert
from alerting.observations import Latest
from alerting.snapshot import PatientSnapshot, ScorePoint

EARLY_KINDS: Final = frozenset({Kind.NEWS2, Kind.SINGLE_PARAMETER_3, Kind.NEWS2_RISING,
                                Kind.SPO2_FALLING, Kind.SPO2_BELOW_TARGET, Kind.THRESHOLD})
CATCH_WINDOW: Final = dt.timedelta(hours=48)
SCORE_EVERY: Final = dt.timedelta(minutes=5)  # as the live runner


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
    patient: str
    kind: Kind
    severity: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Catch:
    patient: str
    deterioration_at: dt.datetime
    first_alert: Raised | None
    crossed_5: dt.datetime | None
    crossed_7: dt.datetime | None

    @property
    def delay(self) -> dt.timedelta | None:
        return None if self.first_alert is None else self.first_alert.at - self.deterioration_at

    def lead_over(self, crossed: dt.datetime | None) -> dt.timedelta | None:
        if crossed is None or self.first_alert is None:
            return None
        return crossed - self.first_alert.at


@dataclass(frozen=True, slots=True)
class Report:
    raised: tuple[Raised, ...]
    patient_days: float
    per_kind: Mapping[str, int]
    catches: tuple[Catch, ...]

    def per_patient_day(self) -> dict[str, float]:
        days = max(self.patient_days, 1e-9)
        return {kind: n / days for kind, n in sorted(self.per_kind.items())}


def run(readings: Iterable[ReplayReading], ack_within: AckWithin, *,
        plans: Mapping[str, CarePlan] | None = None,
        truth: Sequence[TruthEvent] = ()) -> Report:
    """Replay ``readings`` (any order) and match the alerts against ``truth``."""
    plans = plans or {}
    by_instant: dict[tuple[dt.datetime, str], list[ReplayReading]] = defaultdict(list)
    for r in readings:
        by_instant[(r.measured_at, r.patient)].append(r)
    latest: dict[str, dict[str, Latest]] = defaultdict(dict)
    history: dict[str, list[ScorePoint]] = defaultdict(list)
    spo2: dict[str, list[Evidence]] = defaultdict(list)
    open_alerts: dict[tuple[str, Kind], Alert] = {}
    span: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    raised: list[Raised] = []
    numbers: dict[str, int] = {}
    for (now, patient), batch in sorted(by_instant.items(), key=lambda kv: kv[0]):
        first, _ = span.get(patient, (now, now))
        span[patient] = (first, now)
        for r in batch:
            latest[patient][r.code] = Latest(r.code, r.measured_at, r.value, r.device_id)
            if r.code == "spo2":
                spo2[patient].append(Evidence(r.measured_at, r.code, r.device_id, r.value))
        pid = numbers.setdefault(patient, len(numbers) + 1)
        recent = [e for e in spo2[patient] if now - e.measured_at <= dt.timedelta(hours=6)]
        spo2[patient] = recent
        snapshot = PatientSnapshot(pid, latest[patient], plans.get(patient, CarePlan(pid)),
                                   score_history=tuple(p for p in history[patient]
                                                       if now - p.computed_at <= dt.timedelta(hours=24)),
                                   spo2_history=tuple(recent))
        evaluation = rules.evaluate(snapshot, now)
        result = evaluation.score
        if result is not None:
            missing = frozenset(p.value for p in result.missing)
            last = history[patient][-1] if history[patient] else None
            if last is None or (last.total, last.risk, last.complete, last.missing) != (
                    result.total, result.risk, result.complete, missing) or now - last.computed_at >= SCORE_EVERY:
                history[patient].append(ScorePoint(now, result.total, result.risk, result.complete, missing))
        for outcome in evaluation.outcomes:
            key = (patient, outcome.kind)
            t = lifecycle.observe(open_alerts.get(key), outcome, now, patient_id=pid,
                                  ack_within=ack_within)
            if t.after is None or not t.after.open:
                open_alerts.pop(key, None)
            else:
                open_alerts[key] = t.after
            raised.extend(Raised(patient, outcome.kind, t.after.severity.value, now)
                          for e in t.events if e.event == "raised" and t.after is not None)
    patient_days = sum(max((b - a).total_seconds() / 86400, 1 / 24) for a, b in span.values())
    return Report(tuple(raised), patient_days, Counter(r.kind.value for r in raised),
                  tuple(_catches(raised, truth)))


def _catches(raised: Sequence[Raised], truth: Sequence[TruthEvent]) -> list[Catch]:
    out = []
    for start in (t for t in truth if t.event == "deterioration_start"):
        window = [r for r in raised if r.patient == start.patient and r.kind in EARLY_KINDS
                  and start.at <= r.at <= start.at + CATCH_WINDOW]

        def crossed(name: str, start: TruthEvent = start) -> dt.datetime | None:
            times = [t.at for t in truth if t.patient == start.patient and t.event == name
                     and t.at >= start.at]
            return min(times, default=None)

        out.append(Catch(start.patient, start.at, min(window, key=lambda r: r.at, default=None),
                         crossed("news2_crossed_5"), crossed("news2_crossed_7")))
    return out
