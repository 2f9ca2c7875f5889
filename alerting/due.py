"""What is due and what is overdue, per NEWS2 parameter — the one rule the hub and the alert share.

The ward row (``ward.hub.acuity``), the patient page and the ``observations_overdue`` alert
(:func:`alerting.device_rules.overdue_rule`) all call :func:`due`; nothing else decides it.

Rules (RCP NEWS2 2017, Chart 4 minimum monitoring frequency; ``shared/clinical/NEWS2.md``):

* **The band sets the interval.** The last *complete* score within :data:`BAND_MEMORY`
  decides the Chart 4 interval; a partial current score (a lower bound on the true total)
  may only raise it, never lower it. Never completely scored: the 1–4 band's strict end,
  4 h — the chart has no row for "unknown", and 12-hourly (total 0) would be the least safe
  guess; a partial 0 is such an unknown too. "Continuous" (≥ 7) is :attr:`RuleConfig.continuous_gap`.
* **Each parameter has its own due time**: its latest reading (or the admission, if never
  measured) + the interval. A wearable's SpO2 every minute says nothing about RR or BP.
* **Overdue** once past due + grace, where grace is :attr:`RuleConfig.overdue_grace` but at
  most a quarter of the interval (15 min on a 1-hourly patient, under 4 min on continuous):
  a call a few minutes late is not worth an alert, a quarter of an hour of silence at
  NEWS2 ≥ 7 is.
* **What the kit cannot measure is a hub task**, not silence: each parameter names how it is
  got — the patient's own kit, a phone call (RR counted by a carer, new confusion,
  air/oxygen), or a visit (BP, temperature, SpO2, pulse with no device at home).
* **Scale 2 with air/oxygen unknown** (no fresh reading: 12 h window) must not score as air:
  on Scale 2 SpO2 ≥ 93 % scores 0 on air and up to 3 (+2 for oxygen) on oxygen. The report
  flags it, air/oxygen is due at once, and the band is the worse of the two readings
  (:attr:`DueReport.oxygen_unknown`, :attr:`DueReport.possible_total`).

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from alerting import observations
from alerting.news2 import News2Score, Parameter, Risk, monitoring_for, score
from alerting.observations import Latest
from alerting.snapshot import RuleConfig
from ward.domain.vitals import VitalCode

#: A complete score older than this no longer sets the band: the evaluator loads the newest
#: complete score of the last 24 h (`PatientSnapshot.score_history`), and the hub reads the same
#: window.
BAND_MEMORY: Final = dt.timedelta(hours=24)
#: The band when no complete score exists: Chart 4's 1–4 row (strict end 4 h).
UNSCORED: Final = (1, Risk.LOW)
#: Grace is at most this fraction of the interval (see the module docstring).
GRACE_FRACTION: Final = 0.25
#: Which reading code feeds each NEWS2 parameter.
PARAMETER_CODE: Final[Mapping[Parameter, str]] = MappingProxyType(
    {p: ("on_oxygen" if p is Parameter.AIR_OR_OXYGEN else p.value) for p in Parameter}
)
#: What each kind of home device measures of NEWS2. The home hub asks the patient or carer
#: (counted breaths, new confusion, oxygen on/off); a pump measures nothing of NEWS2.
KIT_CODES: Final[Mapping[str, frozenset[str]]] = MappingProxyType({
    "pulse_oximeter": frozenset({"spo2", "pulse"}),
    "bp_cuff": frozenset({"systolic_bp", "pulse"}),
    "thermometer": frozenset({"temperature"}),
    "home_hub": frozenset({"resp_rate", "consciousness", "on_oxygen"}),
    "infusion_pump": frozenset(),
})
#: How the hub gets a parameter the kit cannot measure: what a phone call can establish
#: (carer counts breaths, asks about confusion and oxygen), else a visit.
BY_PHONE: Final = frozenset({"resp_rate", "consciousness", "on_oxygen"})
#: Staff entries are attributed to a virtual device per patient (``ward.hub.staff_entry``);
#: it is the hub's own hand, not the patient's kit.
STAFF_DEVICE_PREFIX: Final = "staff-"
_RISK_RANK: Final = {Risk.LOW: 0, Risk.LOW_MEDIUM: 1, Risk.MEDIUM: 2, Risk.HIGH: 3}
#: (parameter, code) in Chart 1's order (iterating the enum class each call costs, issue 14).
_PARAMETER_CODES: Final = tuple(PARAMETER_CODE.items())


@dataclass(frozen=True, slots=True)
class LastComplete:
    """The newest complete stored score (total and Chart 2 risk) and when it was computed."""

    computed_at: dt.datetime
    total: int
    risk: Risk


@dataclass(frozen=True, slots=True)
class ParameterDue:
    """One NEWS2 parameter: when last measured, when due, when overdue, and how to get it."""

    parameter: Parameter
    code: str
    last_at: dt.datetime | None  # None: never measured this admission
    due_at: dt.datetime
    overdue_at: dt.datetime
    method: str  # "kit" (the patient's device), "phone call" or "visit" (a hub task)

    def overdue(self, now: dt.datetime) -> bool:
        return now > self.overdue_at

    @property
    def hub_task(self) -> bool:
        return self.method != "kit"


@dataclass(frozen=True, slots=True)
class DueReport:
    """Due times of all seven parameters and the band that set them."""

    total: int  # the total whose band set the interval
    risk: Risk
    frequency: str  # Chart 4 wording, e.g. "1-hourly"
    interval: dt.timedelta
    basis: str  # "complete score", "partial score (lower bound)", "never scored", ...
    parameters: tuple[ParameterDue, ...]
    oxygen_unknown: bool  # Scale 2 and no fresh air/oxygen reading
    possible_total: int | None  # Scale 2, oxygen unknown: the total if on oxygen

    def overdue(self, now: dt.datetime) -> tuple[ParameterDue, ...]:
        return tuple(p for p in self.parameters if p.overdue(now))

    @property
    def next_overdue_at(self) -> dt.datetime:
        """The first instant anything is overdue (a cached row is valid until then)."""
        return min(p.overdue_at for p in self.parameters)

    @property
    def tasks(self) -> tuple[ParameterDue, ...]:
        """Parameters the patient's kit cannot measure: a phone call or visit, scheduled."""
        return tuple(p for p in self.parameters if p.hub_task)


