"""The plain data every rule reads about one patient, and the rules' tunables.

A :class:`PatientSnapshot` is assembled by the store (one set-based query per table for a
whole batch of patients) or by the replay from a file; rules never see a connection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from alerting.candidates import Evidence
from alerting.care_plan import CarePlan
from alerting.news2 import Risk
from alerting.observations import Latest


@dataclass(frozen=True, slots=True)
class ScorePoint:
    """One stored NEWS2 score (a row of ``scores``)."""

    computed_at: dt.datetime
    total: int
    risk: Risk
    complete: bool
    missing: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device assigned to the patient now, with its last status report."""

    device_id: str
    kind: str
    online: bool | None = None  # None: the device never reported a status
    battery_pct: float | None = None
    reported_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class PatientSnapshot:
    """Everything the rules know about one patient at one instant."""

    patient_id: int
    latest: Mapping[str, Latest]
    care_plan: CarePlan
    #: Stored scores, oldest first, at least those the rules read: the newest stored one (is
    #: a new score worth storing, ``alerting.runner``) and the newest *complete* one of the
    #: last 24 h up to now (the Chart 4 band, ``alerting.due.last_complete``). The store
    #: loads just those two (decoding every score of 24 h on every pass cost a wearable
    #: patient up to hundreds of rows, issue 14); a replay may hold the whole day.
    score_history: tuple[ScorePoint, ...] = ()
    #: SpO2 readings of the last few hours, oldest first (for the falling-SpO2 rule): a tuple,
    #: or the evaluator's columns (:class:`alerting.series.Series`, equal to that tuple).
    spo2_history: Sequence[Evidence] = ()
    devices: tuple[DeviceState, ...] = ()
    admitted_at: dt.datetime | None = None
    #: Recent readings per code, oldest first (for the artefact filter and the trend's level):
    #: the last :data:`RECENT` of the filtered codes and at least their last few readings
    #: (tuples, or :class:`alerting.series.Series` as for ``spo2_history``).
    recent: Mapping[str, Sequence[Evidence]] = field(default_factory=dict)
    #: The patient's own learned baseline per code (empty while still learning).
    baselines: Mapping[str, BaselineStat] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BaselineStat:
    """One parameter's baseline, learned from the patient's first hours (``alerting.trend``)."""

    code: str
    mean: float
    sd: float
    n: int
    from_at: dt.datetime
    to_at: dt.datetime


#: How much recent history a snapshot carries for the filter and the trend's hourly level.
RECENT: Final = dt.timedelta(hours=1)


#: Default infusion flow tolerance by pump type, as a fraction of the prescribed rate.
#: Elastomeric pumps are mechanical and vary by about ±15 % (VIRTUAL_WARD.md); volumetric and
#: syringe drivers are electronic and hold the rate within about ±5 % (manufacturers' specs).
DEFAULT_PUMP_TOLERANCE: Final[Mapping[str, float]] = MappingProxyType(
    {"elastomeric": 0.15, "volumetric": 0.05, "syringe": 0.05}
)


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """Tunables of the rules; each default is justified where it is defined."""

    #: Fraction of the prescribed rate, per pump type; unknown types use ``default_tolerance``.
    pump_tolerance: Mapping[str, float] = field(default_factory=lambda: DEFAULT_PUMP_TOLERANCE)
    default_tolerance: float = 0.15
    #: Battery alert at or below 20 % (about a day left on typical home oximeters) and clear
    #: only above 25 %, so a battery hovering at the limit does not flap the alert.
    battery_low_pct: float = 20.0
    battery_clear_pct: float = 25.0
    #: A device not heard from for this long is offline even if it last said "online" (the
    #: connection may have died without a last will). 30 min covers three missed 10-minute
    #: heartbeats. "Heard from" is when the gateway stored its latest status, on the server's
    #: clock: a device's own clock drifts, and store-and-forward statuses arrive late.
    offline_after: dt.timedelta = dt.timedelta(minutes=30)
    #: Grace added to the Chart 4 interval before an observation counts as overdue: a nurse
    #: call a few minutes late is not worth an alert. 15 min is a quarter of the 1-hourly band.
    overdue_grace: dt.timedelta = dt.timedelta(minutes=15)
    #: "Continuous" monitoring (NEWS2 >= 7): a gap longer than this is overdue.
    continuous_gap: dt.timedelta = dt.timedelta(minutes=15)
    #: Pump readings older than this no longer describe the pump (pumps report every minute or
    #: so while running).
    pump_staleness: dt.timedelta = dt.timedelta(minutes=30)
