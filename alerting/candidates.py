"""What a rule says about one patient and one alert kind: firing, clear, or unknown.

Rules are Alertmanager-style stages: each returns an :class:`Outcome` per kind it owns.
*Firing* carries an alert candidate with the readings that caused it; *Clear* carries the
readings that show the condition is gone; a kind a rule could not decide (data missing or
stale) is simply absent — **missing data is never "clear"**, so an alert is never resolved by
silence. Pure data; never does I/O.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from alerting.news2 import Risk


class Severity(enum.StrEnum):
    """Alert severities, lowest first; the NEWS2 risks map onto the upper four."""

    INFO = "info"
    LOW = "low"
    LOW_MEDIUM = "low_medium"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def of_risk(cls, risk: Risk) -> Severity:
        return cls(risk.value)


_RANK: Final[Mapping[Severity, int]] = MappingProxyType({s: i for i, s in enumerate(Severity)})


class Kind(enum.StrEnum):
    """Alert kinds. One open alert per patient and kind."""

    NEWS2 = "news2"
    SINGLE_PARAMETER_3 = "single_parameter_3"
    #: No longer raised (replaced by TREND); kept so alerts stored before it still load.
    NEWS2_RISING = "news2_rising"
    #: Vital signs drifting from the patient's own learned baseline (:mod:`alerting.trend`).
    TREND = "trend"
    SPO2_FALLING = "spo2_falling"
    SPO2_BELOW_TARGET = "spo2_below_target"
    THRESHOLD = "threshold"
    OBSERVATIONS_OVERDUE = "observations_overdue"
    DEVICE_OFFLINE = "device_offline"
    BATTERY_LOW = "battery_low"
    INFUSION_OCCLUDED = "infusion_occluded"
    INFUSION_DISCONNECTED = "infusion_disconnected"
    INFUSION_FINISHED_EARLY = "infusion_finished_early"
    INFUSION_LATE = "infusion_late"
    INFUSION_FLOW = "infusion_flow"
    INFUSION_STALLED = "infusion_stalled"
    #: The patient's virtual-ward risk tier rose to rising/high (:mod:`alerting.risk_findings`).
    RISK_TIER = "risk_tier"


#: Kinds decided from vital-sign readings (evaluated after a gateway commit).
VITAL_KINDS: Final = frozenset(
    {Kind.NEWS2, Kind.SINGLE_PARAMETER_3, Kind.NEWS2_RISING, Kind.TREND, Kind.SPO2_FALLING,
     Kind.SPO2_BELOW_TARGET, Kind.THRESHOLD}
)
#: "No data" kinds: the platform cannot see the patient. Never inhibited by a clinical finding
#: (a high NEWS2 must not hide that the oximeter went offline) and never counted as clinical.
TECHNICAL_KINDS: Final = frozenset(
    {Kind.OBSERVATIONS_OVERDUE, Kind.DEVICE_OFFLINE, Kind.BATTERY_LOW}
)
#: Treatment-delivery kinds (the IV pump): a different response (a nurse visit), so never
#: inhibited by a vital-sign finding either.
INFUSION_KINDS: Final = frozenset(
    {Kind.INFUSION_OCCLUDED, Kind.INFUSION_DISCONNECTED, Kind.INFUSION_FINISHED_EARLY,
     Kind.INFUSION_LATE, Kind.INFUSION_FLOW}
)
#: Findings shown in the episode (and the worklist) that never page, never start an escalation
#: timer, never inhibit another finding and are never inhibited: the risk tier is a slow,
#: heuristic signal for the hub's own review, not an alarm (issue 16: "low severity, no page").
QUIET_KINDS: Final = frozenset({Kind.RISK_TIER})
#: Kinds that change with the passing of time alone (evaluated by the scheduler's sweep too).
TIMER_KINDS: Final = frozenset(
    {Kind.OBSERVATIONS_OVERDUE, Kind.DEVICE_OFFLINE, Kind.BATTERY_LOW, Kind.INFUSION_LATE,
     Kind.INFUSION_STALLED}
)


@dataclass(frozen=True, slots=True, order=True)
class Evidence:
    """One reading behind a decision: (device_id, code, measured_at, value)."""

    measured_at: dt.datetime
    code: str
    device_id: str
    value: float

    def as_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "code": self.code,
            "measured_at": self.measured_at.isoformat(),
            "value": self.value,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evidence:
        return cls(
            measured_at=dt.datetime.fromisoformat(str(data["measured_at"])),
            code=str(data["code"]),
            device_id=str(data["device_id"]),
            value=float(data["value"]),
        )


def newest(evidence: tuple[Evidence, ...]) -> dt.datetime | None:
    """Measured-at of the newest reading in ``evidence`` (None when empty)."""
    return max((e.measured_at for e in evidence), default=None)


@dataclass(frozen=True, slots=True)
class Firing:
    """An alert candidate: the condition holds now."""

    kind: Kind
    severity: Severity
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    partial: bool = False


@dataclass(frozen=True, slots=True)
class Clear:
    """The condition is shown not to hold, by these readings (or by the device status)."""

    kind: Kind
    #: A tuple, or a rule's window as columns (``alerting.series.Series``, equal to it).
    evidence: Sequence[Evidence] = ()
    # For kinds without readings (device status): when the clear fact was observed.
    observed_at: dt.datetime | None = None


Outcome = Firing | Clear