def kit_codes(devices: Iterable[tuple[str, str]],
              latest: Mapping[str, Latest] | None = None) -> frozenset[str]:
    """NEWS2 codes the patient's own devices measure, from (device id, kind) pairs: what the
    kind measures, plus any code whose latest reading came from one of these devices (a
    home hub that also relays an oximeter, say)."""
    out: set[str] = set()
    ids: set[str] = set()
    for device_id, kind in devices:
        if not device_id.startswith(STAFF_DEVICE_PREFIX):
            out |= KIT_CODES.get(kind, frozenset())
            ids.add(device_id)
    for code, reading in (latest or {}).items():
        if reading.device_id in ids and code in observations.NEWS2_CODES:
            out.add(code)
    return frozenset(out)


def last_complete(points: Iterable[tuple[dt.datetime, int, Risk, bool]], now: dt.datetime
                  ) -> LastComplete | None:
    """The newest complete score within :data:`BAND_MEMORY` of ``now`` (and not after it)."""
    best: LastComplete | None = None
    for at, total, risk, complete in points:
        if complete and dt.timedelta(0) <= now - at <= BAND_MEMORY and (
                best is None or at > best.computed_at):
            best = LastComplete(at, total, risk)
    return best


def _method(code: str, kit: frozenset[str]) -> str:
    if code in kit:
        return "kit"
    return "phone call" if code in BY_PHONE else "visit"


def current_score(latest: Mapping[str, Latest], now: dt.datetime, spo2_scale: int
                  ) -> News2Score | None:
    """NEWS2 from the fresh latest readings (None when no parameter is fresh)."""
    built = observations.build(latest, now, spo2_scale=spo2_scale)
    return score(built.observations) if built.used else None


class Compute(enum.Enum):
    """The type of :data:`COMPUTE`."""

    SCORE = enum.auto()


#: Pass as ``scored`` to have :func:`due` score the latest readings itself.
COMPUTE: Final = Compute.SCORE


def due(latest: Mapping[str, Latest], *, last: LastComplete | None, kit: frozenset[str],
        admitted_at: dt.datetime | None, spo2_scale: int, now: dt.datetime,
        config: RuleConfig | None = None,
        scored: News2Score | Compute | None = COMPUTE) -> DueReport | None:
    """What is due, per parameter, at ``now``; None when there is nothing to count from
    (no admission time and no reading). ``scored`` is :func:`current_score` of the same
    arguments when the caller has it already (the rules do): scoring costs ~50 µs."""
    config = config or RuleConfig()
    current = current_score(latest, now, spo2_scale) if isinstance(scored, Compute) else scored
    candidates: list[tuple[int, Risk, str]] = []
    if current is not None and current.complete:
        candidates.append((current.total, current.risk, "complete score"))
    else:
        if last is not None:
            candidates.append((last.total, last.risk, "last complete score"))
        else:  # a partial 0 is a lower bound: it never earns the 12-hourly row
            candidates.append((*UNSCORED, "never scored"))
        if current is not None:
            candidates.append((current.total, current.risk, "partial score (lower bound)"))
    oxygen_code = PARAMETER_CODE[Parameter.AIR_OR_OXYGEN]
    oxygen = latest.get(oxygen_code)
    oxygen_unknown = spo2_scale == 2 and (
        oxygen is None or not observations.is_fresh(oxygen_code, oxygen.measured_at, now))
    possible: int | None = None
    if oxygen_unknown and current is not None:
        built = observations.build(latest, now, spo2_scale=spo2_scale).observations
        worst = score(dataclasses.replace(built, on_oxygen=True))
        possible = worst.total
        candidates.append((worst.total, worst.risk, "Scale 2, if on oxygen"))
    total, risk, basis = max(candidates, key=lambda c: (_RISK_RANK[c[1]], c[0]))
    monitoring = monitoring_for(total, risk)
    interval = monitoring.interval or config.continuous_gap
    grace = min(config.overdue_grace, interval * GRACE_FRACTION)
    # Counted from the admission; without one (a replay, a test), from the first NEWS2 reading
    # known — the earliest instant monitoring is known to have begun.
    known = [r.measured_at for code, r in latest.items() if code in observations.NEWS2_CODES]
    origin = admitted_at if admitted_at is not None else min(known, default=None)
    items: list[ParameterDue] = []
    for parameter, code in _PARAMETER_CODES:
        reading = latest.get(code)
        if reading is not None and admitted_at is not None and reading.measured_at < admitted_at:
            reading = None  # from an earlier stay: not this admission's observation
        last_at = None if reading is None else reading.measured_at
        since = last_at if last_at is not None else origin
        if since is None:
            return None
        due_at = since + interval
        if parameter is Parameter.AIR_OR_OXYGEN and oxygen_unknown:
            due_at = min(due_at, since + observations.STALENESS[VitalCode.ON_OXYGEN])
        items.append(ParameterDue(parameter, code, last_at, due_at, due_at + grace,
                                  _method(code, kit)))
    return DueReport(total, risk, monitoring.frequency, interval, basis, tuple(items),
                     oxygen_unknown, possible)


__all__ = ["DueReport", "LastComplete", "ParameterDue", "current_score", "due", "kit_codes",
           "last_complete"]
